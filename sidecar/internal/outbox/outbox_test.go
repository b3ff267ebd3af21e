package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/logtest"
)

const testKey = "sk_test_outbox"

// startNATS starts an embedded JetStream server storing in dir, without a listener.
func startNATS(t *testing.T, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("server.NewServer = %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// connect returns a JetStream handle on ns, closed at cleanup.
func connect(t *testing.T, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatalf("nats.Connect = %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New = %v", err)
	}
	return nc, js
}

// chronosHub is a stand-in for ChronosHub's inbound API that counts what it accepts.
type chronosHub struct {
	srv *httptest.Server

	// status, when not 0 or 202, is answered instead of accepting.
	status atomic.Int32
	// hold, when set, is called with each request's body before it is answered.
	hold func(body string)

	mu       sync.Mutex
	requests int
	accepted map[string][]string // payload → eventIds given
	next     int
}

func newChronosHub(t *testing.T) *chronosHub {
	t.Helper()
	h := &chronosHub{accepted: map[string][]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Api-Key") != testKey {
			http.Error(w, `{"title":"Unauthorized","status":401}`, http.StatusUnauthorized)
			return
		}
		if h.hold != nil {
			h.hold(string(body))
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.requests++
		switch st := int(h.status.Load()); st {
		case 0, http.StatusAccepted:
		case http.StatusBadRequest:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(st)
			io.WriteString(w, `{"title":"One or more validation errors occurred.","status":400,"errors":{"payload":["The payload is missing or empty."]}}`)
			return
		default:
			w.WriteHeader(st)
			return
		}
		h.next++
		id := fmt.Sprintf("evt-%d", h.next)
		h.accepted[string(body)] = append(h.accepted[string(body)], id)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"eventId":%q,"status":"Accepted"}`, id)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *chronosHub) counts() (requests int, accepted map[string][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	acc := map[string][]string{}
	for k, v := range h.accepted {
		acc[k] = append([]string(nil), v...)
	}
	return h.requests, acc
}

// client returns the real ChronosHub client of h, retrying without sleeping.
func (h *chronosHub) client(t *testing.T, maxAttempts int) *chronoshub.Client {
	t.Helper()
	c, err := chronoshub.NewClient(h.srv.URL, func() string { return testKey }, chronoshub.Options{
		MaxAttempts: maxAttempts,
		Sleep:       func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	})
	if err != nil {
		t.Fatalf("NewClient = %v", err)
	}
	return c
}

// outcomes collects OnOutcome calls.
type outcomes chan State

func (oc outcomes) hook(s State) { oc <- s }

// wait waits for n outcomes and returns them; the timeout only guards a hung test.
func (oc outcomes) wait(t *testing.T, n int) []State {
	t.Helper()
	var got []State
	timeout := time.After(time.Minute)
	for len(got) < n {
		select {
		case s := <-oc:
			got = append(got, s)
		case <-timeout:
			t.Fatalf("got outcomes %v, want %d", got, n)
		}
	}
	return got
}

func openOutbox(t *testing.T, st store, s Sender, opts Options) *Outbox {
	t.Helper()
	opts.Replicas, opts.suffix = st.replicas, st.suffix
	o, err := Open(t.Context(), st.js, s, opts)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return o
}

// run runs o.Run until the test ends, or until the returned stop is called.
func run(t *testing.T, o *Outbox) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

var ignoreTimes = cmp.FilterPath(func(p cmp.Path) bool {
	n := p.Last().String()
	return n == ".CreatedAt" || n == ".UpdatedAt"
}, cmp.Ignore())

func testSendIdempotent(t *testing.T, b backend) {
	hub := newChronosHub(t)
	st := b.open(t)
	oc := make(outcomes, 10)
	o := openOutbox(t, st, hub.client(t, 3), Options{OnOutcome: oc.hook})

	first, err := o.Send(t.Context(), "manuscript.submitted", []byte(`{"id":1}`), "key-1")
	if err != nil {
		t.Fatalf("Send = %v", err)
	}
	want := Record{Key: "key-1", Type: "manuscript.submitted", State: Accepted, EventID: "evt-1", Attempts: 1}
	if diff := cmp.Diff(want, first, ignoreTimes); diff != "" {
		t.Errorf("Send (-want +got):\n%s", diff)
	}
	again, err := o.Send(t.Context(), "manuscript.submitted", []byte(`{"id":1}`), "key-1")
	if err != nil {
		t.Fatalf("repeated Send = %v", err)
	}
	if diff := cmp.Diff(first, again, ignoreTimes); diff != "" {
		t.Errorf("repeated Send (-first +repeat):\n%s", diff)
	}
	got, err := o.Get(t.Context(), "key-1")
	if err != nil || got.EventID != "evt-1" {
		t.Errorf("Get = %+v, %v; want evt-1", got, err)
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1", n)
	}
	if diff := cmp.Diff([]State{Accepted}, oc.wait(t, 1)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if _, err := o.Get(t.Context(), "never-used"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(never-used) = %v, want ErrNotFound", err)
	}

	// Without a key nothing is remembered.
	for range 2 {
		if _, err := o.Send(t.Context(), "t", []byte(`{"id":2}`), ""); err != nil {
			t.Fatalf("Send without key = %v", err)
		}
	}
	if n, _ := hub.counts(); n != 3 {
		t.Errorf("ChronosHub got %d requests, want 3", n)
	}
}

func testSendConcurrentSameKey(t *testing.T, b backend) {
	hub := newChronosHub(t)
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	hub.hold = func(string) {
		arrived <- struct{}{}
		<-release
	}
	st := b.open(t)
	o := openOutbox(t, st, hub.client(t, 1), Options{})

	const callers = 8
	results := make(chan Record, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			rec, err := o.Send(t.Context(), "t", []byte(`{"same":true}`), "shared")
			results <- rec
			errs <- err
		}()
	}
	<-arrived // One caller is posting; the others wait or have yet to start.
	close(release)
	for range callers {
		if err := <-errs; err != nil {
			t.Errorf("Send = %v", err)
		}
		if rec := <-results; rec.EventID != "evt-1" || rec.State != Accepted {
			t.Errorf("Send = %+v, want Accepted evt-1", rec)
		}
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1", n)
	}
}

func testKeyConflict(t *testing.T, b backend) {
	hub := newChronosHub(t)
	st := b.open(t)
	o := openOutbox(t, st, hub.client(t, 1), Options{})
	if _, err := o.Send(t.Context(), "a", []byte(`{"x":1}`), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Enqueue(t.Context(), "a", []byte(`{"x":1}`), "q"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		call     func(context.Context, string, []byte, string) (Record, error)
		key, typ string
		payload  string
	}{
		{"Send other payload", o.Send, "k", "a", `{"x":2}`},
		{"Send other type", o.Send, "k", "b", `{"x":1}`},
		{"Send payload differing in whitespace", o.Send, "k", "a", `{"x": 1}`},
		{"Enqueue other payload", o.Enqueue, "q", "a", `{"x":2}`},
		{"Enqueue on a Send key", o.Enqueue, "k", "a", `{"x":3}`},
		{"Send on an Enqueue key", o.Send, "q", "b", `{"x":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.call(t.Context(), tt.typ, []byte(tt.payload), tt.key); !errors.Is(err, ErrKeyConflict) {
				t.Errorf("(%q, %s, %q) = %v, want ErrKeyConflict", tt.typ, tt.payload, tt.key, err)
			}
		})
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1", n)
	}
}

