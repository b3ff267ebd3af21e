package eventlog

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaderlessWrites is the offers bucket as a cluster shows it during an
// election of its leader: once armed, it lets skip more writes through,
// then answers the next fail writes as JetStream does with no leader.
type leaderlessWrites struct {
	jetstream.KeyValue
	mu         sync.Mutex
	skip, fail int
	failed     int
}

func (k *leaderlessWrites) arm(skip, fail int) {
	k.mu.Lock()
	k.skip, k.fail = skip, fail
	k.mu.Unlock()
}

func (k *leaderlessWrites) refuse() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.skip > 0:
		k.skip--
		return false
	case k.fail > 0:
		k.fail--
		k.failed++
		return true
	}
	return false
}

func (k *leaderlessWrites) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if k.refuse() {
		return 0, jetstream.ErrNoStreamResponse
	}
	return k.KeyValue.Create(ctx, key, value, opts...)
}

func (k *leaderlessWrites) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	if k.refuse() {
		return 0, &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	}
	return k.KeyValue.Update(ctx, key, value, last)
}

// TestRedeliveryDuringOffersElection: a redelivery whose offer cannot be
// recorded for a moment, because the offers bucket has no leader, is
// recorded once the bucket answers, and the stream goes on. (The stream
// ended with "read attempts of event …: nats: no response from stream"
// before.)
func TestRedeliveryDuringOffersElection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := openEmbedded(t, ctx)
	kv := &leaderlessWrites{KeyValue: l.offerRecs}
	l.offerRecs = kv
	if _, err := l.Append(ctx, Event{ID: "e1", Type: "manuscript.submitted", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	got := make(chan Event, 4)
	ended := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		ended <- l.Stream(sctx, StreamRequest{Subscription: "s", MaxInFlight: 1}, func(e Event) error { got <- e; return nil })
	}()
	next := func() Event {
		t.Helper()
		select {
		case e := <-got:
			return e
		case err := <-ended:
			t.Fatalf("stream ended: %v", err)
		case <-ctx.Done():
			t.Fatal("no delivery within 30s")
		}
		return Event{}
	}
	if e := next(); e.ID != "e1" || e.Attempt != 1 {
		t.Fatalf("first delivery %s attempt %d, want e1 attempt 1", e.ID, e.Attempt)
	}
	// The rejection's own record goes through; the redelivery's meets a
	// bucket without a leader three times.
	kv.arm(1, 3)
	if _, _, err := l.Settle(ctx, Settlement{Subscription: "s", IDs: []string{"e1"}, Reject: true}); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.ID != "e1" || e.Attempt != 2 {
		t.Fatalf("redelivery %s attempt %d, want e1 attempt 2", e.ID, e.Attempt)
	}
	kv.mu.Lock()
	failed := kv.failed
	kv.mu.Unlock()
	if failed != 3 {
		t.Fatalf("%d writes refused, want 3 (the test did not exercise the election)", failed)
	}
	stop()
	<-ended
}

// stalledListing is the offers bucket with a key listing that never says it
// listed every key: it ends only when its context does, as nats.go's lister
// does when its watcher never gets the end of the initial values.
type stalledListing struct{ jetstream.KeyValue }

type stalledLister struct{ keys chan string }

func (s stalledLister) Keys() <-chan string { return s.keys }
func (s stalledLister) Stop() error         { return nil }

func (k stalledListing) ListKeysFiltered(ctx context.Context, _ ...string) (jetstream.KeyLister, error) {
	keys := make(chan string)
	go func() {
		<-ctx.Done()
		close(keys)
	}()
	return stalledLister{keys}, nil
}

// TestCreateWithStalledListing: a stream creating its subscription, whose
// listing of an earlier subscription's attempt records never ends, fails
// within the store timeout instead of waiting as long as the app stays
// connected (a checker's stream waited 3 minutes, neither delivering nor
// failing, after 30 power cuts of a three-node cluster). The listing's end
// by its deadline is an error, not an empty listing.
func TestCreateWithStalledListing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*storeTimeout)
	defer cancel()
	l := openEmbedded(t, ctx)
	l.offerRecs = stalledListing{l.offerRecs}
	err := l.Stream(ctx, StreamRequest{Subscription: "s"}, func(Event) error { return nil })
	if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "list them") {
		t.Fatalf("Stream = %v (test context: %v), want a failed listing of attempt records within %v", err, ctx.Err(), storeTimeout)
	}
}

// leaderlessConsumer is a replicated consumer whose group has no leader and
// gets one only after leaderAfter Info calls (never when it is negative),
// as a consumer whose replicas lost their quorum shows itself.
type leaderlessConsumer struct {
	jetstream.Consumer
	mu          sync.Mutex
	leaderAfter int
	infos       int
}

func (c *leaderlessConsumer) CachedInfo() *jetstream.ConsumerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := &jetstream.ConsumerInfo{Name: "app", Cluster: &jetstream.ClusterInfo{Name: "c"}}
	if c.leaderAfter >= 0 && c.infos >= c.leaderAfter {
		info.Cluster.Leader = "n1"
	}
	return info
}

func (c *leaderlessConsumer) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	c.mu.Lock()
	c.infos++
	c.mu.Unlock()
	return c.CachedInfo(), nil
}

// TestAwaitLeaderBounded: opening a subscription whose consumer never gets a
// leader ends, after the bound, with an error apps see as UNAVAILABLE, while
// the caller's own context is still live; one that gets its leader meanwhile
// is returned. (It waited as long as the app stayed connected, silently.)
func TestAwaitLeaderBounded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	start := time.Now()
	_, err := awaitLeader(ctx, "app", &leaderlessConsumer{leaderAfter: -1}, 200*time.Millisecond)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no leader within 200ms") {
		t.Fatalf("awaitLeader on a consumer without a leader = %v, want its bound's error", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("awaitLeader returned %v only once the caller's context ended (after %v)", err, time.Since(start))
	}

	elected := &leaderlessConsumer{leaderAfter: 3}
	if got, err := awaitLeader(ctx, "app", elected, time.Minute); err != nil || got != elected {
		t.Fatalf("awaitLeader on a consumer electing a leader = %v, %v; want it back", got, err)
	}

	gone, stop := context.WithCancel(ctx)
	stop()
	if _, err := awaitLeader(gone, "app", &leaderlessConsumer{leaderAfter: -1}, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("awaitLeader for a caller that left = %v, want context.Canceled", err)
	}
}
