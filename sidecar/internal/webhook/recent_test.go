package webhook_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// TestRecent: every request's outcome is kept, newest first, with the
// client's id and type cut, and never its signature.
func TestRecent(t *testing.T) {
	t.Parallel()
	recent := webhook.NewRecent(3)
	f := newFixture(t, webhook.Options{Recent: recent}, nil)
	long := strings.Repeat("t", 300)
	for _, p := range []post{
		{},                                      // stored
		{header: timestamp(-60)},                // duplicate
		{sign: signWith("wrong")},               // bad signature
		{header: timestamp(-3600)},              // stale
		{after: setAfter("X-Event-Type", long)}, // an invalid type
	} {
		f.do(p.request())
	}
	got := recent.List()
	want := []webhook.RecentWebhook{
		{EventID: eventID, EventType: long[:100], Outcome: webhook.OutcomeRejected, Reason: "bad_event_type", Status: http.StatusBadRequest},
		{EventID: eventID, EventType: eventType, Outcome: webhook.OutcomeRejected, Reason: "stale_timestamp", Status: http.StatusUnauthorized},
		{EventID: eventID, EventType: eventType, Outcome: webhook.OutcomeRejected, Reason: "bad_signature", Status: http.StatusUnauthorized},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(webhook.RecentWebhook{}, "ReceivedAt")); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	for _, w := range got {
		if w.ReceivedAt.IsZero() {
			t.Errorf("ReceivedAt not set: %+v", w)
		}
		for _, s := range []string{w.EventID, w.EventType, w.Reason} {
			if strings.Contains(s, "sha256") || strings.Contains(s, secret) {
				t.Errorf("recent webhook holds a signature or secret: %+v", w)
			}
		}
	}
}

func TestRecentOrder(t *testing.T) {
	t.Parallel()
	recent := webhook.NewRecent(0)
	f := newFixture(t, webhook.Options{Recent: recent}, nil)
	f.do(post{}.request())
	f.do(post{header: timestamp(-60)}.request())
	var outcomes []string
	for _, w := range recent.List() {
		outcomes = append(outcomes, w.Outcome+" "+http.StatusText(w.Status))
	}
	if diff := cmp.Diff([]string{"duplicate OK", "stored OK"}, outcomes); diff != "" {
		t.Errorf("List outcomes (-want +got):\n%s", diff)
	}
}
