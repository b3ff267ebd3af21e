package eventtype_test

import (
	"strings"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means valid
	}{
		{"simple", "manuscript.submitted", ""},
		{"one segment", "ping", ""},
		{"all characters", "A-z_0.9-Z_a", ""},
		{"max length", strings.Repeat("a", 255), ""},
		{"empty", "", "is empty"},
		{"too long", strings.Repeat("a", 256), "256 bytes, longer than 255"},
		{"leading dot", ".a", "segment 1 is empty"},
		{"trailing dot", "a.", "segment 2 is empty"},
		{"double dot", "a..b", "segment 2 is empty"},
		{"space", "manuscript submitted", `character ' '`},
		{"star", "manuscript.*", `character '*'`},
		{"gt", "manuscript.>", `character '>'`},
		{"non-ASCII", "manuscript.é", `character 'é'`},
		{"NUL", "a\x00", `character '\x00'`},
		{"slash", "a/b", `character '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := eventtype.Validate(tt.in)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestValidateTruncates(t *testing.T) {
	in := strings.Repeat("x", 10000) + "!"
	err := eventtype.Validate(in)
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("Validate(10001 bytes) = %v, want a short error", err)
	}
	in = strings.Repeat("é", 200) // cut must not split a rune
	if err := eventtype.Validate(in); err == nil || strings.Contains(err.Error(), `\x`) {
		t.Errorf("Validate(200 × é) = %v, want an error quoting whole runes", err)
	}
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"literal", "manuscript.submitted", ""},
		{"star", "manuscript.*", ""},
		{"star first", "*.submitted", ""},
		{"only star", "*", ""},
		{"gt", "manuscript.>", ""},
		{"only gt", ">", ""},
		{"star then gt", "*.>", ""},
		{"empty", "", "is empty"},
		{"gt not last", "manuscript.>.x", `">" is allowed only as the last segment`},
		{"star in segment", "manu*.x", `character '*'`},
		{"gt in segment", "a.b>", `character '>'`},
		{"empty segment", "a..>", "segment 2 is empty"},
		{"too long", strings.Repeat("*.", 128), "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := eventtype.ValidatePattern(tt.in)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ValidatePattern(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		p, t string
		want bool
	}{
		{"manuscript.submitted", "manuscript.submitted", true},
		{"manuscript.submitted", "manuscript.Submitted", false},
		{"manuscript.submitted", "manuscript.submitted.x", false},
		{"manuscript.submitted.x", "manuscript.submitted", false},
		{"manuscript.*", "manuscript.submitted", true},
		{"manuscript.*", "manuscript", false},
		{"manuscript.*", "manuscript.a.b", false},
		{"*.submitted", "review.submitted", true},
		{"*", "ping", true},
		{"*", "a.b", false},
		{"manuscript.>", "manuscript.submitted", true},
		{"manuscript.>", "manuscript.a.b.c", true},
		{"manuscript.>", "manuscript", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"manuscriptx", "manuscript", false},
		{"manuscript", "manuscriptx", false},
		// Invalid input never matches.
		{"a.>", "a.", false},
		{"a.>.b", "a.x.b", false},
		{"", "", false},
		{"a.*", "a.*", false},
		{">", "", false},
	}
	for _, tt := range tests {
		if got := eventtype.Match(tt.p, tt.t); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.p, tt.t, got, tt.want)
		}
	}
}

func FuzzEventType(f *testing.F) {
	for _, s := range []struct{ p, t string }{
		{"manuscript.submitted", "manuscript.submitted"},
		{"manuscript.*", "manuscript.decision_made"},
		{">", "a.b"},
		{"*.>", "x"},
		{"a..b", ".a"},
		{"é.*", "é.x"},
		{strings.Repeat("a.", 130), strings.Repeat("b", 300)},
	} {
		f.Add(s.p, s.t)
	}
	f.Fuzz(func(t *testing.T, p, typ string) {
		typeErr := eventtype.Validate(typ)
		patternErr := eventtype.ValidatePattern(p)
		matched := eventtype.Match(p, typ)
		if matched && (typeErr != nil || patternErr != nil) {
			t.Errorf("Match(%q, %q) = true for invalid input (%v; %v)", p, typ, patternErr, typeErr)
		}
		for _, err := range []error{typeErr, patternErr} {
			if err != nil && len(err.Error()) > 512 { // bounded whatever the input length
				t.Errorf("error is %d bytes, want it truncated: %.80q…", len(err.Error()), err)
			}
		}
		if typeErr == nil {
			if err := eventtype.ValidatePattern(typ); err != nil {
				t.Errorf("ValidatePattern(%q) = %v for a valid type, want nil", typ, err)
			}
			if !eventtype.Match(typ, typ) {
				t.Errorf("Match(%q, %q) = false, want a valid type to match itself", typ, typ)
			}
			if !eventtype.Match(">", typ) {
				t.Errorf("Match(\">\", %q) = false, want true", typ)
			}
		}
	})
}
