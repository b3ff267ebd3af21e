package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
)

// vector is one entry of testdata/vectors.json; see testdata/README.md.
type vector struct {
	Name            string `json:"name"`
	Secret          string `json:"secret"`
	EventType       string `json:"event_type"`
	EventID         string `json:"event_id"`
	Timestamp       string `json:"timestamp"`
	Payload         []byte `json:"payload"` // base64 in the file
	PythonSignature string `json:"python_signature"`
	CSharpSignature string `json:"csharp_signature"`
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		tb.Fatalf("parse vectors.json: %v", err)
	}
	if len(vs) == 0 {
		tb.Fatal("vectors.json has no vectors")
	}
	return vs
}

// byteLengthSignature signs with len(payload) in bytes, the mistake Verify
// must not accept for non-ASCII payloads.
func byteLengthSignature(v vector) string {
	mac := hmac.New(sha256.New, []byte(v.Secret))
	fmt.Fprintf(mac, "%d:%s|%s|%s|%s", len(v.Payload), v.Payload, v.EventType, v.EventID, v.Timestamp)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			secrets := [][]byte{[]byte(v.Secret)}
			for _, sig := range []string{v.PythonSignature, v.CSharpSignature} {
				if err := signature.Verify(secrets, v.Payload, v.EventType, v.EventID, v.Timestamp, sig); err != nil {
					t.Errorf("Verify(%q) = %v, want nil", sig, err)
				}
			}
			if got := signature.Sign([]byte(v.Secret), v.Payload, v.EventType, v.EventID, v.Timestamp); got != v.CSharpSignature {
				t.Errorf("Sign() = %q, want csharp_signature %q", got, v.CSharpSignature)
			}
			if got := signature.SignCodePoints([]byte(v.Secret), v.Payload, v.EventType, v.EventID, v.Timestamp); got != v.PythonSignature {
				t.Errorf("SignCodePoints() = %q, want python_signature %q", got, v.PythonSignature)
			}
			if !isASCII(v.Payload) {
				sig := byteLengthSignature(v)
				if err := signature.Verify(secrets, v.Payload, v.EventType, v.EventID, v.Timestamp, sig); !errors.Is(err, signature.ErrMismatch) {
					t.Errorf("Verify(byte-length signature %q) = %v, want %v", sig, err, signature.ErrMismatch)
				}
			}
		})
	}
}

