package eventlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

func TestGetEvent(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: 1})
	ctx := context.Background()
	appendAll(t, l, event("a", "x.one", `{"n":1}`), event("b", "x.one", `{"n":2}`))
	acker, _ := stream(t, l, eventlog.StreamRequest{Subscription: "acker", MaxInFlight: 1})
	drainAcked(t, l, acker, "acker", 1) // a acked; b offered next
	b := next(t, acker)                 // held, not settled
	dead, _ := stream(t, l, eventlog.StreamRequest{Subscription: "dead", MaxInFlight: 1})
	settle(t, l, eventlog.Settlement{Subscription: "dead", IDs: []string{next(t, dead).ID}, Reject: true})
	// With MaxAttempts 1, a is dead-lettered when it comes back, then b is offered.
	if e := next(t, dead); e.ID != "b" {
		t.Fatalf("next on dead = %s, want b", e.ID)
	}
	other, _ := stream(t, l, eventlog.StreamRequest{Subscription: "other", Types: []string{"y.*"}})
	_ = other
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := l.GetSubscription(ctx, "other"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("subscription other not created: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	e, ds, err := l.GetEvent(ctx, "A", 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "a" || string(e.Payload) != `{"n":1}` || e.Type != "x.one" {
		t.Errorf("GetEvent(A) event = %+v", e)
	}
	want := []eventlog.Delivery{
		{Subscription: "acker", State: eventlog.DeliveryAcked},
		{Subscription: "dead", State: eventlog.DeliveryDeadLettered, Attempts: 1, DeadReason: eventlog.ReasonMaxAttempts},
		{Subscription: "other", State: eventlog.DeliveryNotSubscribed},
	}
	sortBy := cmpopts.SortSlices(func(a, b eventlog.Delivery) bool { return a.Subscription < b.Subscription })
	if diff := cmp.Diff(want, ds, sortBy, cmpopts.IgnoreFields(eventlog.Delivery{}, "DeadAt")); diff != "" {
		t.Errorf("GetEvent(a) deliveries (-want +got):\n%s", diff)
	}
	_, ds, err = l.GetEvent(ctx, b.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	want = []eventlog.Delivery{
		{Subscription: "acker", State: eventlog.DeliveryDelivered, Attempts: 1},
		{Subscription: "dead", State: eventlog.DeliveryDelivered, Attempts: 1},
		{Subscription: "other", State: eventlog.DeliveryNotSubscribed},
	}
	if diff := cmp.Diff(want, ds, sortBy); diff != "" {
		t.Errorf("GetEvent(b) deliveries (-want +got):\n%s", diff)
	}
	appendAll(t, l, event("c", "x.one", `{}`))
	_, ds, err = l.GetEvent(ctx, "c", 0)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Subscription != "acker" || ds[0].State != eventlog.DeliveryPending {
		t.Errorf("GetEvent(c) on acker = %+v, want pending (acker holds b with in-flight 1)", ds[0])
	}
	// With its sequence the event is read there; a sequence holding another
	// event, or none, falls back to the search.
	for _, seq := range []uint64{e.Sequence, b.Sequence, 1000} {
		got, _, err := l.GetEvent(ctx, "a", seq)
		if err != nil || got.ID != "a" || got.Sequence != e.Sequence {
			t.Errorf("GetEvent(a, %d) = %s at %d, %v; want a at %d", seq, got.ID, got.Sequence, err, e.Sequence)
		}
	}
	if _, _, err := l.GetEvent(ctx, "missing", e.Sequence); !errors.Is(err, eventlog.ErrEventNotFound) {
		t.Errorf("GetEvent(missing, %d) = %v, want ErrEventNotFound", e.Sequence, err)
	}
	if _, _, err := l.GetEvent(ctx, "missing", 0); !errors.Is(err, eventlog.ErrEventNotFound) {
		t.Errorf("GetEvent(missing) = %v, want ErrEventNotFound", err)
	}
	if _, _, err := l.GetEvent(ctx, "", 0); !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("GetEvent(\"\") = %v, want ErrInvalid", err)
	}
}
