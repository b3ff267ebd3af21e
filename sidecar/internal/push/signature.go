package push

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Secret is a Standard Webhooks signing key, as "whsec_" followed by the
// key in base64. Its LogValue and String print REDACTED.
type Secret struct{ key []byte }

// secretPrefix starts a Standard Webhooks secret.
const secretPrefix = "whsec_"

// ParseSecret reads a Standard Webhooks secret ("whsec_<base64>", surrounding
// whitespace ignored). The key must be 24 to 64 bytes, as the specification
// recommends. Its errors never quote the secret.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return Secret{}, errors.New("a signing secret starts with whsec_ followed by the key in base64")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, errors.New("the signing secret after whsec_ is not valid base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return Secret{}, fmt.Errorf("the signing secret's key is %d bytes; it must be 24 to 64", len(key))
	}
	return Secret{key: key}, nil
}

// IsZero reports whether s holds no key (signing off).
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String implements fmt.Stringer.
func (Secret) String() string { return "REDACTED" }

// Sign returns the Standard Webhooks signature header value of one message:
// "v1," and the base64 HMAC-SHA256, keyed by the secret, of
// "<id>.<timestamp>.<body>".
func (s Secret) Sign(id string, timestamp time.Time, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
