package devcert

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CredentialsFile, in the dev dir, keeps the playground's API key and
// webhook secret across runs, so that commands copied from an earlier run
// (a trigger with the secret) keep working.
const CredentialsFile = "credentials.json"

// Credentials are the dev playground's: an API key and a webhook secret,
// and a self-signed certificate for the webhook.
type Credentials struct {
	APIKey        string `json:"apiKey"`
	WebhookSecret string `json:"webhookSecret"`

	CertFile, KeyFile string `json:"-"`
	// Created is true when any of them was made by this call.
	Created bool `json:"-"`
}

// LoadCredentials returns the credentials kept in dir (the certificate in
// dir/tls), making those that are missing, unreadable or, for the
// certificate, valid for less than a day; with regenerate, all are made
// anew.
func LoadCredentials(dir string, regenerate bool) (Credentials, error) {
	var c Credentials
	path := filepath.Join(dir, CredentialsFile)
	if !regenerate {
		if b, err := os.ReadFile(path); err == nil {
			if err := json.Unmarshal(b, &c); err != nil || !strings.HasPrefix(c.APIKey, "dev_key_") || !strings.HasPrefix(c.WebhookSecret, "dev_whsec_") {
				c = Credentials{}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return c, err
		}
	}
	if c.APIKey == "" {
		c = Credentials{APIKey: "dev_key_" + randomHex(16), WebhookSecret: "dev_whsec_" + randomHex(16), Created: true}
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return c, err
		}
		if err := writeFileAtomic(path, append(b, '\n')); err != nil {
			return c, fmt.Errorf("keep credentials: %w", err)
		}
	}
	tlsDir := filepath.Join(dir, "tls")
	c.CertFile, c.KeyFile = filepath.Join(tlsDir, CertFile), filepath.Join(tlsDir, KeyFile)
	if regenerate || !usable(c.CertFile, c.KeyFile) {
		var err error
		if c.CertFile, c.KeyFile, err = Generate([]string{"localhost", "127.0.0.1", "::1"}, tlsDir); err != nil {
			return c, fmt.Errorf("certificate: %w", err)
		}
		c.Created = true
	}
	return c, nil
}

// usable reports whether the pair loads and stays valid for a day.
func usable(certFile, keyFile string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	return err == nil && pair.Leaf != nil && time.Until(pair.Leaf.NotAfter) > 24*time.Hour
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
