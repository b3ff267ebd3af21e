package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
)

// devCredentialsFile, in the dev dir, keeps the playground's API key and
// webhook secret across runs, so that commands copied from an earlier run
// (a trigger with the secret) keep working.
const devCredentialsFile = "credentials.json"

// devCredentials are the playground's generated credentials.
type devCredentials struct {
	APIKey        string `json:"apiKey"`
	WebhookSecret string `json:"webhookSecret"`

	certFile, keyFile string
	// created is true when any of them was made by this run.
	created bool
}

// loadDevCredentials returns the credentials kept in dir, making those that
// are missing, unreadable or (for the certificate) about to expire; with
// regenerate, all are made anew.
func loadDevCredentials(dir string, regenerate bool) (devCredentials, error) {
	var c devCredentials
	path := filepath.Join(dir, devCredentialsFile)
	if !regenerate {
		if b, err := os.ReadFile(path); err == nil {
			if err := json.Unmarshal(b, &c); err != nil || !strings.HasPrefix(c.APIKey, "dev_key_") || !strings.HasPrefix(c.WebhookSecret, "dev_whsec_") {
				c = devCredentials{}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return c, err
		}
	}
	if c.APIKey == "" {
		c = devCredentials{APIKey: "dev_key_" + randomHex(16), WebhookSecret: "dev_whsec_" + randomHex(16), created: true}
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := writeFileAtomic(path, append(b, '\n')); err != nil {
			return c, fmt.Errorf("keep credentials: %w", err)
		}
	}
	tlsDir := filepath.Join(dir, "tls")
	c.certFile, c.keyFile = filepath.Join(tlsDir, devcert.CertFile), filepath.Join(tlsDir, devcert.KeyFile)
	if regenerate || !usableCert(c.certFile, c.keyFile) {
		var err error
		if c.certFile, c.keyFile, err = devcert.Generate([]string{"localhost", "127.0.0.1", "::1"}, tlsDir); err != nil {
			return c, fmt.Errorf("certificate: %w", err)
		}
		c.created = true
	}
	return c, nil
}

// usableCert reports whether the pair loads and stays valid for a day.
func usableCert(certFile, keyFile string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	return err == nil && pair.Leaf != nil && time.Until(pair.Leaf.NotAfter) > 24*time.Hour
}

// writeFileAtomic writes data to path with mode 0600 through a rename.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// selfCommand is how the banner names this program so that its commands
// work where they are printed: "go run ./sidecar/cmd/chronoshub-sidecar"
// under go run (from the repository), else the executable as invoked.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "chronoshub-sidecar"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./sidecar/cmd/chronoshub-sidecar"
	}
	if p, err := exec.LookPath("chronoshub-sidecar"); err == nil && sameFile(p, exe) {
		return "chronoshub-sidecar"
	}
	return exe
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
