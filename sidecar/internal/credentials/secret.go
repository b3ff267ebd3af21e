// Package credentials holds the sidecar's secrets and TLS certificate: values
// that come from an environment variable or a file and, when they come from a
// file, are reloaded without a restart.
//
// Files are polled, not watched: Kubernetes replaces a mounted Secret by
// swapping a symlink, which inotify-style watches miss, so a [Watcher]
// re-reads every registered file on an interval and applies what changed. A
// reload that fails (file deleted, empty, unreadable, a certificate that does
// not match its key) keeps the last good value and is reported; a credential
// never silently becomes empty.
//
// No value held here is ever printed: [Secret] formats, logs and marshals as
// "REDACTED", and errors and log lines name files, never their content.
package credentials

import (
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a Secret prints in place of its value.
const redacted = "REDACTED"

// Secret is a credential value that does not print itself: fmt (every verb,
// including %#v), log/slog, encoding/json and encoding/text all show
// "REDACTED". Reveal returns the value for the one place that needs it. The
// zero value is an empty secret. A Secret is immutable and safe to copy and
// share between goroutines.
type Secret struct {
	// v is a pointer so that printing a struct that holds a Secret in an
	// unexported field, which fmt does by reflection without calling
	// Format, shows an address rather than the value.
	v *string
}

// NewSecret returns a Secret holding s.
func NewSecret(s string) Secret {
	return Secret{v: &s}
}

// Reveal returns the secret value. Call it only where the value is used (a
// request header, an HMAC key), never to log or print it.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool {
	return s.v == nil || *s.v == ""
}

// String returns "REDACTED".
func (s Secret) String() string { return redacted }

// GoString returns "REDACTED", for %#v.
func (s Secret) GoString() string { return redacted }

// Format writes "REDACTED" for every verb and flag, so that no fmt verb (%x
// included) can print the value.
func (s Secret) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, redacted)
}

// LogValue implements slog.LogValuer: the secret logs as "REDACTED".
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(redacted)
}

// MarshalJSON returns the JSON string "REDACTED".
func (s Secret) MarshalJSON() ([]byte, error) {
	return []byte(`"` + redacted + `"`), nil
}

// MarshalText returns "REDACTED".
func (s Secret) MarshalText() ([]byte, error) {
	return []byte(redacted), nil
}