func TestVerifyRotation(t *testing.T) {
	for _, v := range loadVectors(t) {
		secret, other := []byte(v.Secret), []byte("previous-secret")
		for name, secrets := range map[string][][]byte{
			"current first":  {secret, other},
			"current second": {other, secret},
			"with empty":     {nil, {}, secret},
		} {
			t.Run(v.Name+"/"+name, func(t *testing.T) {
				for _, sig := range []string{v.PythonSignature, v.CSharpSignature} {
					if err := signature.Verify(secrets, v.Payload, v.EventType, v.EventID, v.Timestamp, sig); err != nil {
						t.Errorf("Verify(%q) = %v, want nil", sig, err)
					}
				}
			})
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	var v vector
	for _, x := range loadVectors(t) {
		if x.Name == "emoji" {
			v = x
		}
	}
	if v.Name == "" {
		t.Fatal(`vectors.json has no "emoji" vector`)
	}
	secret := []byte(v.Secret)
	good := v.CSharpSignature
	wantHex := strings.TrimPrefix(good, "sha256=")
	pythonHex := strings.TrimPrefix(v.PythonSignature, "sha256=")
	flipped := append([]byte{}, v.Payload...)
	flipped[len(flipped)-2] ^= 1

	tests := []struct {
		name              string
		secrets           [][]byte
		payload           []byte
		eventType, id, ts string
		header            string
		want              error
	}{
		{name: "tampered payload", payload: flipped, header: good, want: signature.ErrMismatch},
		{name: "appended payload", payload: append(append([]byte{}, v.Payload...), ' '), header: good, want: signature.ErrMismatch},
		{name: "tampered type", eventType: v.EventType + "x", header: good, want: signature.ErrMismatch},
		{name: "tampered id", id: strings.ToUpper(v.EventID), header: good, want: signature.ErrMismatch},
		{name: "tampered timestamp", ts: "1740000001", header: good, want: signature.ErrMismatch},
		{name: "wrong secret", secrets: [][]byte{[]byte("nope")}, header: good, want: signature.ErrMismatch},
		{name: "no secrets", secrets: [][]byte{}, header: good, want: signature.ErrMismatch},
		{name: "only empty secrets", secrets: [][]byte{nil, {}}, header: good, want: signature.ErrMismatch},
		{name: "missing", header: "", want: signature.ErrMissing},
		{name: "uppercase hex", header: "sha256=" + strings.ToUpper(wantHex), want: signature.ErrMalformed},
		{name: "short", header: good[:len(good)-1], want: signature.ErrMalformed},
		{name: "long", header: good + "0", want: signature.ErrMalformed},
		{name: "no prefix", header: wantHex, want: signature.ErrMalformed},
		{name: "prefix only", header: "sha256=", want: signature.ErrMalformed},
		{name: "uppercase prefix", header: "SHA256=" + wantHex, want: signature.ErrMalformed},
		{name: "sha1", header: "sha1=" + wantHex[:40], want: signature.ErrMalformed},
		{name: "spaces", header: " " + good, want: signature.ErrMalformed},
		{name: "non-hex", header: "sha256=" + strings.Repeat("g", 64), want: signature.ErrMalformed},
		{name: "invalid UTF-8", payload: []byte("{\"x\":\"\xff\"}"), header: good, want: signature.ErrInvalidUTF8},
		{name: "truncated rune", payload: v.Payload[:len(v.Payload)-3], header: good, want: signature.ErrInvalidUTF8},
		{name: "surrogate half", payload: []byte("\xed\xa0\x80"), header: good, want: signature.ErrInvalidUTF8},
		{name: "ok", header: good},
		{name: "ok python", header: v.PythonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = [][]byte{secret}
			}
			payload := tt.payload
			if payload == nil {
				payload = v.Payload
			}
			eventType, id, ts := or(tt.eventType, v.EventType), or(tt.id, v.EventID), or(tt.ts, v.Timestamp)
			err := signature.Verify(secrets, payload, eventType, id, ts, tt.header)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, err, tt.want)
			}
			if err == nil {
				return
			}
			msg := err.Error()
			for _, leak := range []string{v.Secret, wantHex, pythonHex} {
				if strings.Contains(msg, leak) {
					t.Errorf("Verify(%q) error %q contains a secret or expected MAC %q", tt.header, msg, leak)
				}
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestSignLengths pins the two length conventions on hand-checked inputs, so a
// failure points at the length rather than at the HMAC.
func TestSignLengths(t *testing.T) {
	secret := []byte("k")
	tests := []struct {
		payload           string
		utf16, codePoints int
	}{
		{"", 0, 0},
		{"{}", 2, 2},
		{"é", 1, 1},
		{"e\u0301", 2, 2},
		{"東京", 2, 2},
		{"😀", 2, 1},
		{"𝔸𝕓𝒞", 6, 3},
		{"abcdefghij😀klmnopqrstuvwxyz", 28, 27},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			want := []string{
				manual(secret, tt.utf16, tt.payload),
				manual(secret, tt.codePoints, tt.payload),
			}
			got := []string{
				signature.Sign(secret, []byte(tt.payload), "a.b", "id", "1"),
				signature.SignCodePoints(secret, []byte(tt.payload), "a.b", "id", "1"),
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Sign, SignCodePoints(%q) mismatch (-want +got):\n%s", tt.payload, diff)
			}
		})
	}
}

func manual(secret []byte, n int, payload string) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d:%s|a.b|id|1", n, payload)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func FuzzVerify(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Secret), v.Payload, v.EventType, v.EventID, v.Timestamp, v.CSharpSignature)
	}
	f.Add([]byte("k"), []byte("\xff\xfe"), "a", "b", "c", "sha256=")
	f.Add([]byte{}, []byte{}, "", "", "", "")
	f.Fuzz(func(t *testing.T, secret, payload []byte, eventType, eventID, timestamp, header string) {
		secrets := [][]byte{secret}
		err := signature.Verify(secrets, payload, eventType, eventID, timestamp, header)
		if err != nil && !errors.Is(err, signature.ErrMissing) && !errors.Is(err, signature.ErrMalformed) &&
			!errors.Is(err, signature.ErrInvalidUTF8) && !errors.Is(err, signature.ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want nil or a sentinel error", header, err)
		}
		if !utf8.Valid(payload) {
			if err := signature.Verify(secrets, payload, eventType, eventID, timestamp, signature.Sign(secret, payload, eventType, eventID, timestamp)); !errors.Is(err, signature.ErrInvalidUTF8) {
				t.Errorf("Verify(invalid UTF-8 %q) = %v, want %v", payload, err, signature.ErrInvalidUTF8)
			}
			return
		}
		if len(secret) == 0 {
			return // Verify skips empty secrets by design.
		}
		for _, sig := range []string{
			signature.Sign(secret, payload, eventType, eventID, timestamp),
			signature.SignCodePoints(secret, payload, eventType, eventID, timestamp),
		} {
			if err := signature.Verify(secrets, payload, eventType, eventID, timestamp, sig); err != nil {
				t.Errorf("Verify(%q) for payload %q = %v, want nil", sig, payload, err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	const eventType, eventID, timestamp = "manuscript.submitted", "d4e5f6a7-b8c9-0123-4567-89abcdef0123", "1740000000"
	secret := []byte("whsec_bench_secret")
	for _, p := range []struct {
		name string
		unit string
	}{
		{"ascii_1KiB", "abcdefgh"},
		{"nonBMP_1KiB", "𝔸😀"}, // 8 bytes, 4 UTF-16 units, 2 code points
	} {
		payload := []byte(strings.Repeat(p.unit, 1024/len(p.unit)))
		for _, s := range []struct {
			name    string
			secrets [][]byte
			sign    func(secret, payload []byte, eventType, eventID, timestamp string) string
		}{
			{"one_secret", [][]byte{secret}, signature.Sign},
			// Worst realistic case: rotation, matching the second secret
			// with the length convention tried last.
			{"rotation_python", [][]byte{[]byte("previous-secret"), secret}, signature.SignCodePoints},
		} {
			sig := s.sign(secret, payload, eventType, eventID, timestamp)
			b.Run(p.name+"/"+s.name, func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for b.Loop() {
					if err := signature.Verify(s.secrets, payload, eventType, eventID, timestamp, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