func testSendRemembersOnlyJudgements(t *testing.T, b backend) {
	hub := newChronosHub(t)
	st := b.open(t)
	o := openOutbox(t, st, hub.client(t, 2), Options{})

	hub.status.Store(http.StatusBadRequest)
	for i := range 2 {
		rec, err := o.Send(t.Context(), "t", []byte(`{}`), "rejected")
		if !errors.Is(err, chronoshub.ErrRejected) || rec.State != Failed {
			t.Fatalf("Send #%d = %+v, %v; want Failed, ErrRejected", i, rec, err)
		}
		if ce, ok := errors.AsType[*chronoshub.Error](err); !ok || ce.StatusCode != 400 || ce.Problem == nil || len(ce.Problem.Errors["payload"]) != 1 {
			t.Errorf("Send #%d error = %#v, want the 400 with its problem", i, err)
		}
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1: the rejection is remembered", n)
	}

	hub.status.Store(http.StatusServiceUnavailable)
	if rec, err := o.Send(t.Context(), "t", []byte(`{}`), "flaky"); !errors.Is(err, chronoshub.ErrUnavailable) || rec.State != Failed {
		t.Fatalf("Send = %+v, %v; want Failed, ErrUnavailable", rec, err)
	}
	if _, err := o.Get(t.Context(), "flaky"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after unavailable = %v, want ErrNotFound", err)
	}
	hub.status.Store(http.StatusAccepted)
	if rec, err := o.Send(t.Context(), "t", []byte(`{}`), "flaky"); err != nil || rec.State != Accepted {
		t.Fatalf("Send after recovery = %+v, %v; want Accepted", rec, err)
	}
}

