package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/ociimage"
)

// built is one run of chronoshub-image.
type built struct {
	dir    string // its -out directory
	stdout string
}

// builder is chronoshub-image built by TestMain without the race detector:
// under it, compressing the binary into the layer takes minutes.
var builder string

// builds caches the images the tests share: building one takes a go build
// (cached after the first) and compressing the binary.
var builds sync.Map // key string → func() (built, error)

// build runs chronoshub-image with args (and env added to the
// environment) into a new directory, once per key; tests that need the
// same image share it.
func build(t *testing.T, key string, env []string, args ...string) built {
	t.Helper()
	f, _ := builds.LoadOrStore(key, sync.OnceValues(func() (built, error) {
		dir, err := os.MkdirTemp("", "chronoshub-image-test-")
		if err != nil {
			return built{}, err
		}
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, builder, append([]string{"-out", dir}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return built{}, fmt.Errorf("chronoshub-image %q: %w\n%s", args, err, stderr.String())
		}
		return built{dir: dir, stdout: stdout.String()}, nil
	}))
	b, err := f.(func() (built, error))()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "chronoshub-image-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	builder = filepath.Join(tmp, "chronoshub-image")
	if out, err := exec.Command("go", "build", "-o", builder, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build chronoshub-image: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	builds.Range(func(_, f any) bool {
		if b, err := f.(func() (built, error))(); err == nil {
			os.RemoveAll(b.dir)
		}
		return true
	})
	return code
}

// image reads the image from a build's OCI layout, checking its manifest
// and config; forEachEntry checks the layers' content.
func image(t *testing.T, b built) v1.Image {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(filepath.Join(b.dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 {
		t.Fatalf("index.json lists %d manifests, want the image and its SBOM", len(m.Manifests))
	}
	img, err := ii.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img, validate.Fast); err != nil {
		t.Fatalf("the image in the OCI layout is invalid: %v", err)
	}
	return img
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReproducible builds the image twice from the same commit and compares
// every file written; a build at another SOURCE_DATE_EPOCH must differ.
func TestReproducible(t *testing.T) {
	t.Parallel()
	a, b := build(t, "default", nil), build(t, "default-again", nil)
	files := func(root string) map[string][]byte {
		out := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out[rel] = readFile(t, p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fa, fb := files(a.dir), files(b.dir)
	if len(fa) < 8 {
		t.Fatalf("the build wrote %d files, want the layout, tarball, SBOM and digest", len(fa))
	}
	for name, content := range fa {
		if !bytes.Equal(content, fb[name]) {
			t.Errorf("%s differs between two builds of the same commit", name)
		}
	}
	if len(fa) != len(fb) {
		t.Errorf("the builds wrote %d and %d files", len(fa), len(fb))
	}
	digest := strings.TrimSpace(string(fa["digest"]))
	if !strings.HasPrefix(digest, "sha256:") || !strings.Contains(a.stdout, digest) {
		t.Errorf("digest file %q, output %q", digest, a.stdout)
	}
	img := image(t, a)
	if d, _ := img.Digest(); d.String() != digest {
		t.Errorf("layout image digest %s, digest file %s", d, digest)
	}

	// The same commit at another time is another image: the time is the
	// commit's, not the clock's.
	c := build(t, "epoch-1700000000", []string{"SOURCE_DATE_EPOCH=1700000000"})
	if got := strings.TrimSpace(string(readFile(t, filepath.Join(c.dir, "digest")))); got == digest {
		t.Errorf("SOURCE_DATE_EPOCH=1700000000 gave the same digest %s", got)
	}
	cf, err := image(t, c).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1700000000, 0).UTC(); !cf.Created.Time.Equal(want) || cf.Config.Labels[ociimage.LabelCreated] != want.Format(time.RFC3339) {
		t.Errorf("created %v, label %q; want %v", cf.Created, cf.Config.Labels[ociimage.LabelCreated], want)
	}
}

// TestImageConfig checks the config, the labels and the tarball docker load
// takes.
func TestImageConfig(t *testing.T) {
	t.Parallel()
	b := build(t, "default", nil)
	img := image(t, b)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	head := gitOut(t, "rev-parse", "HEAD")
	commitTime, _ := strconv.ParseInt(gitOut(t, "log", "-1", "--format=%ct"), 10, 64)
	if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{ociimage.BinaryPath}) ||
		!slices.Equal(cf.Config.Cmd, []string{"serve"}) || cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("config = %+v, os %s, arch %s", cf.Config, cf.OS, cf.Architecture)
	}
	labels := cf.Config.Labels
	if labels[ociimage.LabelRevision] != head || labels[ociimage.LabelSource] == "" || labels[ociimage.LabelVersion] == "" ||
		labels[ociimage.LabelCreated] != time.Unix(commitTime, 0).UTC().Format(time.RFC3339) {
		t.Errorf("labels = %v, want revision %s created at %d", labels, head, commitTime)
	}
	if !cf.Created.Time.Equal(time.Unix(commitTime, 0)) {
		t.Errorf("created %v, want the commit's time %d", cf.Created, commitTime)
	}

	// The docker-load tarball holds the same config and layers.
	timg, err := tarball.ImageFromPath(filepath.Join(b.dir, "chronoshub-sidecar.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(timg, validate.Fast); err != nil {
		t.Fatalf("tarball image: %v", err)
	}
	cn, _ := img.ConfigName()
	tn, _ := timg.ConfigName()
	if cn != tn {
		t.Errorf("tarball config %s, layout config %s", tn, cn)
	}
	// docker load reads manifest.json: one image, tagged with the version.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) {
		return os.Open(filepath.Join(b.dir, "chronoshub-sidecar.tar"))
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTag := "chronoshub-sidecar:" + strings.ReplaceAll(labels[ociimage.LabelVersion], "+", "-")
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{wantTag}) || len(m[0].Layers) != 1 {
		t.Errorf("tarball manifest.json = %+v, want one image tagged %s with one layer", m, wantTag)
	}
}

func gitOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestSBOM checks that the SBOM lists exactly the modules `go version -m`
// reports for the binary in the image, the toolchain and the Debian CA
// package as dpkg knows it, and that the layout attaches it to the image.
func TestSBOM(t *testing.T) {
	t.Parallel()
	b := build(t, "default", nil)
	img := image(t, b)
	sbom := readFile(t, filepath.Join(b.dir, "sbom.cdx.json"))
	var bom struct {
		BOMFormat, SpecVersion string
		Components             []struct{ Type, Name, Version, PURL string }
	}
	if err := json.Unmarshal(sbom, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.6" {
		t.Errorf("bomFormat %q specVersion %q", bom.BOMFormat, bom.SpecVersion)
	}

	bin := filepath.Join(t.TempDir(), "chronoshub-sidecar")
	if err := os.WriteFile(bin, fileInImage(t, img, ociimage.BinaryPath), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var goVersion, mainPath string
	for i, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case i == 0 && len(f) == 2:
			goVersion = strings.TrimPrefix(f[1], "go")
		case len(f) >= 3 && f[0] == "dep":
			want = append(want, f[1]+"@"+f[2])
		case len(f) >= 4 && f[0] == "=>": // the replacement is what is linked
			want[len(want)-1] = f[1] + "@" + f[2]
		case len(f) >= 2 && f[0] == "mod":
			mainPath = f[1]
		}
	}
	if len(want) < 10 || goVersion == "" || mainPath == "" {
		t.Fatalf("cannot read go version -m:\n%s", out)
	}
	var got []string
	var stdlib, mainMod, deb string
	for _, c := range bom.Components {
		switch {
		case c.Name == "stdlib":
			stdlib = c.Version
		case c.Type == "application":
			mainMod = c.Name
		case strings.HasPrefix(c.PURL, "pkg:golang/"):
			got = append(got, c.Name+"@"+c.Version)
		case strings.HasPrefix(c.PURL, "pkg:deb/debian/ca-certificates@"):
			deb = c.Version
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("SBOM Go modules =\n%v\nwant (go version -m)\n%v", got, want)
	}
	if stdlib != goVersion || mainMod != mainPath {
		t.Errorf("SBOM stdlib %q, main module %q; want %q, %q", stdlib, mainMod, goVersion, mainPath)
	}
	dpkg, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "ca-certificates").Output()
	if err != nil {
		t.Fatal(err)
	}
	if deb == "" || deb != string(dpkg) {
		t.Errorf("SBOM ca-certificates version %q, dpkg says %q", deb, dpkg)
	}

	// The layout's second manifest is the SBOM, its subject the image.
	ii, err := layout.ImageIndexFromPath(filepath.Join(b.dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ii.IndexManifest()
	art := im.Manifests[1]
	raw, err := layout.Path(filepath.Join(b.dir, "oci")).Bytes(art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	imgDigest, _ := img.Digest()
	if m.ArtifactType != ociimage.SBOMMediaType || m.Subject == nil || m.Subject.Digest != imgDigest || len(m.Layers) != 1 {
		t.Fatalf("SBOM manifest = %s", raw)
	}
	blob, err := layout.Path(filepath.Join(b.dir, "oci")).Bytes(m.Layers[0].Digest)
	if err != nil || !bytes.Equal(blob, sbom) {
		t.Errorf("the SBOM blob in the layout is not sbom.cdx.json (err %v)", err)
	}
}

// fileInImage returns the content of the file name in img's layers.
func fileInImage(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	var found []byte
	forEachEntry(t, img, func(h *tar.Header, r io.Reader) {
		if "/"+h.Name == name {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			found = b
		}
	})
	if found == nil {
		t.Fatalf("%s not in the image", name)
	}
	return found
}

// forEachEntry calls fn for every entry of img's layers, checking each
// layer's digest and diff ID on the way.
func forEachEntry(t *testing.T, img v1.Image, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		compressed, uncompressed := sha256.New(), sha256.New()
		zr, err := gzip.NewReader(io.TeeReader(rc, compressed))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(io.TeeReader(zr, uncompressed))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			fn(h, tr)
		}
		// The rest: tar padding and the gzip trailer.
		if _, err := io.Copy(io.Discard, io.TeeReader(zr, uncompressed)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(compressed, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		digest, _ := l.Digest()
		diffID, _ := l.DiffID()
		if got := "sha256:" + hex.EncodeToString(compressed.Sum(nil)); got != digest.String() {
			t.Errorf("layer %s has digest %s", digest, got)
		}
		if got := "sha256:" + hex.EncodeToString(uncompressed.Sum(nil)); got != diffID.String() {
			t.Errorf("layer %s has diff ID %s, config says %s", digest, got, diffID)
		}
	}
}

// unpack writes img's root filesystem into a new directory, with the
// modes, owners and times of its entries, and returns it.
func unpack(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	forEachEntry(t, img, func(h *tar.Header, r io.Reader) {
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("layer entry %q escapes the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("layer entry %q of type %c", h.Name, h.Typeflag)
		}
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, h.FileInfo().Mode()); err != nil {
			t.Fatal(err)
		}
	})
	return root
}

// newCA returns a CA certificate (PEM) and a TLS certificate it signed for
// 127.0.0.1.
func newCA(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chronoshub-image test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

// TestImageRuns unpacks the image's layers and runs the binary from that
// root with chroot, as the image's user: --version, and serve forwarding a
// SendEvent to a ChronosHub stand-in over TLS. The stand-in's certificate
// is signed by a test CA that only the image built with -extra-ca has in
// its bundle: that image reaches it, the default image refuses its
// certificate. It needs root (chroot); it fails, never skips, without.
func TestImageRuns(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("TestImageRuns runs the image's binary with chroot, which needs root: run the tests as root (CI does)")
	}
	caPEM, cert := newCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	// A ChronosHub stand-in on 127.0.0.1 with the test CA's certificate.
	var received sync.Map // manuscriptId → true
	handshakeErrs := make(chan string, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/inbound/manuscript.submitted" || r.Header.Get("X-Api-Key") != "image-test-key" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		var payload struct{ ManuscriptID string }
		if err := json.NewDecoder(r.Body).Decode(&payload); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		received.Store(payload.ManuscriptID, true)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"eventId":"5f0c9a43-8f7e-4f38-9d57-4a8f0c9e2b11","status":"Accepted"}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(chanWriter(handshakeErrs), "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	withCA := image(t, build(t, "extra-ca", nil, "-extra-ca", caFile))
	without := image(t, build(t, "default", nil))

	withCARoot, withoutRoot := unpack(t, withCA), unpack(t, without)

	t.Run("version", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		cmd := chrootCommand(t, without, withoutRoot, []string{"--version"}, nil)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("--version in the image: %v\n%s", err, out.String())
		}
		// The Go command records the commit in a clone, not in a git
		// worktree (whose .git is a file): there the version is (devel).
		cf, err := without.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		want := cf.Config.Labels[ociimage.LabelVersion]
		if fi, err := os.Stat(filepath.Join(gitOut(t, "rev-parse", "--show-toplevel"), ".git")); err == nil && !fi.IsDir() {
			want = "(devel)"
		}
		if !strings.HasPrefix(out.String(), "chronoshub-sidecar "+want+" ") {
			t.Errorf("--version printed %q, want the version %s", out.String(), want)
		}
	})

	t.Run("serve trusts a CA in the bundle", func(t *testing.T) {
		t.Parallel()
		status, body := sendThroughImage(t, withCA, withCARoot, srv.URL, "IMG-TRUSTED")
		if _, ok := received.Load("IMG-TRUSTED"); !ok || status != http.StatusOK || !strings.Contains(body, "5f0c9a43-8f7e-4f38-9d57-4a8f0c9e2b11") {
			t.Fatalf("SendEvent through the image with the CA = %d %s, want 200 with the stand-in's event id", status, body)
		}
	})

	t.Run("serve refuses a CA not in the bundle", func(t *testing.T) {
		// The sidecar above completes its handshakes: the stand-in's
		// handshake errors are this one's.
		t.Parallel()
		status, body := sendThroughImage(t, without, withoutRoot, srv.URL, "IMG-REFUSED")
		if status == http.StatusOK {
			t.Fatalf("SendEvent through the image without the CA = %d %s, want an error", status, body)
		}
		select {
		case msg := <-handshakeErrs:
			if !strings.Contains(msg, "bad certificate") && !strings.Contains(msg, "unknown certificate authority") {
				t.Errorf("the stand-in logged %q, want the client's refusal of its certificate", msg)
			}
		case <-time.After(30 * time.Second):
			t.Error("the stand-in saw no failed TLS handshake")
		}
		if _, ok := received.Load("IMG-REFUSED"); ok {
			t.Error("the stand-in received a request from the image without the CA")
		}
	})
}

type chanWriter chan string

func (c chanWriter) Write(p []byte) (int, error) {
	select {
	case c <- string(p):
	default:
	}
	return len(p), nil
}

// chrootCommand returns the image's entrypoint with args, to run chrooted
// in root as the image's user, in its working directory, with its
// environment plus env.
func chrootCommand(t *testing.T, img v1.Image, root string, args, env []string) *exec.Cmd {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, ok := strings.Cut(cf.Config.User, ":")
	u, err1 := strconv.Atoi(uid)
	g, err2 := strconv.Atoi(gid)
	if !ok || err1 != nil || err2 != nil || len(cf.Config.Entrypoint) != 1 {
		t.Fatalf("image user %q, entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
	}
	cmd := &exec.Cmd{
		Path: cf.Config.Entrypoint[0],
		Args: append([]string{cf.Config.Entrypoint[0]}, args...),
		Env:  append(slices.Clone(cf.Config.Env), env...),
		Dir:  cf.Config.WorkingDir,
		SysProcAttr: &syscall.SysProcAttr{
			Chroot:     root,
			Credential: &syscall.Credential{Uid: uint32(u), Gid: uint32(g)},
			Setpgid:    true,
		},
	}
	return cmd
}

// sendThroughImage runs `serve` from img against the ChronosHub at baseURL
// and sends one event through its REST API; it returns the answer. root
// is img unpacked.
func sendThroughImage(t *testing.T, img v1.Image, root, baseURL, manuscriptID string) (int, string) {
	t.Helper()
	cmd := chrootCommand(t, img, root, []string{"serve"}, []string{
		"CHRONOSHUB_BASE_URL=" + baseURL,
		"CHRONOSHUB_API_KEY=image-test-key",
		"CHRONOSHUB_WEBHOOK_SECRET=image-test-secret",
		"CHRONOSHUB_WEBHOOK_PLAINTEXT=true",
		"CHRONOSHUB_WEBHOOK_ADDR=127.0.0.1:0",
		"CHRONOSHUB_GRPC_ADDR=127.0.0.1:0",
		"CHRONOSHUB_HTTP_ADDR=127.0.0.1:0",
		"CHRONOSHUB_ADMIN_ADDR=127.0.0.1:0",
		"CHRONOSHUB_SEND_MAX_ATTEMPTS=1",
	})
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("serve in the image: %v", err)
	}
	exited := make(chan error, 1)
	var logs bytes.Buffer
	var logsMu sync.Mutex
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logsMu.Lock()
			logs.Write(append(sc.Bytes(), '\n'))
			logsMu.Unlock()
			var line struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "ready" {
				ready <- line.HTTPAddr
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("serve did not stop within 30s of SIGTERM")
		}
	})
	dumpLogs := func() string {
		logsMu.Lock()
		defer logsMu.Unlock()
		return logs.String()
	}
	var addr string
	select {
	case addr = <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("serve in the image exited: %v\n%s", err, dumpLogs())
	case <-time.After(90 * time.Second):
		t.Fatalf("serve in the image not ready within 90s\n%s", dumpLogs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/events:send",
		strings.NewReader(`{"type":"manuscript.submitted","payload":{"manuscriptId":"`+manuscriptID+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("SendEvent: %v\n%s", err, dumpLogs())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestBadInput checks that wrong flags and inputs are refused with a
// clear error before anything is built or written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		error string
	}{
		{"argument", []string{"extra"}, nil, `unexpected arguments ["extra"]`},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"epoch", nil, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, `SOURCE_DATE_EPOCH "yesterday" is not a positive number`},
		{"no bundle", []string{"-ca-bundle", filepath.Join(dir, "missing.crt")}, nil, "CA bundle: open"},
		{"bundle not PEM", []string{"-ca-bundle", notPEM}, nil, "holds no PEM certificate"},
		{"extra CA not PEM", []string{"-extra-ca", notPEM}, nil, "extra CA " + notPEM + " holds no PEM certificate"},
		{"no package", []string{"-ca-package", "no-such-package-here"}, nil, "dpkg-query no-such-package-here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := run(t.Context(), append([]string{"-out", out}, tc.args...), func(k string) string { return tc.env[k] }, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.error) {
				t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.error)
			}
		})
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused build created %s", out)
	}
}
