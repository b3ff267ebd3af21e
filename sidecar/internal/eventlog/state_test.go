package eventlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
)

// openEmbedded opens a Log with the default options on an embedded store of
// its own; both close when the test ends.
func openEmbedded(t *testing.T, ctx context.Context) *Log {
	t.Helper()
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	l, err := Open(ctx, emb.Conn(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// TestNoStateLeftBehind: a subscription's in-memory state goes with its last
// stream, and repeated scrapes of a subscription whose ack floor does not
// move read its oldest unacknowledged event once, not once per scrape and
// filter.
func TestNoStateLeftBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openEmbedded(t, ctx)
	types := []string{"a", "b", "c", "d"}
	for i, typ := range types {
		if _, err := l.Append(ctx, Event{ID: fmt.Sprint("e", i), Type: typ, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	got := make(chan Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- l.Stream(sctx, StreamRequest{Subscription: "s", Types: types, MaxInFlight: 1}, func(e Event) error { got <- e; return nil })
	}()
	select {
	case <-got: // one held, unacked: the subscription has an oldest unacked event
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered")
	}
	for range 5 {
		subs, err := l.Stats(ctx)
		if err != nil || len(subs) != 1 || subs[0].OldestUnacked.IsZero() {
			t.Fatalf("Stats = %+v, %v; want s with an oldest unacked event", subs, err)
		}
	}
	l.mu.Lock()
	lookups := l.lookups
	l.mu.Unlock()
	if lookups != 1 {
		t.Errorf("5 scrapes with the ack floor unchanged read the oldest unacked event %d times, want 1", lookups)
	}
	cancel()
	<-done
	l.mu.Lock()
	n := len(l.subs)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscriptions' state kept after their last stream ended, want 0", n)
	}
	if err := l.DeleteSubscription(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	n = len(l.oldest)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("cached figures of %d deleted subscriptions kept, want 0", n)
	}
}
