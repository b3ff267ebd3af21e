package natsconn

import "testing"

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://nats:4222", "nats://nats:4222"},
		{"nats://user:secret@nats:4222", "nats://REDACTED@nats:4222"},
		{"nats://s3cr3t-token@nats:4222", "nats://REDACTED@nats:4222"},
		{"tls://a:4222, nats://u:p@b:4222,nats://c:4222", "tls://a:4222, nats://REDACTED@b:4222,nats://c:4222"},
		{"u:p@host:4222", "REDACTED@host:4222"},
		{"nats://us%zz:p@w@host:4222/path@x", "nats://REDACTED@host:4222/path@x"}, // not parsable by net/url
		{"nats://host:4222/?q=a@b", "nats://host:4222/?q=a@b"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
