package push_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

// TestClusterOneReplicaAtATime runs one push subscription from two replicas
// on a three-node NATS cluster: no event is ever posted by both at once,
// and when one replica dies (its connection closes with POSTs unsettled)
// the other delivers what it held. Every event ends acknowledged.
func TestClusterOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	c := natstest.Start(t, natstest.Options{Nodes: 3, Accounts: 1})
	opts := eventlog.Options{Replicas: 3, CheckExisting: true, AckWait: 2 * time.Second}
	open := func(node int) (*eventlog.Log, *nats.Conn) {
		nc, _ := c.ConnectAccount(t, 1, node)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l, err := eventlog.Open(ctx, nc, opts)
		if err != nil {
			t.Fatalf("Open = %v", err)
		}
		t.Cleanup(l.Close)
		// As the sidecar does at start (startRetry), a Declare that fails
		// while the new cluster settles (seen: "no responders available for
		// request") is tried again.
		for {
			err := l.Declare(ctx, []eventlog.Declaration{{Name: "p", Push: true}}, false)
			if err == nil {
				break
			}
			if ctx.Err() != nil || errors.Is(err, eventlog.ErrInvalid) {
				t.Fatalf("Declare = %v", err)
			}
			t.Logf("Declare = %v; trying again", err)
			time.Sleep(100 * time.Millisecond)
		}
		return l, nc
	}
	l1, nc1 := open(0)
	l2, _ := open(1)

	var mu sync.Mutex
	inFlight := map[string]int{}
	got := map[string]int{}
	var overlaps []string
	// The first replica posts to a listener of its own, so that the app can
	// hold its posts: the replica dies while one is held, before it could
	// acknowledge it (with a post that merely took 20 ms, a loaded machine
	// let it finish first, and nothing was handed over).
	lis1 := listen(t)
	var holding atomic.Bool
	held := make(chan struct{}, 100)
	release := make(chan struct{})
	a := &app{answer: func(_ http.ResponseWriter, r *http.Request, _ int) {
		if r.Host == lis1.Addr().String() && holding.Load() {
			held <- struct{}{}
			<-release
		}
		id := r.Header.Get(push.HeaderEventID)
		mu.Lock()
		if inFlight[id] > 0 {
			overlaps = append(overlaps, id)
		}
		inFlight[id]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight[id]--
		got[id]++
		mu.Unlock()
	}}
	lis := listen(t)
	a.serve(t, lis)
	srv1 := &http.Server{Handler: a}
	served1 := make(chan struct{})
	go func() {
		defer close(served1)
		_ = srv1.Serve(lis1)
	}()
	t.Cleanup(func() {
		srv1.Close()
		<-served1
	})
	target := push.Target{Subscription: "p", URL: "http://" + lis.Addr().String(), Concurrency: 4}
	target1 := target
	target1.URL = "http://" + lis1.Addr().String()
	ctx1, kill1 := context.WithCancel(context.Background())
	p1, err := push.New(l1, target1, push.Options{AckWait: opts.AckWait})
	if err != nil {
		t.Fatal(err)
	}
	done1 := make(chan struct{})
	go func() {
		defer close(done1)
		_ = p1.Run(ctx1) // fails once its log is closed under it
	}()
	t.Cleanup(func() {
		kill1()
		<-done1
	})
	run(t, l2, target, push.Options{AckWait: opts.AckWait})

	const n = 40
	// Held from the first post on: both replicas have a pull request
	// waiting when the events arrive, so the first one gets some, and keeps
	// them (with a hold set later, the other replica could post every event
	// left before the first one posted again).
	holding.Store(true)
	for i := range n {
		appendEvents(t, l2, fmt.Sprint("e", i))
	}
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the first replica posted nothing within 20s")
	}
	nc1.Close() // the replica dies: what it holds is settled by nobody
	close(release)
	waitFor(t, "every event posted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	dead := settled(t, l2, "p")
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("events posted by two replicas at once: %v", overlaps)
	}
	if len(dead) > 0 {
		t.Errorf("dead letters: %v", dead)
	}
	// A hand-over posts an event again. (Its attempt header says 2 only
	// when the dead replica had recorded its offer: one lost with the
	// replica within a second of the offer is not counted, the bound
	// eventlog states.)
	posts := map[string]int{}
	handedOver := 0
	for _, r := range a.got() {
		if posts[r.id]++; posts[r.id] == 2 {
			handedOver++
		}
	}
	if handedOver == 0 {
		t.Errorf("no event posted twice: the dead replica's events were not handed over")
	}
	t.Logf("%d events, %d posted again after the first replica died", n, handedOver)
}
