package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
)

// TestConcurrentWideningAcrossReplicas: two Logs on one store (two replicas)
// widen one subscription's filter at the same moment, each to a different
// superset. Each stream either is refused with ErrFilterMismatch or is
// attached with the subscription's final filter covering what it asked for:
// no stream is left attached to a filter that lost its types.
func TestConcurrentWideningAcrossReplicas(t *testing.T) {
	t.Parallel()
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	logs := []*eventlog.Log{openOn(t, emb.Conn(), eventlog.Options{}), openOn(t, emb.Conn(), eventlog.Options{})}
	asked := [][]string{{"a.x", "base"}, {"b.x", "base"}}
	ctx := context.Background()
	both := 0
	const rounds = 40
	for r := range rounds {
		name := fmt.Sprint("w", r)
		if _, _, err := logs[0].UpdateSubscription(ctx, name, nil); !errors.Is(err, eventlog.ErrNotFound) {
			t.Fatalf("UpdateSubscription(new) = %v", err)
		}
		_, stop := stream(t, logs[0], eventlog.StreamRequest{Subscription: name, Types: []string{"base"}})
		waitSubscription(t, logs[0], name)
		stop()
		sctx, cancel := context.WithCancel(ctx)
		done := [2]chan error{make(chan error, 1), make(chan error, 1)}
		start := make(chan struct{})
		for i, l := range logs {
			go func() {
				<-start
				done[i] <- l.Stream(sctx, eventlog.StreamRequest{Subscription: name, Types: asked[i]}, func(eventlog.Event) error { return nil })
			}()
		}
		close(start)
		waitFor(t, "both streams attached or refused", func() bool {
			for i, l := range logs {
				if len(done[i]) == 0 && getSub(t, l, name).OpenStreams != 1 {
					return false
				}
			}
			return true
		})
		final := getSub(t, logs[0], name).Types
		cancel()
		n := 0
		for i := range logs {
			switch err := <-done[i]; {
			case errors.Is(err, context.Canceled):
				n++
				for _, want := range asked[i] {
					if !slices.Contains(final, want) {
						t.Fatalf("round %d: stream %d attached asking %v, but the subscription's filter is %v", r, i, asked[i], final)
					}
				}
			case errors.Is(err, eventlog.ErrFilterMismatch):
			default:
				t.Fatalf("round %d: stream %d ended with %v", r, i, err)
			}
		}
		if n == 0 {
			t.Fatalf("round %d: both streams refused", r)
		}
		if n == 2 {
			both++
		}
	}
	t.Logf("%d of %d rounds attached both streams", both, rounds)
}

// cancelAfter is an Observer that cancels a context once n events moved to
// dead letters: it interrupts a narrowing in the middle of its move.
type cancelAfter struct {
	n      atomic.Int32
	cancel atomic.Pointer[context.CancelFunc]
}

func (c *cancelAfter) Delivered(string, int)       {}
func (c *cancelAfter) Acked(string, time.Duration) {}
func (c *cancelAfter) DeadLettered(string) {
	if c.n.Add(-1) == 0 {
		if f := c.cancel.Load(); f != nil {
			(*f)()
		}
	}
}

// TestInterruptedNarrowingIsFinished: a narrowing whose call ends part way
// through moving the excluded events is finished by a retry with the same
// types; every excluded event ends as a dead letter, once.
func TestInterruptedNarrowingIsFinished(t *testing.T) {
	t.Parallel()
	obs := &cancelAfter{}
	l, _ := openLog(t, t.TempDir(), eventlog.Options{Observer: obs})
	_, stop := stream(t, l, eventlog.StreamRequest{Subscription: "n", Types: []string{"drop", "keep"}})
	waitSubscription(t, l, "n")
	stop()
	const n = 200
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("d", i), "drop", `{}`))
	}
	appendAll(t, l, event("k", "keep", `{}`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obs.n.Store(10)
	obs.cancel.Store(&cancel)
	if _, moved, err := l.UpdateSubscription(ctx, "n", []string{"keep"}); !errors.Is(err, context.Canceled) || moved >= n {
		t.Fatalf("interrupted UpdateSubscription = %d moved, %v; want fewer than %d and context.Canceled", moved, err, n)
	}
	if got := len(deadLetters(t, l, "n")); got >= n {
		t.Fatalf("the interrupted narrowing moved %d of %d: it was not interrupted, the test proves nothing", got, n)
	}
	sub, moved, err := l.UpdateSubscription(context.Background(), "n", []string{"keep"})
	if err != nil || moved != n || !slices.Equal(sub.Types, []string{"keep"}) {
		t.Fatalf("retried UpdateSubscription = %v, %d moved, %v; want [keep], %d moved, nil", sub.Types, moved, err, n)
	}
	dead := deadLetters(t, l, "n")
	ids := map[string]bool{}
	for _, d := range dead {
		if ids[d.Event.ID] || d.Reason != eventlog.ReasonFilterNarrowed {
			t.Fatalf("dead letter %s twice or with reason %q", d.Event.ID, d.Reason)
		}
		ids[d.Event.ID] = true
	}
	if len(ids) != n {
		t.Fatalf("%d dead letters after the retry, want %d", len(ids), n)
	}
	// A further call with the same types has nothing left to move.
	if _, moved, err := l.UpdateSubscription(context.Background(), "n", []string{"keep"}); err != nil || moved != 0 {
		t.Fatalf("third UpdateSubscription = %d moved, %v; want 0, nil", moved, err)
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "n"})
	if e := next(t, ch); e.ID != "k" {
		t.Fatalf("after narrowing got %s, want k", e.ID)
	}
}

