package emulator_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// TestHistoryBounded sends more inbound events and deliveries than
// MaxHistory: the emulator keeps the newest, and pending deliveries.
func TestHistoryBounded(t *testing.T) {
	t.Parallel()
	const max = 5
	e, srv, _ := startEmulator(t, emulator.Options{MaxHistory: max, MaxRetries: -1})
	for i := range max + 3 {
		if r := postInbound(t, srv.URL, "manuscript.submitted", fmt.Sprintf(`{"n":%d}`, i)); r.status != http.StatusAccepted {
			t.Fatalf("inbound %d = %d", i, r.status)
		}
	}
	got := e.Inbound()
	if len(got) != max || string(got[0].Payload) != `{"n":3}` || string(got[max-1].Payload) != `{"n":7}` {
		t.Fatalf("Inbound() holds %d events from %s to %s, want the newest %d", len(got), got[0].Payload, got[len(got)-1].Payload, max)
	}

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(target.Close)
	var ids []string
	for range max + 3 {
		id := e.Deliver(t.Context(), target.URL, "manuscript.submitted", []byte(`{}`), "")
		if _, err := e.WaitDelivery(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ds := e.Deliveries()
	if len(ds) != max || ds[0].ID != ids[3] || ds[max-1].ID != ids[len(ids)-1] {
		t.Fatalf("Deliveries() holds %d, want the newest %d", len(ds), max)
	}
}

// TestHistoryUnbounded: with a negative MaxHistory the emulator keeps every
// inbound event, more than DefaultMaxHistory, so a long test run can account
// for each one.
func TestHistoryUnbounded(t *testing.T) {
	t.Parallel()
	e, srv, _ := startEmulator(t, emulator.Options{MaxHistory: -1, MaxRetries: -1})
	const n = emulator.DefaultMaxHistory + 5
	for i := range n {
		if r := postInbound(t, srv.URL, "manuscript.submitted", fmt.Sprintf(`{"n":%d}`, i)); r.status != http.StatusAccepted {
			t.Fatalf("inbound %d = %d", i, r.status)
		}
	}
	if got := e.Inbound(); len(got) != n || string(got[0].Payload) != `{"n":0}` {
		t.Fatalf("Inbound() holds %d events from %s, want all %d from the first", len(got), got[0].Payload, n)
	}
}
