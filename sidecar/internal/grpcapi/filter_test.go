package grpcapi_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// eventTypesComment returns the comment of StreamEventsRequest.event_types
// in sidecar.proto, the text the generated stubs and the OpenAPI document
// carry, with its lines joined.
func eventTypesComment(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../../proto/chronoshub/sidecar/v1/sidecar.proto")
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Index(string(src), "message StreamEventsRequest {")
	field := strings.Index(string(src)[msg:], "repeated string event_types = 2;")
	if msg < 0 || field < 0 {
		t.Fatal("sidecar.proto has no StreamEventsRequest.event_types")
	}
	lines := strings.Split(string(src)[msg:msg+field], "\n")
	var comment []string
	for i := len(lines) - 2; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "//") {
			break
		}
		comment = append([]string{strings.TrimSpace(strings.TrimPrefix(l, "//"))}, comment...)
	}
	return strings.Join(comment, " ")
}

// TestDocumentedFilterRules checks each rule the event_types comment states
// against the server's answers. The comment used to say that a different
// filter "replaces them when no other stream is open", while the server
// refuses it.
func TestDocumentedFilterRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	doc := eventTypesComment(t)
	for _, stale := range []string{"replaces them", "no other stream is open"} {
		if strings.Contains(doc, stale) {
			t.Errorf("the event_types comment still says %q: %s", stale, doc)
		}
	}

	// open opens a stream, waits until it is attached or refused, closes it
	// and waits until the sidecar counts it closed.
	open := func(sub string, types ...string) error {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: sub, EventTypes: types})
		if err != nil {
			cancel()
			return err
		}
		md, _ := s.Header()
		if md == nil {
			_, err = s.Recv()
		}
		cancel()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got, gerr := e.client.GetSubscription(t.Context(), &sidecarv1.GetSubscriptionRequest{Subscription: sub})
			if status.Code(gerr) == codes.NotFound || got.GetSubscription().GetOpenStreams() == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("subscription %s still counts an open stream after 10s", sub)
			}
		}
		return err
	}
	filter := func(sub string) []string {
		t.Helper()
		got, err := e.client.GetSubscription(t.Context(), &sidecarv1.GetSubscriptionRequest{Subscription: sub})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetSubscription().GetEventTypes()
	}

	// Each rule: the sentence of the comment that states it, a subscription
	// created with created (nil: none), a stream with asked, and the answer
	// and filter that follow.
	tests := []struct {
		rule       string
		created    []string
		asked      []string
		code       codes.Code
		wantFilter []string
	}{
		{"The filters belong to the subscription and are set when the stream creates it.",
			nil, []string{"manuscript.submitted"}, codes.OK, []string{"manuscript.submitted"}},
		{"the same filters or none attach to it",
			[]string{"manuscript.submitted"}, []string{"manuscript.submitted"}, codes.OK, []string{"manuscript.submitted"}},
		{"the same filters or none attach to it",
			[]string{"manuscript.submitted"}, nil, codes.OK, []string{"manuscript.submitted"}},
		{"wider ones (matching every type it receives, and more) widen it",
			[]string{"manuscript.submitted"}, []string{"manuscript.*"}, codes.OK, []string{"manuscript.*"}},
		{"wider ones (matching every type it receives, and more) widen it",
			[]string{"manuscript.submitted"}, []string{"manuscript.submitted", "review.*"}, codes.OK, []string{"manuscript.submitted", "review.*"}},
		{"any others are refused with FAILED_PRECONDITION",
			[]string{"manuscript.*"}, []string{"manuscript.submitted"}, codes.FailedPrecondition, []string{"manuscript.*"}},
		{"any others are refused with FAILED_PRECONDITION",
			[]string{"manuscript.*"}, []string{"review.*"}, codes.FailedPrecondition, []string{"manuscript.*"}},
		{"any others are refused with FAILED_PRECONDITION",
			nil, []string{"manuscript.*"}, codes.FailedPrecondition, nil},
	}
	for i, tt := range tests {
		sub := "rule-" + string(rune('a'+i))
		if !strings.Contains(doc, tt.rule) {
			t.Errorf("the event_types comment does not state %q: %s", tt.rule, doc)
		}
		if tt.created != nil || tt.code != codes.OK {
			// Create the subscription, with no stream left open on it.
			if err := open(sub, tt.created...); err != nil {
				t.Fatalf("create %s with %q: %v", sub, tt.created, err)
			}
		}
		err := open(sub, tt.asked...)
		if status.Code(err) != tt.code {
			t.Errorf("rule %q: stream with %q on a subscription of %q (no stream open) = %v, want %v", tt.rule, tt.asked, tt.created, err, tt.code)
		}
		if got := filter(sub); !cmp.Equal(got, tt.wantFilter) {
			t.Errorf("rule %q: filter after a stream with %q = %q, want %q", tt.rule, tt.asked, got, tt.wantFilter)
		}
	}

	// "Only UpdateSubscription narrows them."
	const rule = "Only UpdateSubscription narrows them."
	if !strings.Contains(doc, rule) {
		t.Errorf("the event_types comment does not state %q: %s", rule, doc)
	}
	if err := open("narrowed", "manuscript.*"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UpdateSubscription(t.Context(), &sidecarv1.UpdateSubscriptionRequest{Subscription: "narrowed", EventTypes: []string{"manuscript.submitted"}}); err != nil {
		t.Fatalf("UpdateSubscription narrowing: %v", err)
	}
	if got := filter("narrowed"); !cmp.Equal(got, []string{"manuscript.submitted"}) {
		t.Errorf("filter after UpdateSubscription = %q, want manuscript.submitted", got)
	}
}
