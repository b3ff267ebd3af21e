package grpcapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// TestReplayEvents replays acknowledged events over gRPC and REST: they come
// back marked as replays, and bad requests change nothing.
func TestReplayEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rest := e.rest(t)
	ctx := t.Context()
	start := time.Now()
	e.appendEvent(t, "r1", "manuscript.submitted", `{"n":1}`)
	e.appendEvent(t, "r2", "manuscript.submitted", `{"n":2}`)
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ev := recv(t, s)
		if ev.GetReplay() {
			t.Errorf("first delivery of %s marked as a replay", ev.GetId())
		}
		if _, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: []string{ev.GetId()}}); err != nil {
			t.Fatal(err)
		}
	}

	resp, err := e.client.ReplayEvents(ctx, &sidecarv1.ReplayEventsRequest{Subscription: "app", EventIds: []string{"r2", "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"r2"}, resp.GetEventIds()); diff != "" || !cmp.Equal([]string{"gone"}, resp.GetUnknownEventIds()) {
		t.Errorf("ReplayEvents = %v; want r2 replayed, gone unknown", resp)
	}
	if ev := recv(t, s); ev.GetId() != "r2" || !ev.GetReplay() || ev.GetAttempt() != 1 {
		t.Errorf("replayed event = %v; want r2, replay, attempt 1", ev)
	}
	code, body := restCall(t, rest, http.MethodPost, "/v1/subscriptions/app/events:replay",
		`{"startTime":"`+start.UTC().Format(time.RFC3339Nano)+`","eventTypes":["manuscript.*"]}`)
	if code != http.StatusOK || !strings.Contains(strings.ReplaceAll(body, " ", ""), `"eventIds":["r1","r2"]`) {
		t.Errorf("REST replay by time = %d %s; want 200 replaying r1, r2", code, body)
	}
	for _, want := range []string{"r1", "r2"} {
		if ev := recv(t, s); ev.GetId() != want || !ev.GetReplay() {
			t.Errorf("replayed event = %v; want %s, replay", ev, want)
		}
	}

	now := timestamppb.Now()
	earlier := timestamppb.New(time.Now().Add(-time.Hour))
	bad := []struct {
		name string
		req  *sidecarv1.ReplayEventsRequest
		code codes.Code
	}{
		{"unknown subscription", &sidecarv1.ReplayEventsRequest{Subscription: "nobody", EventIds: []string{"r1"}}, codes.NotFound},
		{"neither ids nor time", &sidecarv1.ReplayEventsRequest{Subscription: "app"}, codes.InvalidArgument},
		{"both", &sidecarv1.ReplayEventsRequest{Subscription: "app", EventIds: []string{"r1"}, StartTime: now}, codes.InvalidArgument},
		{"end before start", &sidecarv1.ReplayEventsRequest{Subscription: "app", StartTime: now, EndTime: earlier}, codes.InvalidArgument},
		{"end without start", &sidecarv1.ReplayEventsRequest{Subscription: "app", EndTime: now}, codes.InvalidArgument},
		{"page size with ids", &sidecarv1.ReplayEventsRequest{Subscription: "app", EventIds: []string{"r1"}, PageSize: 5}, codes.InvalidArgument},
		{"page size too large", &sidecarv1.ReplayEventsRequest{Subscription: "app", StartTime: earlier, PageSize: 10001}, codes.InvalidArgument},
		{"bad token", &sidecarv1.ReplayEventsRequest{Subscription: "app", StartTime: earlier, PageToken: "x"}, codes.InvalidArgument},
		{"bad type", &sidecarv1.ReplayEventsRequest{Subscription: "app", StartTime: earlier, EventTypes: []string{"a b"}}, codes.InvalidArgument},
		{"invalid time", &sidecarv1.ReplayEventsRequest{Subscription: "app", StartTime: &timestamppb.Timestamp{Nanos: -1}}, codes.InvalidArgument},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.ReplayEvents(ctx, tt.req)
			if status.Code(err) != tt.code {
				t.Errorf("ReplayEvents(%v) = %v, want %v", tt.req, err, tt.code)
			}
		})
	}
	if code, body := restCall(t, rest, http.MethodPost, "/v1/subscriptions/nobody/events:replay", `{"eventIds":["r1"]}`); code != http.StatusNotFound {
		t.Errorf("REST replay to an unknown subscription = %d %s, want 404", code, body)
	}
	sub, err := e.client.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "app"})
	if err != nil || sub.GetSubscription().GetPendingCount() != 0 {
		t.Errorf("GetSubscription after the bad requests = %v, %v; want nothing pending", sub, err)
	}
}

// TestConsoleReads: GetEvent, ListRecentWebhooks and ListSentEvents over
// REST, the routes the console reads.
func TestConsoleReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rest := e.rest(t)
	e.appendEvent(t, "g1", "manuscript.submitted", `{"n":1}`)
	if _, err := e.client.SendEvent(t.Context(), &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{"x":1}`), IdempotencyKey: "k/1"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/v1/events/g1", http.StatusOK, `"payload":{"n":1}`},
		{"/v1/events/g1?sequence=1", http.StatusOK, `"payload":{"n":1}`},
		{"/v1/events/nope", http.StatusNotFound, `not in the log`},
		{"/v1/webhooks", http.StatusOK, `{}`},
		{"/v1/sent-events", http.StatusOK, `"idempotencyKey":"k/1"`},
		{"/v1/sent-events?pageSize=1001", http.StatusBadRequest, `page_size`},
		{"/v1/sent-events/k/1", http.StatusOK, `"state":"SENT_EVENT_STATE_ACCEPTED"`},
	}
	for _, tt := range tests {
		code, body := restCall(t, rest, http.MethodGet, tt.path, "")
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s = %d %s; want %d containing %s", tt.path, code, body, tt.code, tt.want)
		}
	}
}
