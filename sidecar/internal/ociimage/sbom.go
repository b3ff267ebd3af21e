package ociimage

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SBOMMediaType is the media type of the SBOM, as a blob and as the
// artifactType of the manifest that attaches it to the image.
const SBOMMediaType = "application/vnd.cyclonedx+json"

// DebianPackage is the Debian package the CA bundle comes from.
type DebianPackage struct {
	Name, Version, Arch string
	// Distro is the purl's distro qualifier, for example "debian-12".
	Distro string
}

// PURL is the package URL of p.
func (p DebianPackage) PURL() string {
	q := "arch=" + p.Arch
	if p.Distro != "" {
		q += "&distro=" + p.Distro
	}
	return "pkg:deb/debian/" + p.Name + "@" + purlEscape(p.Version) + "?" + q
}

// SBOMInput is what the SBOM describes besides the image's Input.
type SBOMInput struct {
	// Build is the binary's build information (buildinfo.Read of
	// Input.Binary): the Go modules linked into it and the toolchain.
	Build *buildinfo.BuildInfo
	// CAPackage is the Debian package of Input.CABundle.
	CAPackage DebianPackage
}

// CycloneDX 1.6 JSON, the parts this SBOM uses.
type (
	cdxBOM struct {
		BOMFormat    string         `json:"bomFormat"`
		SpecVersion  string         `json:"specVersion"`
		SerialNumber string         `json:"serialNumber"`
		Version      int            `json:"version"`
		Metadata     cdxMetadata    `json:"metadata"`
		Components   []cdxComponent `json:"components"`
	}
	cdxMetadata struct {
		Timestamp string       `json:"timestamp"`
		Tools     cdxTools     `json:"tools"`
		Component cdxComponent `json:"component"`
	}
	cdxTools struct {
		Components []cdxComponent `json:"components"`
	}
	cdxComponent struct {
		Type       string        `json:"type"`
		BOMRef     string        `json:"bom-ref,omitempty"`
		Name       string        `json:"name"`
		Version    string        `json:"version,omitempty"`
		PURL       string        `json:"purl,omitempty"`
		Hashes     []cdxHash     `json:"hashes,omitempty"`
		Properties []cdxProperty `json:"properties,omitempty"`
	}
	cdxHash struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	}
	cdxProperty struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)

// SBOM returns the CycloneDX 1.6 JSON SBOM of the image built from in: the
// image as the described component, and as its components the main module
// (the application), every Go module linked into the binary (exactly the
// "dep" lines of `go version -m`, replacements applied), the Go standard
// library, the Debian package of the CA bundle and each extra CA as a file.
// The same inputs give the same bytes.
func SBOM(in Input, s SBOMInput) ([]byte, error) {
	if err := in.validate(); err != nil {
		return nil, fmt.Errorf("image input: %w", err)
	}
	if s.Build == nil {
		return nil, errors.New("sbom: no build information")
	}
	p := s.CAPackage
	if p.Name == "" || p.Version == "" || p.Arch == "" {
		return nil, errors.New("sbom: the CA bundle's Debian package needs a name, version and architecture")
	}
	bi := s.Build
	mainPURL := goPURL(bi.Main.Path, in.Version)
	comps := []cdxComponent{{
		Type: "application", BOMRef: mainPURL, Name: bi.Main.Path, Version: in.Version, PURL: mainPURL,
		Hashes:     []cdxHash{sha(in.Binary)},
		Properties: []cdxProperty{{Name: "go:package", Value: bi.Path}, {Name: "image:path", Value: BinaryPath}},
	}}
	for _, m := range bi.Deps {
		path, version, sum := m.Path, m.Version, m.Sum
		var props []cdxProperty
		if m.Replace != nil {
			props = append(props, cdxProperty{Name: "go:module:replaces", Value: m.Path + "@" + m.Version})
			path, version, sum = m.Replace.Path, m.Replace.Version, m.Replace.Sum
		}
		if sum != "" {
			props = append(props, cdxProperty{Name: "go:module:sum", Value: sum})
		}
		purl := goPURL(path, version)
		comps = append(comps, cdxComponent{Type: "library", BOMRef: purl, Name: path, Version: version, PURL: purl, Properties: props})
	}
	goVersion := strings.TrimPrefix(bi.GoVersion, "go")
	stdPURL := goPURL("stdlib", goVersion)
	comps = append(comps, cdxComponent{Type: "library", BOMRef: stdPURL, Name: "stdlib", Version: goVersion, PURL: stdPURL})
	comps = append(comps, cdxComponent{
		Type: "library", BOMRef: p.PURL(), Name: p.Name, Version: p.Version, PURL: p.PURL(),
		Hashes:     []cdxHash{sha(in.CABundle)},
		Properties: []cdxProperty{{Name: "image:path", Value: CABundlePath}},
	})
	for i, ca := range in.ExtraCAs {
		comps = append(comps, cdxComponent{
			Type: "file", BOMRef: fmt.Sprintf("extra-ca-%d", i+1), Name: fmt.Sprintf("extra CA %d", i+1),
			Hashes:     []cdxHash{sha(ca)},
			Properties: []cdxProperty{{Name: "image:path", Value: CABundlePath + " (appended)"}},
		})
	}
	// A serial number the inputs determine, so that the SBOM is
	// reproducible too.
	h := sha256.New()
	h.Write(in.Binary)
	h.Write(in.Bundle())
	h.Write([]byte(in.Revision))
	serial := uuid.NewSHA1(uuid.NameSpaceURL, h.Sum(nil))
	bom := cdxBOM{
		BOMFormat:    "CycloneDX",
		SpecVersion:  "1.6",
		SerialNumber: "urn:uuid:" + serial.String(),
		Version:      1,
		Metadata: cdxMetadata{
			Timestamp: in.Created.UTC().Format(time.RFC3339),
			Tools:     cdxTools{Components: []cdxComponent{{Type: "application", Name: "chronoshub-image", Version: in.Version}}},
			Component: cdxComponent{
				Type: "container", BOMRef: "image", Name: "chronoshub-sidecar", Version: in.Version,
				Properties: []cdxProperty{
					{Name: LabelSource, Value: in.Source},
					{Name: LabelRevision, Value: in.Revision},
				},
			},
		},
		Components: comps,
	}
	b, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func sha(b []byte) cdxHash {
	sum := sha256.Sum256(b)
	return cdxHash{Alg: "SHA-256", Content: hex.EncodeToString(sum[:])}
}

// goPURL is the package URL of a Go module version.
func goPURL(path, version string) string {
	if version == "" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + purlEscape(version)
}

// purlEscape percent-encodes what a purl version cannot hold as is.
func purlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
