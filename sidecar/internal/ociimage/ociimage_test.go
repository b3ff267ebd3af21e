package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const pemCert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func testInput() Input {
	return Input{
		Binary:   []byte("\x7fELF not really"),
		CABundle: []byte(pemCert),
		ExtraCAs: [][]byte{[]byte(strings.TrimSuffix(pemCert, "\n"))},
		Arch:     "amd64",
		Created:  time.Unix(1795716813, 0),
		Source:   "https://example.com/repo", Revision: "0123abcd", Version: "v1.2.3",
	}
}

func TestBuildLayer(t *testing.T) {
	t.Parallel()
	img, err := Build(testInput())
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("Layers() = %d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	type file struct {
		Name     string
		Mode     int64
		UID, GID int
		Body     string
	}
	var got []file
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(1795716813, 0)) {
			t.Errorf("%s has time %v, want the creation time", h.Name, h.ModTime)
		}
		b, _ := io.ReadAll(tr)
		got = append(got, file{h.Name, h.Mode, h.Uid, h.Gid, string(b)})
	}
	want := []file{
		{"etc/", 0o755, 0, 0, ""},
		{"etc/group", 0o644, 0, 0, "root:x:0:\nnonroot:x:65532:\n"},
		{"etc/passwd", 0o644, 0, 0, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		{"etc/ssl/", 0o755, 0, 0, ""},
		{"etc/ssl/certs/", 0o755, 0, 0, ""},
		// The extra CA gets the newline it lacked.
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, 0, pemCert + pemCert},
		{"home/", 0o755, 0, 0, ""},
		{"home/nonroot/", 0o700, 65532, 65532, ""},
		{"tmp/", 0o1777, 0, 0, ""},
		{"usr/", 0o755, 0, 0, ""},
		{"usr/local/", 0o755, 0, 0, ""},
		{"usr/local/bin/", 0o755, 0, 0, ""},
		{"usr/local/bin/chronoshub-sidecar", 0o755, 0, 0, "\x7fELF not really"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations[LabelRevision] != "0123abcd" || m.Annotations[LabelCreated] != "2026-11-26T18:13:33Z" {
		t.Errorf("manifest annotations = %v", m.Annotations)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*Input)
		want   string
	}{
		{"no binary", func(in *Input) { in.Binary = nil }, "no binary"},
		{"bundle not PEM", func(in *Input) { in.CABundle = []byte("x") }, "the CA bundle holds no PEM certificate"},
		{"extra CA not PEM", func(in *Input) { in.ExtraCAs = [][]byte{[]byte("x")} }, "extra CA 1 holds no PEM certificate"},
		{"no arch", func(in *Input) { in.Arch = "" }, "no architecture"},
		{"no time", func(in *Input) { in.Created = time.Time{} }, "no creation time"},
		{"no revision", func(in *Input) { in.Revision = "" }, "source, revision and version are all required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := testInput()
			tc.change(&in)
			if _, err := Build(in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build = %v, want an error with %q", err, tc.want)
			}
			if _, err := SBOM(in, SBOMInput{Build: &debug.BuildInfo{}, CAPackage: DebianPackage{Name: "a", Version: "1", Arch: "all"}}); err == nil {
				t.Error("SBOM of a bad input succeeded")
			}
		})
	}
}

func TestSBOMDocument(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Path:      "example.com/app/cmd/app",
		Main:      debug.Module{Path: "example.com/app"},
		Deps: []*debug.Module{
			{Path: "example.com/a", Version: "v1.0.0", Sum: "h1:a"},
			{Path: "example.com/b", Version: "v0.1.0", Replace: &debug.Module{Path: "example.com/fork/b", Version: "v0.1.1+incompatible", Sum: "h1:b"}},
		},
	}
	pkg := DebianPackage{Name: "ca-certificates", Version: "20230311+deb12u1", Arch: "all", Distro: "debian-12"}
	in := testInput()
	b, err := SBOM(in, SBOMInput{Build: bi, CAPackage: pkg})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := SBOM(in, SBOMInput{Build: bi, CAPackage: pkg})
	if !bytes.Equal(b, again) {
		t.Error("two SBOMs of the same input differ")
	}
	var bom cdxBOM
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatal(err)
	}
	var purls []string
	for _, c := range bom.Components {
		purls = append(purls, c.PURL)
	}
	want := []string{
		"pkg:golang/example.com/app@v1.2.3",
		"pkg:golang/example.com/a@v1.0.0",
		"pkg:golang/example.com/fork/b@v0.1.1%2Bincompatible",
		"pkg:golang/stdlib@1.26.8",
		"pkg:deb/debian/ca-certificates@20230311%2Bdeb12u1?arch=all&distro=debian-12",
		"", // the extra CA, a file
	}
	if diff := cmp.Diff(want, purls); diff != "" {
		t.Errorf("SBOM purls (-want +got):\n%s", diff)
	}
	if bom.Metadata.Timestamp != "2026-11-26T18:13:33Z" || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
		t.Errorf("timestamp %q serial %q", bom.Metadata.Timestamp, bom.SerialNumber)
	}
}

// TestPush pushes an image and its SBOM to a registry with the referrers
// API and finds the SBOM among the image's referrers.
func TestPush(t *testing.T) {
	t.Parallel()
	for _, referrersAPI := range []bool{true, false} {
		t.Run(map[bool]string{true: "referrers API", false: "fallback tag"}[referrersAPI], func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(referrersAPI), registry.Logger(log.New(io.Discard, "", 0))))
			t.Cleanup(srv.Close)
			in := testInput()
			img, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			art, err := SBOMArtifact(img, []byte(`{"bomFormat":"CycloneDX"}`), "2026-11-26T18:13:33Z")
			if err != nil {
				t.Fatal(err)
			}
			ref := strings.TrimPrefix(srv.URL, "http://") + "/chronoshub-sidecar:v1.2.3"
			got, err := push(context.Background(), ref, img, []Artifact{art})
			if err != nil {
				t.Fatal(err)
			}
			digest, _ := img.Digest()
			if got.DigestStr() != digest.String() {
				t.Errorf("push = %s, want the image digest %s", got, digest)
			}
			idx, err := remote.Referrers(got)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := idx.IndexManifest()
			// (Not ArtifactType: go-containerregistry's test registry
			// reports the config's media type there, not the manifest's
			// artifactType.)
			if len(m.Manifests) != 1 || m.Manifests[0].Digest != art.Digest() {
				t.Fatalf("referrers of the image = %+v, want the SBOM %s", m.Manifests, art.Digest())
			}
			tag, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			tagged, err := remote.Image(tag)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := tagged.Digest(); d != digest {
				t.Errorf("the tag points to %s, want %s", d, digest)
			}
		})
	}
}
