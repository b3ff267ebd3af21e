package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	certFile, keyFile, err := Generate([]string{"sidecar.example", "10.0.0.7", "localhost"}, dir)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if certFile != filepath.Join(dir, CertFile) || keyFile != filepath.Join(dir, KeyFile) {
		t.Errorf("Generate = %q, %q; want files %s, %s in %s", certFile, keyFile, CertFile, KeyFile, dir)
	}
	for _, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, perm)
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	c := pair.Leaf
	if diff := cmp.Diff([]string{"sidecar.example", "localhost"}, c.DNSNames); diff != "" {
		t.Errorf("DNSNames mismatch (-want +got):\n%s", diff)
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"10.0.0.7", "127.0.0.1", "::1"}, ips); diff != "" {
		t.Errorf("IPAddresses mismatch (-want +got):\n%s", diff)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < 365*24*time.Hour || d > 367*24*time.Hour {
		t.Errorf("validity is %v, want one year", d)
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage = %v, want server auth", c.ExtKeyUsage)
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("VerifyHostname(127.0.0.1): %v", err)
	}
}
