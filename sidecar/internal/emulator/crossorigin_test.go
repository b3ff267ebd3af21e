package emulator_test

import (
	"net/http"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// TestControlRoutesRefuseCrossSite: a web page of another origin cannot make
// the emulator send a webhook (a text/plain POST needs no preflight) nor
// change it; programs and same-origin pages can.
func TestControlRoutesRefuseCrossSite(t *testing.T) {
	t.Parallel()
	e, srv, _ := startEmulator(t, emulator.Options{})
	body := `{"url":"http://127.0.0.1:1/webhook","event_type":"manuscript.submitted"}`
	for name, header := range map[string]map[string]string{
		"other origin":           {"Origin": "https://evil.example", "Content-Type": "text/plain"},
		"cross-site fetch":       {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
		"same-site other port":   {"Sec-Fetch-Site": "same-site"},
		"opaque origin":          {"Origin": "null"},
		"origin of another port": {"Origin": "http://127.0.0.1:1"},
	} {
		if got := do(t, http.MethodPost, srv.URL+"/_emulator/deliveries", header, body); got.status != http.StatusForbidden {
			t.Errorf("POST /_emulator/deliveries with %s = %d %s, want 403", name, got.status, got.body)
		}
		if got := do(t, http.MethodPut, srv.URL+"/_emulator/faults", header, `{}`); got.status != http.StatusForbidden {
			t.Errorf("PUT /_emulator/faults with %s = %d %s, want 403", name, got.status, got.body)
		}
	}
	if n := len(e.Deliveries()); n != 0 {
		t.Fatalf("%d deliveries started by refused requests", n)
	}
	for name, header := range map[string]map[string]string{
		"a program":   nil,
		"same origin": {"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"},
	} {
		if got := do(t, http.MethodPost, srv.URL+"/_emulator/deliveries", header, body); got.status != http.StatusAccepted {
			t.Errorf("POST /_emulator/deliveries from %s = %d %s, want 202", name, got.status, got.body)
		}
	}
}
