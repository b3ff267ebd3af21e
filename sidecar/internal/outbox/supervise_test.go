package outbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRunReportsLostConsumer deletes the forwarder's consumer under a
// running Run: Run returns an error instead of retrying forever without
// forwarding, and the next Run makes the consumer again and forwards what
// was queued meanwhile. Before, Run logged "resuming" forever and async
// events silently stopped being forwarded.
func TestRunReportsLostConsumer(t *testing.T) {
	t.Parallel()
	hub := newChronosHub(t)
	_, js := connect(t, startNATS(t, t.TempDir()))
	oc := make(outcomes, 10)
	o := openOutbox(t, store{js: js}, hub.client(t, 1), Options{OnOutcome: oc.hook})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	if _, err := o.Enqueue(t.Context(), "t", []byte(`{"n":1}`), "before"); err != nil {
		t.Fatal(err)
	}
	oc.wait(t, 1)

	if err := js.DeleteConsumer(t.Context(), o.streamName, o.consumer); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatalf("Run after its consumer was deleted = %v, want ErrConsumerDeleted", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run still runs 30s after its consumer was deleted")
	}

	if _, err := o.Enqueue(t.Context(), "t", []byte(`{"n":2}`), "after"); err != nil {
		t.Fatal(err)
	}
	go func() { done <- o.Run(ctx) }()
	oc.wait(t, 1)
	if rec, err := o.Get(t.Context(), "after"); err != nil || rec.State != Accepted {
		t.Fatalf("Get(after) = %+v, %v; want Accepted once Run made the consumer again", rec, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after cancel", err)
	}
}
