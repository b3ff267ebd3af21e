package credentials

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxPEMBytes bounds how much of a certificate or key file is read.
const maxPEMBytes = 1 << 20

// certificateName labels certificates in logs and OnReload.
const certificateName = "tls_certificate"

// Certificate is a TLS certificate and private key read from two PEM files
// and reloaded by a [Watcher] when either changes. A pair that fails to load
// (a file missing, unparsable, or a key that does not match the certificate,
// as happens between the two writes of a non-atomic update) keeps the last
// good pair in service. It is safe for concurrent use.
type Certificate struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // serialises polls; guards sum and failure
	sum     [sha256.Size]byte
	failure string
}

// NewCertificate loads the pair from certFile and keyFile now and fails if it
// is not a valid pair. Its GetCertificate goes in tls.Config.GetCertificate.
func NewCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	cert, sum, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert.Store(cert)
	c.sum = sum
	return c, nil
}

// GetCertificate returns the current certificate, whatever the ClientHello.
// It never fails: it has the signature tls.Config.GetCertificate wants.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// Files returns the certificate and key file paths.
func (c *Certificate) Files() (certFile, keyFile string) { return c.certFile, c.keyFile }

// NotAfter returns when the current certificate expires.
func (c *Certificate) NotAfter() time.Time {
	if leaf := c.cert.Load().Leaf; leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

// load reads and parses both files and returns the pair with the hash of
// their bytes. Errors name the files, never their content.
func (c *Certificate) load() (*tls.Certificate, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	certPEM, err := readLimited(c.certFile, maxPEMBytes)
	if err != nil {
		return nil, sum, fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := readLimited(c.keyFile, maxPEMBytes)
	if err != nil {
		return nil, sum, fmt.Errorf("tls key: %w", err)
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	h.Sum(sum[:0])
	if sum == c.sum {
		return nil, sum, nil // unchanged: the caller keeps what it has
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors describe the problem, not the key material.
		return nil, sum, fmt.Errorf("tls pair %s, %s: %w", c.certFile, c.keyFile, err)
	}
	return &cert, sum, nil
}

// poll reloads the pair if either file changed.
func (c *Certificate) poll() pollResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	var res pollResult
	cert, sum, err := c.load()
	switch {
	case err != nil:
		if msg := err.Error(); msg != c.failure {
			c.failure = msg
			res.err = err
		}
	case cert == nil: // unchanged
		res.recovered = c.failure != ""
		c.failure = ""
	default:
		c.cert.Store(cert)
		c.sum, c.failure = sum, ""
		res.changed = true
	}
	return res
}
