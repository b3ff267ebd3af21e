package credentials

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
	"github.com/google/go-cmp/cmp"
)

// copyPair copies a generated pair's files to certFile and keyFile.
func copyPair(t *testing.T, fromCert, fromKey, certFile, keyFile string) {
	t.Helper()
	for _, f := range [][2]string{{fromCert, certFile}, {fromKey, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, f[1], string(b))
	}
}

// generate writes a self-signed pair into a new temporary directory.
func generate(t *testing.T, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := devcert.Generate(hosts, t.TempDir())
	if err != nil {
		t.Fatalf("devcert.Generate: %v", err)
	}
	return certFile, keyFile
}

func TestNewCertificateInvalid(t *testing.T) {
	certA, keyA := generate(t)
	_, keyB := generate(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, "not PEM")
	tests := []struct {
		name              string
		certFile, keyFile string
	}{
		{"key of another certificate", certA, keyB},
		{"missing certificate", filepath.Join(dir, "missing.crt"), keyA},
		{"missing key", certA, filepath.Join(dir, "missing.key")},
		{"not PEM", certA, garbage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCertificate(tt.certFile, tt.keyFile)
			if err == nil {
				t.Fatalf("NewCertificate(%q, %q) = nil error, want one", tt.certFile, tt.keyFile)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error %q quotes key material", err)
			}
		})
	}
}

func TestCertificateReload(t *testing.T) {
	certA, keyA := generate(t, "a.example")
	certB, keyB := generate(t, "b.example")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyPair(t, certA, keyA, certFile, keyFile)

	c, err := NewCertificate(certFile, keyFile)
	if err != nil {
		t.Fatalf("NewCertificate: %v", err)
	}
	w, _, rec, logs := testWatcher(t, time.Hour)
	w.AddCertificate(c)

	// A real TLS listener serves whatever GetCertificate returns.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{GetCertificate: c.GetCertificate}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	served := func(t *testing.T) string {
		t.Helper()
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &tls.Config{
			// With a server name (SNI), crypto/tls asks GetCertificate
			// rather than the certificate httptest installs.
			ServerName:         "sidecar.test",
			InsecureSkipVerify: true, // the test reads which certificate was served
		})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].DNSNames[0]
	}

	steps := []struct {
		name        string
		change      func(t *testing.T)
		wantHost    string
		wantReloads []string
	}{
		{"initial", func(*testing.T) {}, "a.example", nil},
		{"unchanged", func(*testing.T) {}, "a.example", nil},
		{"replaced", func(t *testing.T) { copyPair(t, certB, keyB, certFile, keyFile) }, "b.example", []string{"tls_certificate=ok"}},
		{"key replaced by garbage", func(t *testing.T) { writeFile(t, keyFile, "garbage") }, "b.example", []string{"tls_certificate=error"}},
		{"still garbage", func(*testing.T) {}, "b.example", nil},
		{"certificate of another key", func(t *testing.T) { copyPair(t, certA, keyB, certFile, keyFile) }, "b.example", []string{"tls_certificate=error"}},
		{"certificate deleted", func(t *testing.T) { os.Remove(certFile) }, "b.example", []string{"tls_certificate=error"}},
		{"fixed", func(t *testing.T) { copyPair(t, certA, keyA, certFile, keyFile) }, "a.example", []string{"tls_certificate=ok"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change(t)
			w.Check()
			if got := served(t); got != st.wantHost {
				t.Errorf("served certificate for %q, want %q", got, st.wantHost)
			}
			if diff := cmp.Diff(st.wantReloads, rec.take()); diff != "" {
				t.Errorf("OnReload calls mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Errorf("log quotes key material:\n%s", logs)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("log has no WARN line for the failed reloads:\n%s", logs)
	}
	if got := c.NotAfter(); got.Before(time.Now().AddDate(0, 11, 0)) {
		t.Errorf("NotAfter() = %v, want about a year from now", got)
	}
}
