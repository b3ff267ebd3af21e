package outbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// store is where one test keeps its outbox: a JetStream, the replicas to ask for, and a
// suffix for the names of the outbox's resources, so that tests can share a cluster.
type store struct {
	js       jetstream.JetStream
	replicas int
	suffix   string
}

// backend gives each test a store.
type backend struct {
	open func(t *testing.T) store
}

// behaviours run on every backend.
var behaviours = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"SendIdempotent", testSendIdempotent},
	{"SendConcurrentSameKey", testSendConcurrentSameKey},
	{"KeyConflict", testKeyConflict},
	{"SendRemembersOnlyJudgements", testSendRemembersOnlyJudgements},
	{"EnqueueDelivered", testEnqueueDelivered},
	{"EnqueueDuringOutage", testEnqueueDuringOutage},
	{"FailAfter", testFailAfter},
	{"PermanentRejectionFailsAtOnce", testPermanentRejectionFailsAtOnce},
}

// TestBehaviours runs the behavioural tests on an embedded server (each test its own) and on
// one three-node cluster shared by all, with R3 resources of their own names.
func TestBehaviours(t *testing.T) {
	t.Parallel()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		b := backend{open: func(t *testing.T) store {
			_, js := connect(t, startNATS(t, t.TempDir()))
			return store{js: js}
		}}
		for _, bh := range behaviours {
			t.Run(bh.name, func(t *testing.T) {
				t.Parallel()
				bh.run(t, b)
			})
		}
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := natstest.StartCluster(t, 3)
		b := backend{open: func(t *testing.T) store {
			_, js := c.Connect(t)
			return store{js: js, replicas: 3, suffix: suffixFor(t)}
		}}
		for _, bh := range behaviours {
			t.Run(bh.name, func(t *testing.T) {
				t.Parallel()
				bh.run(t, b)
			})
		}
		t.Run("HandOver", func(t *testing.T) {
			t.Parallel()
			testHandOver(t, c)
		})
		t.Run("KeyAcrossConnections", func(t *testing.T) {
			t.Parallel()
			testKeyAcrossConnections(t, c)
		})
		t.Run("OpenRefusesFewerReplicas", func(t *testing.T) {
			t.Parallel()
			testOpenRefusesFewerReplicas(t, c)
		})
	})
}

// suffixFor names a test's resources after its last name element.
func suffixFor(t *testing.T) string {
	name := t.Name()
	name = name[strings.LastIndex(name, "/")+1:]
	return "_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// testHandOver queues events through one sidecar's connection; that sidecar dies while
// ChronosHub accepts one of them. Another sidecar, connected to another node, forwards
// them all: the one whose answer died with the first sidecar twice (the documented
// duplicate), the others once.
func testHandOver(t *testing.T, c *natstest.Cluster) {
	hub := newChronosHub(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var holdOnce sync.Once
	hub.hold = func(body string) {
		if body == `{"n":0}` {
			holdOnce.Do(func() {
				close(inFlight)
				<-release
			})
		}
	}
	suffix := suffixFor(t)
	opts := Options{RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond, ackWait: time.Second}

	ncA, jsA := c.ConnectNode(t, 0)
	a := openOutbox(t, store{js: jsA, replicas: 3, suffix: suffix}, hub.client(t, 1), opts)
	const events = 3
	for i := range events {
		if _, err := a.Enqueue(t.Context(), "t", fmt.Appendf(nil, `{"n":%d}`, i), fmt.Sprint("k", i)); err != nil {
			t.Fatalf("Enqueue = %v", err)
		}
	}
	stopA := run(t, a)
	<-inFlight
	ncA.Close() // The first sidecar is gone while ChronosHub accepts event 0.
	close(release)
	stopA()

	_, jsB := c.ConnectNode(t, 1)
	oc := make(outcomes, 10)
	opts.OnOutcome = oc.hook
	b := openOutbox(t, store{js: jsB, replicas: 3, suffix: suffix}, hub.client(t, 1), opts)
	run(t, b)
	oc.wait(t, events)

	_, accepted := hub.counts()
	for i := range events {
		ids := accepted[fmt.Sprintf(`{"n":%d}`, i)]
		want := 1
		if i == 0 {
			want = 2
		}
		if len(ids) != want {
			t.Errorf("ChronosHub accepted event %d %d times (%v), want %d", i, len(ids), ids, want)
			continue
		}
		// The record is read through another node than the one that wrote
		// it last (a replica of the bucket may answer a read before it has
		// applied the newest write): wait for it, with a deadline.
		var rec Record
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			rec, err = b.Get(t.Context(), fmt.Sprint("k", i))
			if err == nil && rec.State == Accepted && rec.EventID == ids[len(ids)-1] {
				break
			}
		}
		if err != nil || rec.State != Accepted || rec.EventID != ids[len(ids)-1] {
			t.Errorf("Get(k%d) = %+v, %v; want Accepted with %s", i, rec, err, ids[len(ids)-1])
		}
	}
	waitEmpty(t, b)
}

// waitEmpty waits until o's queue is empty. On a replicated work queue the stream drops an
// acknowledged message shortly after the ack returns, not with it.
func waitEmpty(t *testing.T, o *Outbox) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := o.Pending(t.Context())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Pending = %d, %v; want 0", n, err)
			return
		}
		time.Sleep(20 * time.Millisecond) // a poll interval
	}
}

