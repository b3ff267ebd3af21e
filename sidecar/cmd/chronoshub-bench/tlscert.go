package main

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
)

// generateCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1
// and localhost into dir (the one the dev playground uses) and returns the
// file names and a pool that trusts it. The sidecar and the baseline server
// both serve it.
func generateCert(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	certFile, keyFile, err = devcert.Generate([]string{"localhost", "127.0.0.1", "::1"}, dir)
	if err != nil {
		return "", "", nil, err
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", "", nil, fmt.Errorf("no certificate in %s", certFile)
	}
	return certFile, keyFile, pool, nil
}
