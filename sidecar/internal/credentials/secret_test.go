package credentials

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const testSecret = "s3cr3t-value"

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret(testSecret)
	type holder struct {
		Exported   Secret
		unexported Secret
		Ptr        *Secret
	}
	h := holder{Exported: s, unexported: s, Ptr: &s}
	tests := []struct {
		name string
		got  string
	}{
		{"%v", fmt.Sprintf("%v", s)},
		{"%s", fmt.Sprintf("%s", s)},
		{"%+v", fmt.Sprintf("%+v", s)},
		{"%#v", fmt.Sprintf("%#v", s)},
		{"%q", fmt.Sprintf("%q", s)},
		{"%x", fmt.Sprintf("%x", s)},
		{"%d", fmt.Sprintf("%d", s)},
		{"pointer %v", fmt.Sprintf("%v", &s)},
		{"Println", fmt.Sprintln(s)},
		{"String", s.String()},
		{"GoString", s.GoString()},
		{"struct %v", fmt.Sprintf("%v", h)},
		{"struct %+v", fmt.Sprintf("%+v", h)},
		{"struct %#v", fmt.Sprintf("%#v", h)},
		{"slice %v", fmt.Sprintf("%v", []Secret{s, s})},
		{"map %v", fmt.Sprintf("%v", map[string]Secret{"k": s})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.got, testSecret) {
				t.Errorf("printed %q, which holds the secret", tt.got)
			}
		})
	}
	if got := fmt.Sprintf("%v|%s|%+v|%#v", s, s, s, s); got != "REDACTED|REDACTED|REDACTED|REDACTED" {
		t.Errorf("fmt = %q, want REDACTED for every verb", got)
	}
}

func TestSecretLogAndMarshal(t *testing.T) {
	s := NewSecret(testSecret)

	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("msg", "secret", s, slog.Group("g", "inner", s), "any", any(s))
	log.Info("msg", "holder", struct{ S Secret }{s})
	if strings.Contains(buf.String(), testSecret) {
		t.Errorf("slog JSON output holds the secret: %s", buf.String())
	}
	if n := strings.Count(buf.String(), `"REDACTED"`); n < 4 {
		t.Errorf("slog JSON output has %d REDACTED, want at least 4: %s", n, buf.String())
	}

	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "secret", s)
	if !strings.Contains(buf.String(), "secret=REDACTED") {
		t.Errorf("slog text output = %q, want secret=REDACTED", buf.String())
	}

	for _, v := range []any{s, &s, struct{ S Secret }{s}, map[Secret]int{s: 1}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		if strings.Contains(string(b), testSecret) || !strings.Contains(string(b), "REDACTED") {
			t.Errorf("json.Marshal(%T) = %s, want REDACTED", v, b)
		}
	}
	if b, _ := s.MarshalText(); string(b) != "REDACTED" {
		t.Errorf("MarshalText = %q, want REDACTED", b)
	}
}

func TestSecretReveal(t *testing.T) {
	tests := []struct {
		name     string
		s        Secret
		want     string
		wantZero bool
	}{
		{"zero value", Secret{}, "", true},
		{"empty", NewSecret(""), "", true},
		{"value", NewSecret(testSecret), testSecret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Reveal(); got != tt.want {
				t.Errorf("Reveal() = %q, want %q", got, tt.want)
			}
			if got := tt.s.IsZero(); got != tt.wantZero {
				t.Errorf("IsZero() = %v, want %v", got, tt.wantZero)
			}
		})
	}
}