// testKeyAcrossConnections uses a key through one sidecar and then through another, on
// another node: the second answers what the first recorded, without posting.
func testKeyAcrossConnections(t *testing.T, c *natstest.Cluster) {
	hub := newChronosHub(t)
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	hub.hold = func(body string) {
		if body == `{"held":true}` {
			arrived <- struct{}{}
			<-release
		}
	}
	suffix := suffixFor(t)
	_, jsA := c.ConnectNode(t, 0)
	_, jsB := c.ConnectNode(t, 2)
	a := openOutbox(t, store{js: jsA, replicas: 3, suffix: suffix}, hub.client(t, 1), Options{})
	b := openOutbox(t, store{js: jsB, replicas: 3, suffix: suffix}, hub.client(t, 1), Options{})
	ctx := t.Context()

	first, err := a.Send(ctx, "t", []byte(`{"n":1}`), "sync")
	if err != nil || first.State != Accepted {
		t.Fatalf("Send via A = %+v, %v", first, err)
	}
	again, err := b.Send(ctx, "t", []byte(`{"n":1}`), "sync")
	if err != nil || again.EventID != first.EventID || again.State != Accepted {
		t.Errorf("Send via B = %+v, %v; want %s", again, err, first.EventID)
	}
	if _, err := b.Send(ctx, "t", []byte(`{"n":2}`), "sync"); !errors.Is(err, ErrKeyConflict) {
		t.Errorf("Send via B with another payload = %v, want ErrKeyConflict", err)
	}

	// A Send in flight on A makes the same key on B wait for A's outcome.
	doneA := make(chan Record, 1)
	go func() {
		rec, err := a.Send(ctx, "t", []byte(`{"held":true}`), "held")
		if err != nil {
			t.Errorf("held Send via A = %v", err)
		}
		doneA <- rec
	}()
	<-arrived
	doneB := make(chan Record, 1)
	go func() {
		rec, err := b.Send(ctx, "t", []byte(`{"held":true}`), "held")
		if err != nil {
			t.Errorf("waiting Send via B = %v", err)
		}
		doneB <- rec
	}()
	// B is waiting, not posting: ChronosHub has seen the held event once, and B cannot
	// finish before A's answer is released.
	select {
	case rec := <-doneB:
		t.Fatalf("Send via B returned %+v while A's was in flight", rec)
	default:
	}
	close(release)
	recA, recB := <-doneA, <-doneB
	if recA.EventID == "" || recB.EventID != recA.EventID {
		t.Errorf("held key: A got %+v, B got %+v; want one eventId", recA, recB)
	}

	// A queued event is visible, and not queued again, through the other sidecar.
	if _, err := a.Enqueue(ctx, "t", []byte(`{"n":3}`), "async"); err != nil {
		t.Fatal(err)
	}
	if rec, err := b.Enqueue(ctx, "t", []byte(`{"n":3}`), "async"); err != nil || rec.State != Queued {
		t.Errorf("Enqueue via B = %+v, %v; want the Queued record", rec, err)
	}
	if n, err := b.Pending(ctx); err != nil || n != 1 {
		t.Errorf("Pending = %d, %v; want 1", n, err)
	}
	if n, _ := hub.counts(); n != 2 {
		t.Errorf("ChronosHub got %d requests, want 2", n)
	}
}

