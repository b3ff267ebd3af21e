package grpcapi_test

import (
	"context"
	"testing"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// TestStreamPassesStoredTraceContext: without a Tracer the service starts no
// span and hands the app the trace context stored with the event, as it is.
func TestStreamPassesStoredTraceContext(t *testing.T) {
	t.Parallel()
	const (
		parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		state  = "vendor=opaque"
	)
	e := newEnv(t, "")
	_, err := e.log.Append(context.Background(), eventlog.Event{
		ID: "e1", Type: "manuscript.submitted", Payload: []byte(`{}`), SignedAt: time.Unix(1763900000, 0),
		TraceParent: parent, TraceState: state,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.appendEvent(t, "e2", "manuscript.submitted", `{}`)
	s, err := e.client.StreamEvents(t.Context(), &sidecarv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, s); got.GetId() != "e1" || got.GetTraceparent() != parent || got.GetTracestate() != state {
		t.Errorf("event %s trace context = %q, %q; want e1 with %q, %q", got.GetId(), got.GetTraceparent(), got.GetTracestate(), parent, state)
	}
	if got := recv(t, s); got.GetId() != "e2" || got.GetTraceparent() != "" || got.GetTracestate() != "" {
		t.Errorf("event %s trace context = %q, %q; want e2 with none", got.GetId(), got.GetTraceparent(), got.GetTracestate())
	}
}
