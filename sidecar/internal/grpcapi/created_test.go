package grpcapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/logtest"
)

// TestStreamSaysItCreatedTheSubscription checks the signal of an implicitly
// created subscription: the header metadata (gRPC) and HTTP headers (REST)
// chronoshub-subscription-created and chronoshub-replay-events, sent before
// any event, and an Info record saying where it starts and how many events
// it will replay. Before, a mistyped name silently replayed the whole log.
func TestStreamSaysItCreatedTheSubscription(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	e := newEnvWith(t, envOptions{logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	rest := e.rest(t)
	e.appendEvent(t, "e1", "manuscript.submitted", `{}`)
	e.appendEvent(t, "e2", "manuscript.status.updated", `{}`)
	e.appendEvent(t, "e3", "manuscript.submitted", `{}`)

	header := func(req *sidecarv1.StreamEventsRequest) (created, replay []string) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		s, err := e.client.StreamEvents(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		md, err := s.Header() // before any event is received
		if err != nil {
			t.Fatalf("StreamEvents(%v) header: %v", req, err)
		}
		return md.Get(grpcapi.HeaderSubscriptionCreated), md.Get(grpcapi.HeaderReplayEvents)
	}
	created, replay := header(&sidecarv1.StreamEventsRequest{Subscription: "typo", EventTypes: []string{"manuscript.submitted"}})
	if strings.Join(created, ",") != "true" || strings.Join(replay, ",") != "2" {
		t.Errorf("new subscription: created %q, replay %q; want true, 2", created, replay)
	}
	created, replay = header(&sidecarv1.StreamEventsRequest{Subscription: "typo"})
	if strings.Join(created, ",") != "false" || len(replay) != 0 {
		t.Errorf("existing subscription: created %q, replay %q; want false and none", created, replay)
	}
	created, replay = header(&sidecarv1.StreamEventsRequest{Subscription: "late", StartPosition: sidecarv1.StartPosition_START_POSITION_NOW})
	if strings.Join(created, ",") != "true" || strings.Join(replay, ",") != "0" {
		t.Errorf("new subscription starting now: created %q, replay %q; want true, 0", created, replay)
	}

	// A refused stream sends no header: its status alone.
	s, err := e.client.StreamEvents(t.Context(), &sidecarv1.StreamEventsRequest{Subscription: "typo", EventTypes: []string{"manuscript.status.*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("stream with another filter = %v, want FAILED_PRECONDITION", err)
	}

	// REST: the same headers, on a 200 sent before any event.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rest.URL+"/v1/events:stream?subscription=rest-typo", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(grpcapi.HeaderSubscriptionCreated) != "true" || resp.Header.Get(grpcapi.HeaderReplayEvents) != "3" {
		t.Errorf("REST stream: %d %v; want 200 with %s: true and %s: 3", resp.StatusCode, resp.Header, grpcapi.HeaderSubscriptionCreated, grpcapi.HeaderReplayEvents)
	}

	// The log says where each created subscription starts and what it
	// replays.
	want := map[string]struct {
		start  string
		replay float64
	}{"typo": {"oldest", 2}, "late": {"now", 0}, "rest-typo": {"oldest", 3}}
	found := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] != "subscription created by a stream" {
			continue
		}
		name, _ := r["subscription"].(string)
		w, ok := want[name]
		if !ok || r["level"] != "INFO" || r["start"] != w.start || r["replay_events"] != w.replay || found[name] {
			t.Errorf("log record %s; want one INFO record per created subscription with start %q and replay_events %v", line, w.start, w.replay)
		}
		found[name] = true
	}
	if len(found) != len(want) {
		t.Errorf("logged the creation of %v, want %v; log:\n%s", found, want, logs.String())
	}
}
