// Package ociimage assembles chronoshub-sidecar's container image from a
// built binary and a CA bundle, with no Docker daemon and no base image: one
// layer holding the binary, the CA bundle, /etc/passwd and /etc/group with
// the non-root user 65532, and empty /tmp and home directories. Everything
// that could vary between two builds of the same inputs is fixed (file
// order, modes, owners, timestamps from Created, gzip header), so the same
// inputs give the same image digest.
//
// It also writes the CycloneDX SBOM of the image (see SBOM) and the OCI
// artifact manifest that attaches it to the image as a referrer.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the image.
const (
	BinaryPath   = "/usr/local/bin/chronoshub-sidecar"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	HomeDir      = "/home/nonroot"
	// UID and GID of the user the image runs as ("nonroot", as in
	// distroless images and the Kubernetes examples' securityContext).
	UID = 65532
	GID = 65532
)

// OCI label and annotation keys (image-spec annotations.md).
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
)

// Input is what an image is built from. Every field but ExtraCAs is
// required.
type Input struct {
	// Binary is the static chronoshub-sidecar executable.
	Binary []byte
	// CABundle is the PEM bundle of trusted CAs (Debian's
	// /etc/ssl/certs/ca-certificates.crt); ExtraCAs are appended to it, in
	// order (a partner's private CA, or a test's).
	CABundle []byte
	ExtraCAs [][]byte
	// Arch is the GOARCH the binary was built for.
	Arch string
	// Created is the image's creation time and every file's modification
	// time: the commit's time, for reproducibility.
	Created time.Time
	// Source, Revision and Version become the OCI labels and annotations.
	Source, Revision, Version string
}

func (in Input) validate() error {
	var errs []error
	if len(in.Binary) == 0 {
		errs = append(errs, errors.New("no binary"))
	}
	if !bytes.Contains(in.CABundle, []byte("-----BEGIN CERTIFICATE-----")) {
		errs = append(errs, errors.New("the CA bundle holds no PEM certificate"))
	}
	for i, ca := range in.ExtraCAs {
		if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
			errs = append(errs, fmt.Errorf("extra CA %d holds no PEM certificate", i+1))
		}
	}
	if in.Arch == "" {
		errs = append(errs, errors.New("no architecture"))
	}
	if in.Created.IsZero() {
		errs = append(errs, errors.New("no creation time"))
	}
	if in.Source == "" || in.Revision == "" || in.Version == "" {
		errs = append(errs, errors.New("source, revision and version are all required"))
	}
	return errors.Join(errs...)
}

// Labels returns the OCI labels of the image built from in.
func (in Input) Labels() map[string]string {
	return map[string]string{
		LabelSource:   in.Source,
		LabelRevision: in.Revision,
		LabelVersion:  in.Version,
		LabelCreated:  in.Created.UTC().Format(time.RFC3339),
		LabelTitle:    "chronoshub-sidecar",
	}
}

// Bundle returns the CA bundle the image holds: CABundle then ExtraCAs,
// each ending with a newline.
func (in Input) Bundle() []byte {
	var b bytes.Buffer
	for _, pem := range append([][]byte{in.CABundle}, in.ExtraCAs...) {
		b.Write(pem)
		if !bytes.HasSuffix(pem, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Build returns the image built from in.
func Build(in Input) (v1.Image, error) {
	if err := in.validate(); err != nil {
		return nil, fmt.Errorf("image input: %w", err)
	}
	layerTar, err := rootFS(in)
	if err != nil {
		return nil, err
	}
	gz, err := gzipBytes(layerTar)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	created := v1.Time{Time: in.Created.UTC()}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "chronoshub-image",
			Comment:   "chronoshub-sidecar, its CA bundle and the nonroot user",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = in.Arch
	cf.OS = "linux"
	cf.Created = created
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"serve"},
		WorkingDir: HomeDir,
		Env:        []string{"PATH=/usr/local/bin"},
		// The webhook (HTTPS) and the admin listener (/healthz, /readyz,
		// /metrics); the app-facing API listens on loopback.
		ExposedPorts: map[string]struct{}{"8443/tcp": {}, "9090/tcp": {}},
		Labels:       in.Labels(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return mutate.Annotations(img, in.Labels()).(v1.Image), nil
}

// entry is one file or directory of the root filesystem.
type entry struct {
	name     string // without a leading slash
	mode     int64  // permission bits, plus c_ISVTX for /tmp
	uid, gid int
	body     []byte // nil for a directory
}

// rootFS returns the layer's tar: sorted by name, fixed modes and owners,
// every time Created.
func rootFS(in Input) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, GID, HomeDir)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	files := []entry{
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, body: in.Binary},
		{name: strings.TrimPrefix(CABundlePath, "/"), mode: 0o644, body: in.Bundle()},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: strings.TrimPrefix(HomeDir, "/"), mode: 0o700, uid: UID, gid: GID},
		{name: "tmp", mode: 0o1777},
	}
	// Every parent directory, root-owned 0755.
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.name] = true
	}
	for _, f := range slices.Clone(files) {
		for dir := path.Dir(f.name); dir != "."; dir = path.Dir(dir) {
			if !seen[dir] {
				seen[dir] = true
				files = append(files, entry{name: dir, mode: 0o755})
			}
		}
	}
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := in.Created.UTC()
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if f.body == nil {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses b with a header that holds no name and no time, at
// the default level (level 9 takes about 4 times longer for 1% less).
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	return buf.Bytes(), nil
}
