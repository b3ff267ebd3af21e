package emulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
)

// TestSignatureVerifiesWithPythonReference runs the emulator's real webhook requests through
// ChronosHub's reference Python snippet (testdata/verify_signature.py). The emulator signs as
// the C# reference does (UTF-16 length), so the Python snippet, which counts code points,
// accepts it exactly when the payload has no character outside the BMP.
func TestSignatureVerifiesWithPythonReference(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 not found (%v): CI must run the reference Python snippet", err)
		}
		t.Skipf("python3 not found (%v): cannot run the reference Python snippet", err)
	}
	tests := []struct {
		name      string
		payload   []byte
		signature func(r received) string // nil: the header the emulator sent
		want      bool
	}{
		{"ASCII", []byte(`{"manuscriptId":"MS-1","title":"Plain"}`), nil, true},
		{"BMP only", []byte(`{"title":"Étale café – ½"}`), nil, true},
		{"outside the BMP, as the emulator signs", emulator.DefaultPayload("manuscript.submitted"), nil, false},
		{"outside the BMP, signed by code points", emulator.DefaultPayload("manuscript.submitted"), func(r received) string {
			return signature.SignCodePoints([]byte(testSecret), r.body, r.header.Get("X-Event-Type"), r.header.Get("X-Event-Id"), r.header.Get("X-Timestamp"))
		}, true},
	}

	type pyRequest struct {
		BodyBase64 string `json:"body_base64"`
		Secret     string `json:"secret"`
		EventType  string `json:"event_type"`
		EventID    string `json:"event_id"`
		Timestamp  string `json:"timestamp"`
		Signature  string `json:"signature"`
	}
	var in []pyRequest
	var want []bool
	for _, tt := range tests {
		wh := startWebhook(t, false)
		e, _, _ := startEmulator(t, emulator.Options{})
		if d := wait(t, e, e.Deliver(t.Context(), wh.URL, "manuscript.submitted", tt.payload, "")); d.State != emulator.DeliveryDelivered {
			t.Fatalf("%s: delivery %s: %s", tt.name, d.State, d.Error)
		}
		r := wh.Requests()[0]
		sig := r.header.Get("X-Hub-Signature-256")
		if tt.signature != nil {
			sig = tt.signature(r)
		}
		in = append(in, pyRequest{
			BodyBase64: base64.StdEncoding.EncodeToString(r.body),
			Secret:     testSecret,
			EventType:  r.header.Get("X-Event-Type"),
			EventID:    r.header.Get("X-Event-Id"),
			Timestamp:  r.header.Get("X-Timestamp"),
			Signature:  sig,
		})
		want = append(want, tt.want)
	}
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(t.Context(), python, filepath.Join("testdata", "verify_signature.py"))
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 verify_signature.py: %v", err)
	}
	var got []bool
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode python output %q: %v", out, err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if i >= len(got) {
				t.Fatalf("python answered %d results, want %d", len(got), len(tests))
			}
			if got[i] != want[i] {
				t.Errorf("reference verify_signature() = %v, want %v", got[i], want[i])
			}
		})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Logf("results (-want +got):\n%s", diff)
	}
}
