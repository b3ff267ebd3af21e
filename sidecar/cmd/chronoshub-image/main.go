// Command chronoshub-image builds chronoshub-sidecar's container image with
// no Docker daemon and no base image to pull (make image): it builds the
// static binary from the repository it runs in, puts it in one layer with
// Debian's CA bundle and a non-root user, and writes, in the output
// directory,
//
//	oci/                    the image as an OCI image layout, with its SBOM attached as a referrer
//	chronoshub-sidecar.tar  the same image as a tarball for docker load and podman load
//	sbom.cdx.json           the CycloneDX SBOM: every Go module in the binary, the Debian CA package
//	digest                  the image's manifest digest (sha256:…)
//
// Two builds of the same commit give the same digest: every time is the
// commit's (or SOURCE_DATE_EPOCH), files are sorted with fixed modes and
// owners. With -push REF it also pushes the image and its SBOM to a
// registry. Run "chronoshub-image -help" for the flags.
package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "chronoshub-image:", err)
		os.Exit(1)
	}
}

const usage = `Usage: chronoshub-image [flags]

Builds chronoshub-sidecar's container image from the git repository in the
current directory, with no Docker daemon and no base image: the static
binary (CGO_ENABLED=0, -trimpath, -buildvcs=true), the CA bundle,
/etc/passwd and /etc/group with the user nonroot (65532), entrypoint
/usr/local/bin/chronoshub-sidecar, command "serve", OCI labels source,
revision, version and created. Every time in the image is the commit's
time, or SOURCE_DATE_EPOCH when set: the same commit gives the same digest.

It writes, in -out: oci/ (an OCI image layout: the image, and its SBOM as
a referrer), chronoshub-sidecar.tar (for docker load and podman load),
sbom.cdx.json (CycloneDX) and digest.

Flags:
`

// extraCAs collects repeated -extra-ca flags.
type extraCAs []string

func (e *extraCAs) String() string     { return strings.Join(*e, ",") }
func (e *extraCAs) Set(s string) error { *e = append(*e, s); return nil }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chronoshub-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	out := fs.String("out", "bin/image", "the output `directory`; what a previous build wrote there is replaced")
	caBundle := fs.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle `file` to put in the image, from the Debian package -ca-package")
	caPackage := fs.String("ca-package", "ca-certificates", "the Debian `package` the CA bundle comes from (its version, from dpkg, goes in the SBOM)")
	var extra extraCAs
	fs.Var(&extra, "extra-ca", "a PEM `file` of CA certificates to append to the bundle (repeatable), for example a private CA in front of ChronosHub")
	source := fs.String("source", "https://github.com/chronoshub/chronoshub-sidecar", "the org.opencontainers.image.source `URL`")
	tag := fs.String("tag", "", "the `name:tag` in the tarball (docker load) and the layout; default chronoshub-sidecar:<version>")
	push := fs.String("push", "", "also push the image and its SBOM (as a referrer) to this `reference` (registry/repository:tag), with the credentials of docker login")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	repo, err := gitInfo(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	bundle, err := os.ReadFile(*caBundle)
	if err != nil {
		return fmt.Errorf("CA bundle: %w (install Debian's ca-certificates package, or pass -ca-bundle)", err)
	}
	if !bytes.Contains(bundle, []byte("-----BEGIN CERTIFICATE-----")) {
		return fmt.Errorf("CA bundle %s holds no PEM certificate", *caBundle)
	}
	pkg, err := debianPackage(ctx, *caPackage)
	if err != nil {
		return err
	}
	var extras [][]byte
	for _, f := range extra {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("extra CA: %w", err)
		}
		if !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
			return fmt.Errorf("extra CA %s holds no PEM certificate", f)
		}
		extras = append(extras, b)
	}

	tmp, err := os.MkdirTemp("", "chronoshub-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	binPath := filepath.Join(tmp, "chronoshub-sidecar")
	// -buildvcs=true whatever GOFLAGS says, so that the binary's version
	// (--version, the SBOM) is the commit's wherever the image is built.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=true", "-ldflags=-s -w", "-o", binPath, "./sidecar/cmd/chronoshub-sidecar")
	build.Dir = repo.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	binary, err := os.ReadFile(binPath)
	if err != nil {
		return err
	}
	bi, err := buildinfo.Read(bytes.NewReader(binary))
	if err != nil {
		return fmt.Errorf("build information of the binary: %w", err)
	}
	version := bi.Main.Version
	if version == "" || version == "(devel)" {
		// What the Go command stamps in a clean checkout without a tag;
		// it stamps nothing in a git worktree (a .git file).
		version = fmt.Sprintf("v0.0.0-%s-%.12s", repo.created.UTC().Format("20060102150405"), repo.revision)
		if repo.dirty {
			version += "+dirty"
		}
	}
	in := ociimage.Input{
		Binary: binary, CABundle: bundle, ExtraCAs: extras,
		Arch: setting(bi, "GOARCH"), Created: repo.created,
		Source: *source, Revision: repo.revision, Version: version,
	}
	img, err := ociimage.Build(in)
	if err != nil {
		return err
	}
	sbom, err := ociimage.SBOM(in, ociimage.SBOMInput{Build: bi, CAPackage: pkg})
	if err != nil {
		return err
	}
	art, err := ociimage.SBOMArtifact(img, sbom, in.Labels()[ociimage.LabelCreated])
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if *tag == "" {
		*tag = "chronoshub-sidecar:" + strings.NewReplacer("+", "-").Replace(version)
	}

	layoutDir := filepath.Join(*out, "oci")
	tarFile := filepath.Join(*out, "chronoshub-sidecar.tar")
	sbomFile := filepath.Join(*out, "sbom.cdx.json")
	digestFile := filepath.Join(*out, "digest")
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, p := range []string{layoutDir, tarFile, sbomFile, digestFile} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := ociimage.WriteLayout(layoutDir, img, *tag, art); err != nil {
		return err
	}
	if err := ociimage.WriteTarball(tarFile, img, *tag); err != nil {
		return err
	}
	if err := os.WriteFile(sbomFile, sbom, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "image    %s %s\n", *tag, digest)
	fmt.Fprintf(stdout, "layout   %s (SBOM referrer %s)\n", layoutDir, art.Digest())
	fmt.Fprintf(stdout, "tarball  %s\n", tarFile)
	fmt.Fprintf(stdout, "sbom     %s (%d Go modules, %s %s)\n", sbomFile, len(bi.Deps), pkg.Name, pkg.Version)
	if *push != "" {
		ref, err := ociimage.Push(ctx, *push, img, art)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed   %s\n", ref)
	}
	return nil
}

