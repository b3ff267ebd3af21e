package natsconn

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"nats://nats:4222", "nats://nats:4222"},
		{"nats://user:secret@nats:4222", "nats://REDACTED@nats:4222"},
		{"nats://s3cr3t-token@nats:4222", "nats://REDACTED@nats:4222"},
		{"tls://a:4222, nats://u:p@b:4222,nats://c:4222", "tls://a:4222, nats://REDACTED@b:4222,nats://c:4222"},
		{"u:p@host:4222", "REDACTED@host:4222"},
		{"nats://us%zz:p@w@host:4222", "nats://REDACTED@host:4222"}, // not parsable by net/url
		{"nats://u:pa/ss@host:4222", "nats://REDACTED@host:4222"},
		{"nats://u:pa?ss@host:4222", "nats://REDACTED@host:4222"},
		{"nats://u:pa#ss@host:4222", "nats://REDACTED@host:4222"},
		{"nats://u:p%ss@host:4222", "nats://REDACTED@host:4222"},
		{"nats://tok/en@host:4222,nats://other:4222", "nats://REDACTED@host:4222,nats://other:4222"},
		// An '@' in a path or query is taken for the end of user
		// information: over-redacting is the safe side.
		{"nats://host:4222/?q=a@b", "nats://REDACTED@b"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRedact: whatever the user name and password hold (but the list
// separator), Redact shows neither, only the host.
func FuzzRedact(f *testing.F) {
	for _, s := range [][2]string{{"user", "secret"}, {"u", "pa/ss"}, {"u", "p?w#x"}, {"u", "p%zz"}, {"t@k", "p@ss"}, {"", "://x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, user, password string) {
		if strings.Contains(user+password, ",") {
			t.Skip("a comma separates URLs")
		}
		u := "nats://" + user + ":" + password + "@host:4222"
		if got, want := Redact(u), "nats://REDACTED@host:4222"; got != want {
			t.Fatalf("Redact(%q) = %q, want %q", u, got, want)
		}
	})
}

// TestConnectErrorHidesPassword: the error of a connection to a URL whose
// password holds characters net/url refuses or misreads names no part of
// the password.
func TestConnectErrorHidesPassword(t *testing.T) {
	t.Parallel()
	for _, password := range []string{"se%zzcret", "se/cr?et#x", "secret"} {
		u := "nats://user:" + password + "@127.0.0.1:1"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := ConnectExternal(ctx, ExternalOptions{URL: u, Timeout: time.Second})
		cancel()
		if err == nil {
			t.Fatalf("ConnectExternal(%q) = nil, want an error (nothing listens)", Redact(u))
		}
		for _, part := range []string{password, "%zz", "cr?et"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("ConnectExternal error %q shows %q of the password", err, part)
			}
		}
	}
}
