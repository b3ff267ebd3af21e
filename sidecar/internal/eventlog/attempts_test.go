package eventlog_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
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

// TestRetryWhileFirstAttemptInProcess appends an event again while its
// first append waits for a quorum (the stream leader's followers paused):
// ChronosHub retrying a webhook whose first POST is still being stored. The
// retry waits for the first attempt's outcome instead of failing with
// "duplicate message id is in process", and the event is stored once.
func TestRetryWhileFirstAttemptInProcess(t *testing.T) {
	t.Parallel()
	c := natstest.StartCluster(t, 3)
	nc, js := c.Connect(t)
	openOn(t, nc, eventlog.Options{Replicas: 3, CheckExisting: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info = %+v, %v", info, err)
	}
	leader := c.Node(info.Cluster.Leader)
	lnc, ljs := c.ConnectNode(t, leader)
	l := openOn(t, lnc, eventlog.Options{Replicas: 3, CheckExisting: true})
	for i := range 3 {
		if i != leader {
			c.Pause(i)
			t.Cleanup(func() { c.Resume(i) })
		}
	}
	// The first attempt: published and left waiting for its quorum.
	e := event("retried", "manuscript.submitted", `{}`)
	m := nats.NewMsg("chronoshub.events." + e.Type)
	m.Header.Set(jetstream.MsgIDHeader, e.ID)
	m.Data = e.Payload
	firstAck, err := ljs.PublishMsgAsync(m)
	if err != nil {
		t.Fatal(err)
	}
	sent := lnc.Stats().OutMsgs
	// The retry, on the same connection (so JetStream sees it second).
	type result struct {
		dup bool
		err error
	}
	retry := make(chan result, 1)
	go func() {
		dup, err := l.Append(ctx, e)
		retry <- result{dup, err}
	}()
	// Until it published twice (it was told the id is in process, and
	// tried again) or gave up.
	var r result
	waitFor(t, "retry waiting for the first attempt", func() bool {
		select {
		case r = <-retry:
			// Either the retry did not wait, or the first attempt was
			// stored before the followers stopped (a loaded machine):
			// then its acknowledgement comes, and there was nothing in
			// process to wait for.
			select {
			case <-firstAck.Ok():
				if r.err == nil && r.dup {
					t.Skip("the first attempt was stored before the followers were paused: nothing was in process")
				}
			case <-time.After(5 * time.Second):
			}
			t.Fatalf("retry's Append = %v, %v while the first attempt is in process; want it to wait for its outcome", r.dup, r.err)
		default:
		}
		return lnc.Stats().OutMsgs >= sent+2
	})
	for i := range 3 {
		if i != leader {
			c.Resume(i)
		}
	}
	r = <-retry
	if r.err != nil {
		t.Fatalf("retry's Append = %v, want it to wait for the first attempt", r.err)
	}
	select {
	case <-firstAck.Ok():
		if !r.dup {
			t.Errorf("retry's Append stored the event again after the first attempt stored it")
		}
	case err := <-firstAck.Err():
		t.Logf("first attempt failed (%v): the retry stored the event (dup %v)", err, r.dup)
	case <-ctx.Done():
		t.Fatal("first attempt unanswered")
	}
}