func testEnqueueDelivered(t *testing.T, b backend) {
	hub := newChronosHub(t)
	st := b.open(t)
	oc := make(outcomes, 10)
	// A post whose outcome the store could not record in time (a cluster
	// under load) is posted again after its lease, as documented (at least
	// once): the log says so, and only such a post may be repeated.
	logs := &logtest.Buffer{}
	o := openOutbox(t, st, hub.client(t, 1), Options{OnOutcome: oc.hook, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if oldest, err := o.Oldest(t.Context()); err != nil || !oldest.IsZero() {
		t.Errorf("Oldest of an empty queue = %v, %v; want zero", oldest, err)
	}
	before := time.Now()

	var keys []string
	for i := range 3 {
		key := fmt.Sprintf("k%d", i)
		if i == 2 {
			key = ""
		}
		rec, err := o.Enqueue(t.Context(), "t", fmt.Appendf(nil, `{"n":%d}`, i), key)
		if err != nil || rec.State != Queued || rec.Key == "" {
			t.Fatalf("Enqueue = %+v, %v; want Queued with a key", rec, err)
		}
		keys = append(keys, rec.Key)
	}
	if rec, err := o.Enqueue(t.Context(), "t", []byte(`{"n":0}`), "k0"); err != nil || rec.State != Queued {
		t.Fatalf("repeated Enqueue = %+v, %v", rec, err)
	}
	if n, err := o.Pending(t.Context()); err != nil || n != 3 {
		t.Errorf("Pending = %d, %v; want 3", n, err)
	}
	// JetStream stamps with the server's clock: this machine's.
	if oldest, err := o.Oldest(t.Context()); err != nil || oldest.Before(before.Add(-time.Second)) || oldest.After(time.Now().Add(time.Second)) {
		t.Errorf("Oldest of 3 queued = %v, %v; want the first Enqueue's time, after %v", oldest, err, before)
	}
	run(t, o)
	oc.wait(t, 3)

	waitEmpty(t, o)
	_, accepted := hub.counts()
	repeats := strings.Count(logs.String(), "record outcome of queued event; it will be sent again")
	for i, key := range keys {
		rec, err := o.Get(t.Context(), key)
		ids := accepted[fmt.Sprintf(`{"n":%d}`, i)]
		if err != nil || rec.State != Accepted || len(ids) < 1 || len(ids) > 1+repeats || !slices.Contains(ids, rec.EventID) {
			t.Errorf("Get(%q) = %+v, %v; want Accepted with the eventId of %v (%d outcomes not recorded in time); log:\n%s", key, rec, err, ids, repeats, logs)
		}
	}
	waitEmpty(t, o)
	if oldest, err := o.Oldest(t.Context()); err != nil || !oldest.IsZero() {
		t.Errorf("Oldest once all are forwarded = %v, %v; want zero", oldest, err)
	}
	// Send on a delivered async key returns its outcome without posting.
	if rec, err := o.Send(t.Context(), "t", []byte(`{"n":0}`), "k0"); err != nil || rec.State != Accepted {
		t.Errorf("Send(k0) = %+v, %v; want Accepted", rec, err)
	}
	if n, _ := hub.counts(); n < 3 || n > 3+repeats {
		t.Errorf("ChronosHub got %d requests, want 3 (and one more for each of the %d outcomes not recorded in time)", n, repeats)
	}
}

// TestEnqueueSurvivesHardRestart stops the NATS server while an event is being sent, without
// draining, and checks that a new Outbox on the same store delivers every event: once, except
// the one whose answer was lost in the crash, which is the documented duplicate.
func TestEnqueueSurvivesHardRestart(t *testing.T) {
	t.Parallel()
	hub := newChronosHub(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var holdOnce sync.Once
	hub.hold = func(body string) {
		if body == `{"n":2}` {
			holdOnce.Do(func() {
				close(inFlight)
				<-release
			})
		}
	}
	dir := t.TempDir()
	opts := Options{RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond, ackWait: time.Second}

	ns1 := startNATS(t, dir)
	nc1, js1 := connect(t, ns1)
	o1 := openOutbox(t, store{js: js1}, hub.client(t, 1), opts)
	const events = 5
	for i := range events {
		if _, err := o1.Enqueue(t.Context(), "t", fmt.Appendf(nil, `{"n":%d}`, i), fmt.Sprint("k", i)); err != nil {
			t.Fatalf("Enqueue = %v", err)
		}
	}
	stop1 := run(t, o1)
	<-inFlight
	// Crash: the store goes away while ChronosHub is accepting event 2.
	ns1.Shutdown()
	ns1.WaitForShutdown()
	nc1.Close()
	close(release)
	stop1()

	ns2 := startNATS(t, dir)
	_, js2 := connect(t, ns2)
	oc := make(outcomes, 10)
	opts.OnOutcome = oc.hook
	o2 := openOutbox(t, store{js: js2}, hub.client(t, 1), opts)
	run(t, o2)
	// Events 0 and 1 were settled before the crash; 2, 3 and 4 are settled now.
	oc.wait(t, 3)

	_, accepted := hub.counts()
	for i := range events {
		payload := fmt.Sprintf(`{"n":%d}`, i)
		want := 1
		if i == 2 {
			want = 2 // Accepted before the crash, answer lost with the store: posted again.
		}
		ids := accepted[payload]
		if len(ids) != want {
			t.Errorf("ChronosHub accepted %s %d times (%v), want %d", payload, len(ids), ids, want)
			continue
		}
		rec, err := o2.Get(t.Context(), fmt.Sprint("k", i))
		if err != nil || rec.State != Accepted || rec.EventID != ids[len(ids)-1] {
			t.Errorf("Get(k%d) = %+v, %v; want Accepted with %s", i, rec, err, ids[len(ids)-1])
		}
	}
	waitEmpty(t, o2)
}

func testEnqueueDuringOutage(t *testing.T, b backend) {
	hub := newChronosHub(t)
	hub.status.Store(http.StatusServiceUnavailable)
	failures := make(chan struct{}, 100)
	hub.hold = func(string) {
		if hub.status.Load() == http.StatusServiceUnavailable {
			select {
			case failures <- struct{}{}:
			default:
			}
		}
	}
	st := b.open(t)
	oc := make(outcomes, 10)
	o := openOutbox(t, st, hub.client(t, 2), Options{OnOutcome: oc.hook, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond})
	for i := range 3 {
		if _, err := o.Enqueue(t.Context(), "t", fmt.Appendf(nil, `{"n":%d}`, i), fmt.Sprint("k", i)); err != nil {
			t.Fatalf("Enqueue = %v", err)
		}
	}
	run(t, o)
	for i := range 6 { // Several deliveries fail while ChronosHub is down.
		select {
		case <-failures:
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d failed deliveries within 30s during the outage, want 6", i)
		}
	}
	if n, err := o.Pending(t.Context()); err != nil || n != 3 {
		t.Errorf("Pending during the outage = %d, %v; want 3", n, err)
	}
	hub.status.Store(http.StatusAccepted)
	if diff := cmp.Diff([]State{Accepted, Accepted, Accepted}, oc.wait(t, 3)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	requests, accepted := hub.counts()
	if requests < 6+3 {
		t.Errorf("ChronosHub got %d requests, want at least 9 (6 failed, 3 accepted)", requests)
	}
	for i := range 3 {
		rec, err := o.Get(t.Context(), fmt.Sprint("k", i))
		ids := accepted[fmt.Sprintf(`{"n":%d}`, i)]
		if err != nil || len(ids) != 1 || rec.EventID != ids[0] {
			t.Errorf("Get(k%d) = %+v, %v; want Accepted once (%v)", i, rec, err, ids)
		}
	}
}

func testFailAfter(t *testing.T, b backend) {
	hub := newChronosHub(t)
	hub.status.Store(http.StatusServiceUnavailable)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64
	now := func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	hub.hold = func(string) { elapsed.Store(int64(25 * time.Hour)) } // ChronosHub stays down for a day.

	st := b.open(t)
	oc := make(outcomes, 10)
	o := openOutbox(t, st, hub.client(t, 1), Options{Now: now, OnOutcome: oc.hook, RetryDelay: time.Millisecond})
	if _, err := o.Enqueue(t.Context(), "t", []byte(`{}`), "late"); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	if diff := cmp.Diff([]State{Failed}, oc.wait(t, 1)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	rec, err := o.Get(t.Context(), "late")
	if err != nil || rec.State != Failed || rec.Error == "" {
		t.Errorf("Get = %+v, %v; want Failed with a reason", rec, err)
	}
	if _, err := o.Send(t.Context(), "t", []byte(`{}`), "late"); !errors.Is(err, chronoshub.ErrUnavailable) {
		t.Errorf("Send(late) = %v, want ErrUnavailable", err)
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1", n)
	}
}

func testPermanentRejectionFailsAtOnce(t *testing.T, b backend) {
	hub := newChronosHub(t)
	hub.status.Store(http.StatusBadRequest)
	st := b.open(t)
	oc := make(outcomes, 10)
	o := openOutbox(t, st, hub.client(t, 5), Options{OnOutcome: oc.hook})
	if _, err := o.Enqueue(t.Context(), "t", []byte(`{}`), "bad"); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	oc.wait(t, 1)
	rec, err := o.Get(t.Context(), "bad")
	if err != nil || rec.State != Failed || rec.Attempts != 1 {
		t.Errorf("Get = %+v, %v; want Failed after 1 attempt", rec, err)
	}
	if _, err := o.Send(t.Context(), "t", []byte(`{}`), "bad"); !errors.Is(err, chronoshub.ErrRejected) {
		t.Errorf("Send(bad) = %v, want ErrRejected", err)
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1", n)
	}
	waitEmpty(t, o)
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{Queued: "queued", Accepted: "accepted", Failed: "failed", 0: "State(0)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// TestLostQueueEntryFails: an asynchronous record whose queue entry is gone
// (a power cut with an interval sync kept the record and dropped the entry)
// becomes Failed with a reason once it is older than lostAfter, instead of
// staying Queued for ever; a younger one, possibly between its record and
// its queue entry, is left alone.
func TestLostQueueEntryFails(t *testing.T) {
	t.Parallel()
	ns := startNATS(t, t.TempDir())
	_, js := connect(t, ns)
	hub := newChronosHub(t)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64
	now := func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	oc := make(outcomes, 10)
	o := openOutbox(t, store{js: js}, hub.client(t, 1), Options{Now: now, OnOutcome: oc.hook})
	for _, key := range []string{"lost", "kept"} {
		if _, err := o.Enqueue(t.Context(), "t", []byte(`{"k":"`+key+`"}`), key); err != nil {
			t.Fatal(err)
		}
	}
	// The cut: the queue entry of "lost" is gone, its record is not.
	s, err := js.Stream(t.Context(), o.streamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context(), jetstream.WithPurgeSubject(o.queuePrefix+keyHash("lost"))); err != nil {
		t.Fatal(err)
	}
	if n, err := o.repairLost(t.Context()); err != nil || n != 0 {
		t.Fatalf("repairLost of a young record = %d, %v; want 0, nil", n, err)
	}
	elapsed.Store(int64(lostAfter + time.Second))
	// Run settles the lost one and sends the other.
	run(t, o)
	got := oc.wait(t, 2)
	slices.Sort(got)
	if diff := cmp.Diff([]State{Accepted, Failed}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	rec, err := o.Get(t.Context(), "lost")
	if err != nil || rec.State != Failed || rec.Error != errLost {
		t.Errorf("Get(lost) = %+v, %v; want Failed with the reason", rec, err)
	}
	if rec, err := o.Get(t.Context(), "kept"); err != nil || rec.State != Accepted {
		t.Errorf("Get(kept) = %+v, %v; want Accepted", rec, err)
	}
	if n, _ := hub.counts(); n != 1 {
		t.Errorf("ChronosHub got %d requests, want 1", n)
	}
}
