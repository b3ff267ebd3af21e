package eventlog_test

import (
	"context"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// TestTraceContextTravelsWithTheEvent: the trace context given to Append
// comes back on delivery, in the dead-letter set and after a replay; an
// event stored without one comes back without one.
func TestTraceContextTravelsWithTheEvent(t *testing.T) {
	t.Parallel()
	const (
		parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		state  = "vendor=opaque,other=1"
	)
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: 1})
	traced := event("e1", "manuscript.submitted", `{"n":1}`)
	traced.TraceParent, traced.TraceState = parent, state
	appendAll(t, l, traced, event("e2", "manuscript.submitted", `{"n":2}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 1})

	got := next(t, ch)
	if got.ID != "e1" || got.TraceParent != parent || got.TraceState != state {
		t.Fatalf("delivered %s with trace context %q, %q; want e1 with %q, %q", got.ID, got.TraceParent, got.TraceState, parent, state)
	}
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{"e1"}, Reject: true})
	got = next(t, ch)
	if got.ID != "e2" || got.TraceParent != "" || got.TraceState != "" {
		t.Fatalf("delivered %s with trace context %q, %q; want e2 with none", got.ID, got.TraceParent, got.TraceState)
	}
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{"e2"}})

	dead, _, err := l.ListDeadLetters(context.Background(), "s", 0, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("ListDeadLetters = %v, %v; want one", dead, err)
	}
	if d := dead[0].Event; d.TraceParent != parent || d.TraceState != state {
		t.Fatalf("dead letter trace context %q, %q; want %q, %q", d.TraceParent, d.TraceState, parent, state)
	}
	if _, _, err := l.ReplayDeadLetters(context.Background(), "s", []string{"e1"}, false); err != nil {
		t.Fatal(err)
	}
	got = next(t, ch)
	if got.ID != "e1" || got.TraceParent != parent || got.TraceState != state {
		t.Fatalf("replayed %s with trace context %q, %q; want e1 with %q, %q", got.ID, got.TraceParent, got.TraceState, parent, state)
	}
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{"e1"}})
}
