package grpcapi_test

import (
	"context"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// TestUnknownSubscriptionNotFound checks that every RPC naming a
// subscription that does not exist answers NOT_FOUND over gRPC and 404 over
// REST, rather than success with every id "unknown" (a typo in an app's ack
// code would become silent redelivery and then dead letters).
func TestUnknownSubscriptionNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rest := e.rest(t)
	// A subscription that exists, so that "not found" is about the name.
	e.appendEvent(t, "e1", "manuscript.submitted", `{}`)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "real"})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, s)
	cancel()

	const sub = "reall" // mistyped
	tests := []struct {
		name       string
		grpc       func(context.Context) error
		method     string
		path, body string
	}{
		{"AckEvents", func(ctx context.Context) error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: sub, EventIds: []string{"e1"}})
			return err
		}, http.MethodPost, "/v1/events:ack", `{"subscription":"reall","eventIds":["e1"]}`},
		{"AckEvents reject", func(ctx context.Context) error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: sub, EventIds: []string{"e1"}, Reject: true})
			return err
		}, http.MethodPost, "/v1/events:ack", `{"subscription":"reall","eventIds":["e1"],"reject":true}`},
		{"ListDeadLetters", func(ctx context.Context) error {
			_, err := e.client.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{Subscription: sub})
			return err
		}, http.MethodGet, "/v1/subscriptions/reall/dead-letters", ""},
		{"ReplayDeadLetters", func(ctx context.Context) error {
			_, err := e.client.ReplayDeadLetters(ctx, &sidecarv1.ReplayDeadLettersRequest{Subscription: sub, All: true})
			return err
		}, http.MethodPost, "/v1/subscriptions/reall/dead-letters:replay", `{"all":true}`},
		{"GetSubscription", func(ctx context.Context) error {
			_, err := e.client.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: sub})
			return err
		}, http.MethodGet, "/v1/subscriptions/reall", ""},
		{"UpdateSubscription", func(ctx context.Context) error {
			_, err := e.client.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: sub, EventTypes: []string{"manuscript.*"}})
			return err
		}, http.MethodPost, "/v1/subscriptions/reall:update", `{"eventTypes":["manuscript.*"]}`},
		{"DeleteSubscription", func(ctx context.Context) error {
			_, err := e.client.DeleteSubscription(ctx, &sidecarv1.DeleteSubscriptionRequest{Subscription: sub})
			return err
		}, http.MethodDelete, "/v1/subscriptions/reall", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.grpc(t.Context()); status.Code(err) != codes.NotFound {
				t.Errorf("gRPC %s(%q) = %v, want NOT_FOUND", tt.name, sub, err)
			}
			if code, body := restCall(t, rest, tt.method, tt.path, tt.body); code != http.StatusNotFound {
				t.Errorf("REST %s %s = %d %s, want 404", tt.method, tt.path, code, body)
			}
		})
	}
	// The subscription that exists still answers, with the id unknown.
	got, err := e.client.AckEvents(t.Context(), &sidecarv1.AckEventsRequest{Subscription: "real", EventIds: []string{"nope"}})
	if err != nil || len(got.GetUnknownEventIds()) != 1 {
		t.Errorf("AckEvents(real, nope) = %v, %v; want nope unknown", got, err)
	}
}