// testOpenRefusesFewerReplicas opens an R3 outbox, then one configured for R1 (the default):
// the second is refused and the bucket and queue stay R3. Before Open checked existing
// resources, the second scaled the fleet's outbox down to R1.
func testOpenRefusesFewerReplicas(t *testing.T, c *natstest.Cluster) {
	hub := newChronosHub(t)
	_, js := c.Connect(t)
	suffix := suffixFor(t)
	openOutbox(t, store{js: js, replicas: 3, suffix: suffix}, hub.client(t, 1), Options{})
	_, err := Open(t.Context(), js, hub.client(t, 1), Options{suffix: suffix})
	const want = "replicas 3, this sidecar is configured for 1 (CHRONOSHUB_NATS_REPLICAS)"
	if _, ok := errors.AsType[*natsconn.MismatchError](err); !ok || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open with 1 replica on R3 = %v, want a mismatch saying %q", err, want)
	}
	for _, name := range []string{"KV_" + BucketName + suffix, StreamName + suffix} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas after the refused Open, want 3", name, r)
		}
	}
}

// TestClusterNodeKilled queues events while ChronosHub is down, kills the node leading the
// queue, and checks that every event queued before and after is forwarded once writes resume
// after the election: nothing queued is lost. It has a cluster of its own, since the kill
// would disturb other tests.
func TestClusterNodeKilled(t *testing.T) {
	t.Parallel()
	c := natstest.StartCluster(t, 3)
	hub := newChronosHub(t)
	hub.status.Store(http.StatusServiceUnavailable)
	_, js := c.Connect(t)
	oc := make(outcomes, 20)
	o := openOutbox(t, store{js: js, replicas: 3}, hub.client(t, 1), Options{
		OnOutcome: oc.hook, RetryDelay: time.Millisecond, MaxRetryDelay: 50 * time.Millisecond, ackWait: 2 * time.Second,
	})
	run(t, o)
	const before, after = 5, 5
	enqueue := func(i int) {
		t.Helper()
		// The application retries a failed SendEvent with the same key; so does this test,
		// while the cluster elects new leaders.
		deadline := time.Now().Add(time.Minute)
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_, err := o.Enqueue(ctx, "t", fmt.Appendf(nil, `{"n":%d}`, i), fmt.Sprint("k", i))
			cancel()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Enqueue(k%d) after the kill = %v", i, err)
			}
		}
	}
	for i := range before {
		enqueue(i)
	}
	s, err := js.Stream(t.Context(), StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != before {
		t.Fatalf("queue holds %d events, want %d", info.State.Msgs, before)
	}
	leader := c.Node(info.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("queue leader %q is not a node", info.Cluster.Leader)
	}
	c.Kill(leader)
	hub.status.Store(http.StatusAccepted)
	for i := before; i < before+after; i++ {
		enqueue(i)
	}
	oc.wait(t, before+after)

	_, accepted := hub.counts()
	for i := range before + after {
		ids := accepted[fmt.Sprintf(`{"n":%d}`, i)]
		rec, err := o.Get(t.Context(), fmt.Sprint("k", i))
		if err != nil || rec.State != Accepted || len(ids) == 0 || rec.EventID != ids[len(ids)-1] {
			t.Errorf("Get(k%d) = %+v, %v; want Accepted with the last of %v", i, rec, err, ids)
		}
	}
	waitEmpty(t, o)
}
