package ociimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// emptyConfig is the OCI empty descriptor's content, the config of an
// artifact manifest (image-spec manifest.md, "Guidance for an empty
// descriptor").
var emptyConfig = []byte("{}")

// Artifact is an OCI artifact manifest and the blobs it refers to.
type Artifact struct {
	Manifest []byte
	Blobs    map[v1.Hash][]byte
}

// Digest returns the manifest's digest.
func (a Artifact) Digest() v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(a.Manifest))
	return h
}

// Descriptor returns the manifest's descriptor, with its artifactType.
func (a Artifact) Descriptor() v1.Descriptor {
	return v1.Descriptor{
		MediaType:    types.OCIManifestSchema1,
		Size:         int64(len(a.Manifest)),
		Digest:       a.Digest(),
		ArtifactType: SBOMMediaType,
	}
}

// RawManifest and MediaType make an Artifact a remote.Taggable.
func (a Artifact) RawManifest() ([]byte, error) { return a.Manifest, nil }

// MediaType returns the OCI image manifest media type.
func (a Artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// SBOMArtifact returns the OCI artifact manifest that attaches sbom to img
// (its subject), so that registries with the referrers API, and the OCI
// layout, list it among img's referrers.
func SBOMArtifact(img v1.Image, sbom []byte, created string) (Artifact, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return Artifact{}, err
	}
	imgDigest, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return Artifact{}, err
	}
	cfgDigest, _, _ := v1.SHA256(bytes.NewReader(emptyConfig))
	sbomDigest, _, _ := v1.SHA256(bytes.NewReader(sbom))
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  SBOMMediaType,
		Config: v1.Descriptor{
			MediaType: "application/vnd.oci.empty.v1+json", Size: int64(len(emptyConfig)), Digest: cfgDigest, Data: emptyConfig,
		},
		Layers: []v1.Descriptor{{
			MediaType: SBOMMediaType, Size: int64(len(sbom)), Digest: sbomDigest,
			Annotations: map[string]string{"org.opencontainers.image.title": "sbom.cdx.json"},
		}},
		Subject:     &v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: imgDigest},
		Annotations: map[string]string{LabelCreated: created},
	}
	b, err := json.Marshal(m)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Manifest: b, Blobs: map[v1.Hash][]byte{cfgDigest: emptyConfig, sbomDigest: sbom}}, nil
}

// WriteLayout writes img and the artifacts that refer to it as a new OCI
// image layout in dir, which must not exist yet: index.json lists the
// image, named refName (org.opencontainers.image.ref.name), then each
// artifact.
func WriteLayout(dir string, img v1.Image, refName string, artifacts ...Artifact) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("OCI layout %s exists already", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": refName})); err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	for _, a := range artifacts {
		for h, b := range a.Blobs {
			if err := p.WriteBlob(h, io.NopCloser(bytes.NewReader(b))); err != nil {
				return fmt.Errorf("OCI layout %s: %w", dir, err)
			}
		}
		if err := p.WriteBlob(a.Digest(), io.NopCloser(bytes.NewReader(a.Manifest))); err != nil {
			return fmt.Errorf("OCI layout %s: %w", dir, err)
		}
		if err := p.AppendDescriptor(a.Descriptor()); err != nil {
			return fmt.Errorf("OCI layout %s: %w", dir, err)
		}
	}
	// Blobs are written 0600 through a temporary file: make the layout
	// readable as a checkout is (a registry client may run as another
	// user).
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o644)
	})
}

// WriteTarball writes img as the tarball `docker load` and `podman load`
// take, tagged tag.
func WriteTarball(file string, img v1.Image, tag string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(file, t, img); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
