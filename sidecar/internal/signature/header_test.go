package signature

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var vs []struct {
		Python string `json:"python_signature"`
		CSharp string `json:"csharp_signature"`
	}
	if err := json.Unmarshal(b, &vs); err != nil {
		f.Fatal(err)
	}
	for _, v := range vs {
		f.Add(v.Python)
		f.Add(v.CSharp)
	}
	for _, s := range []string{"", "sha256=", "sha1=abc", "SHA256=00", "sha256=" + string(make([]byte, 64))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		mac, err := parseHeader(header)
		switch {
		case err == nil:
			// Only the canonical form parses, so it must round-trip exactly.
			if got := "sha256=" + hex.EncodeToString(mac[:]); got != header {
				t.Errorf("parseHeader(%q) = %x, which re-encodes as %q", header, mac, got)
			}
		case header == "":
			if !errors.Is(err, ErrMissing) {
				t.Errorf("parseHeader(%q) = %v, want %v", header, err, ErrMissing)
			}
		case !errors.Is(err, ErrMalformed):
			t.Errorf("parseHeader(%q) = %v, want %v", header, err, ErrMalformed)
		}
	})
}

func TestLengths(t *testing.T) {
	tests := []struct {
		in            string
		points, units int
		ok            bool
	}{
		{"", 0, 0, true},
		{"abcdefghijklmnopq", 17, 17, true},
		{"abcdefgh€abcdefgh😀x", 19, 20, true},
		{"\xff", 1, 1, false},
		{"abcdefgh\xc3", 9, 9, false},
		{"\xf0\x9f\x98", 3, 3, false},
	}
	for _, tt := range tests {
		points, units, ok := lengths([]byte(tt.in))
		if points != tt.points || units != tt.units || ok != tt.ok {
			t.Errorf("lengths(%q) = %d, %d, %v, want %d, %d, %v", tt.in, points, units, ok, tt.points, tt.units, tt.ok)
		}
	}
}