// repoInfo is what the image takes from the git repository.
type repoInfo struct {
	root, revision string
	created        time.Time
	dirty          bool
}

// gitInfo reads the repository's root, HEAD and HEAD's commit time (or
// SOURCE_DATE_EPOCH), and warns when the work tree has changes.
func gitInfo(ctx context.Context, getenv func(string) string, stderr io.Writer) (repoInfo, error) {
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
			}
			return "", fmt.Errorf("git %s: %w (run chronoshub-image in the repository)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	var r repoInfo
	var err error
	if r.root, err = git("rev-parse", "--show-toplevel"); err != nil {
		return r, err
	}
	if r.revision, err = git("rev-parse", "HEAD"); err != nil {
		return r, err
	}
	epoch := getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = git("log", "-1", "--format=%ct", "HEAD"); err != nil {
			return r, err
		}
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || sec <= 0 {
		return r, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a positive number of seconds", epoch)
	}
	r.created = time.Unix(sec, 0).UTC()
	status, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return r, err
	}
	if r.dirty = status != ""; r.dirty {
		fmt.Fprintf(stderr, "chronoshub-image: warning: the work tree has uncommitted changes; the image is labelled with revision %s but holds them\n", r.revision)
	}
	return r, nil
}

// debianPackage asks dpkg for an installed package's version and
// architecture, and /etc/os-release for the distribution.
func debianPackage(ctx context.Context, name string) (ociimage.DebianPackage, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version} ${Architecture}", name).Output()
	if err != nil {
		return ociimage.DebianPackage{}, fmt.Errorf("dpkg-query %s: %w (the SBOM needs the CA bundle's Debian package: apt-get install %s)", name, err, name)
	}
	version, arch, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || version == "" || arch == "" {
		return ociimage.DebianPackage{}, fmt.Errorf("dpkg-query %s: unexpected answer %q", name, out)
	}
	p := ociimage.DebianPackage{Name: name, Version: version, Arch: arch}
	if osr, err := os.ReadFile("/etc/os-release"); err == nil {
		var id, ver string
		for line := range strings.Lines(string(osr)) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "ID":
				id = v
			case "VERSION_ID":
				ver = v
			}
		}
		if id != "" && ver != "" {
			p.Distro = id + "-" + ver
		}
	}
	return p, nil
}

func setting(bi *buildinfo.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