// TestExpiredSubscriptionLeavesNoDeadLetters: a subscription that expires
// from idleness takes its dead letters with it, as DeleteSubscription does;
// a new subscription of the same name starts with none.
func TestExpiredSubscriptionLeavesNoDeadLetters(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{SubscriptionIdleExpiry: 500 * time.Millisecond, PollInterval: time.Second, MaxAttempts: 1})
	appendAll(t, l, event("a", "manuscript.submitted", `{}`))
	ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "idle"})
	e := next(t, ch)
	settle(t, l, eventlog.Settlement{Subscription: "idle", IDs: []string{e.ID}, Reject: true})
	waitFor(t, "dead letter", func() bool { return getSub(t, l, "idle").DeadLetters == 1 })
	stop()
	waitFor(t, "idle subscription expired", func() bool {
		_, err := l.GetSubscription(context.Background(), "idle")
		return errors.Is(err, eventlog.ErrNotFound)
	})
	// Attached, not merely visible: the consumer exists before the
	// predecessor's dead letters are purged.
	attached := make(chan struct{})
	_, stop = stream(t, l, eventlog.StreamRequest{Subscription: "idle", Start: eventlog.StartNow, Attached: func(eventlog.Attachment) { close(attached) }})
	select {
	case <-attached:
	case <-time.After(10 * time.Second):
		t.Fatal("new stream not attached within 10s")
	}
	if s := getSub(t, l, "idle"); s.DeadLetters != 0 {
		t.Fatalf("new subscription has %d dead letters of the expired one (%+v; its stream ended with %v)", s.DeadLetters, deadLetters(t, l, "idle"), stop())
	}
	if d := deadLetters(t, l, "idle"); len(d) != 0 {
		t.Fatalf("ListDeadLetters of the new subscription = %v", d)
	}
}

// TestReplayNarrowedDeadLetter: a dead letter narrowed out of its
// subscription is not replayed while the filter excludes its type (named,
// the call is refused and nothing changes; with all, it stays a dead
// letter), and after widening it replays and is delivered.
func TestReplayNarrowedDeadLetter(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	ctx := context.Background()
	_, stop := stream(t, l, eventlog.StreamRequest{Subscription: "r", Types: []string{"drop", "keep"}})
	waitSubscription(t, l, "r")
	stop()
	appendAll(t, l, event("d", "drop", `{"n":1}`))
	if _, moved, err := l.UpdateSubscription(ctx, "r", []string{"keep"}); err != nil || moved != 1 {
		t.Fatalf("UpdateSubscription = %d, %v; want 1 moved", moved, err)
	}
	if _, _, err := l.ReplayDeadLetters(ctx, "r", []string{"d"}, false); !errors.Is(err, eventlog.ErrFilterMismatch) {
		t.Fatalf("ReplayDeadLetters(d) = %v, want ErrFilterMismatch", err)
	}
	if replayed, _, err := l.ReplayDeadLetters(ctx, "r", nil, true); err != nil || len(replayed) != 0 {
		t.Fatalf("ReplayDeadLetters(all) = %v, %v; want nothing replayed", replayed, err)
	}
	if d := deadLetters(t, l, "r"); len(d) != 1 || d[0].Event.ID != "d" {
		t.Fatalf("dead letters after refused replays = %v, want d kept", d)
	}
	if _, _, err := l.UpdateSubscription(ctx, "r", []string{"drop", "keep"}); err != nil {
		t.Fatal(err)
	}
	if replayed, _, err := l.ReplayDeadLetters(ctx, "r", nil, true); err != nil || !slices.Equal(replayed, []string{"d"}) {
		t.Fatalf("ReplayDeadLetters(all) after widening = %v, %v; want [d]", replayed, err)
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "r"})
	if e := next(t, ch); e.ID != "d" || string(e.Payload) != `{"n":1}` {
		t.Fatalf("after widening and replay got %s %s, want d", e.ID, e.Payload)
	}
}
