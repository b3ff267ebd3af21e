package eventlog_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
)

// reject streams sub, rejecting every offer, until n events were offered
// (n < 0: until sub has a dead letter), and returns the attempt each offer
// carried.
func reject(t *testing.T, l *eventlog.Log, sub string, n int) []int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		attempts []int
	)
	done := make(chan error, 1)
	go func() {
		done <- l.Stream(ctx, eventlog.StreamRequest{Subscription: sub}, func(e eventlog.Event) error {
			mu.Lock()
			attempts = append(attempts, e.Attempt)
			last := len(attempts) == n
			mu.Unlock()
			if last {
				cancel() // nothing more is offered to this app
			}
			_, _, err := l.Settle(context.Background(), eventlog.Settlement{Subscription: sub, IDs: []string{e.ID}, Reject: true})
			return err
		})
	}()
	waitFor(t, "offers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if n >= 0 {
			return len(attempts) == n
		}
		d, _, err := l.ListDeadLetters(context.Background(), sub, 0, 10)
		return err == nil && len(d) > 0
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(attempts)
}

// loseDelivery makes JetStream deliver the subscription's next event to a
// pull whose answer nobody reads: what a pull answered while the sidecar's
// connection drops, or a fetch in flight during a partition, looks like to
// JetStream. It waits for the event to be delivered.
func loseDelivery(t *testing.T, js jetstream.JetStream, sub string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, eventlog.EventsStream, sub)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 1 {
		t.Fatalf("lost fetch got %d events (%v), want 1", n, batch.Error())
	}
}

// TestLostDeliveriesAreNotAttempts loses deliveries that JetStream made but
// the log never received (the first one, and one after an offer): the event
// is still offered exactly MaxAttempts times, each offer carrying its
// number, and the dead letter records MaxAttempts.
func TestLostDeliveriesAreNotAttempts(t *testing.T) {
	t.Parallel()
	const maxAttempts = 3
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	l, err := eventlog.Open(context.Background(), emb.Conn(), eventlog.Options{MaxAttempts: maxAttempts, AckWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	js, err := jetstream.New(emb.Conn())
	if err != nil {
		t.Fatal(err)
	}
	// The subscription exists before the event.
	_, stop := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	waitSubscription(t, l, "s")
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	appendAll(t, l, event("e", "manuscript.submitted", `{}`))

	loseDelivery(t, js, "s") // delivery 1: lost
	first := reject(t, l, "s", 1)
	loseDelivery(t, js, "s") // delivery 3: lost
	rest := reject(t, l, "s", -1)
	if got, want := append(first, rest...), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("offers carried attempts %v, want %v", got, want)
	}
	dead := deadLetters(t, l, "s")
	if len(dead) != 1 || dead[0].Event.Attempt != maxAttempts || dead[0].Reason != eventlog.ReasonMaxAttempts {
		t.Fatalf("dead letters = %+v; want e with %d attempts, reason %s", dead, maxAttempts, eventlog.ReasonMaxAttempts)
	}
}

// TestHeldOffersCount: a first delivery the app holds past its ack deadline
// costs no store write when it is offered, yet its redelivery counts it.
func TestHeldOffersCount(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{AckWait: time.Second})
	appendAll(t, l, event("held", "manuscript.submitted", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "h"})
	if e := next(t, ch); e.Attempt != 1 {
		t.Fatalf("first offer attempt %d, want 1", e.Attempt)
	}
	// Not settled: JetStream offers it again after the ack deadline.
	e := next(t, ch)
	if e.ID != "held" || e.Attempt != 2 {
		t.Fatalf("redelivery %s attempt %d, want held attempt 2", e.ID, e.Attempt)
	}
	settle(t, l, eventlog.Settlement{Subscription: "h", IDs: []string{e.ID}})
}
