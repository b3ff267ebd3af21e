package outbox

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRedeliveryDuringSendIsNotPosted: a queued event's message that comes
// back while a worker is still posting it (that worker's process stalled past
// the ack deadline) is not posted a second time: the first post holds a lease.
func TestRedeliveryDuringSendIsNotPosted(t *testing.T) {
	t.Parallel()
	hub := newHeldHub(t)
	_, js := connect(t, startNATS(t, t.TempDir()))
	oc := make(outcomes, 1)
	// The forwarder's consumer with a short ack deadline, fetched here without Run's
	// keep-alive, stands for a forwarder whose process stalled: the message comes back
	// while its post runs.
	o := openOutbox(t, store{js: js}, hub.client(t, 1), Options{OnOutcome: oc.hook, ackWait: 200 * time.Millisecond, lease: time.Minute})
	ctx := t.Context()
	if _, err := o.Enqueue(ctx, "t", []byte(`{"n":1}`), "k"); err != nil {
		t.Fatal(err)
	}
	cons, err := o.stream.Consumer(ctx, o.consumer)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() jetstream.Msg {
		t.Helper()
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			return m
		}
		t.Fatal("the queued event was not delivered")
		return nil
	}
	first := make(chan struct{})
	go func() { defer close(first); o.forward(ctx, fetch()) }()
	hub.awaitArrivals(t, 1)
	redelivered := fetch()
	second := make(chan struct{})
	go func() { defer close(second); o.forward(ctx, redelivered) }()
	select {
	case <-second:
	case body := <-hub.arrived:
		t.Fatalf("the redelivered event was posted again (%s) while its first post ran", body)
	case <-time.After(time.Minute):
		t.Fatal("forward of the redelivery did not return")
	}
	hub.open()
	<-first
	if got := oc.wait(t, 1); got[0] != Accepted {
		t.Fatalf("outcome %v, want accepted", got[0])
	}
	if n, _ := hub.counts(); n != 1 {
		t.Fatalf("ChronosHub received %d requests, want 1", n)
	}
}
