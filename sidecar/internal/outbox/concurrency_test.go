package outbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldHub holds every request until released, and records how many were in flight at most
// and the order bodies arrived in.
type heldHub struct {
	*chronosHub
	arrived chan string
	release chan struct{}

	once sync.Once

	mu            sync.Mutex
	inFlight, max int
	order         []string
	// Per payload "t" member (the test's event type), the same counts.
	typeInFlight, typeMax map[string]int
}

// open stops holding requests: every held and later one is answered.
func (h *heldHub) open() { h.once.Do(func() { close(h.release) }) }

func newHeldHub(t *testing.T) *heldHub {
	h := &heldHub{arrived: make(chan string, 100), release: make(chan struct{}),
		typeInFlight: map[string]int{}, typeMax: map[string]int{}}
	h.chronosHub = newChronosHub(t)
	h.hold = func(body string) {
		var ev struct{ T string }
		_ = json.Unmarshal([]byte(body), &ev)
		h.mu.Lock()
		h.inFlight++
		h.max = max(h.max, h.inFlight)
		h.typeInFlight[ev.T]++
		h.typeMax[ev.T] = max(h.typeMax[ev.T], h.typeInFlight[ev.T])
		h.order = append(h.order, body)
		h.mu.Unlock()
		h.arrived <- body
		<-h.release
		h.mu.Lock()
		h.inFlight--
		h.typeInFlight[ev.T]--
		h.mu.Unlock()
	}
	// Unblock held handlers before the server closes (cleanups run last-in first-out).
	t.Cleanup(h.open)
	return h
}

// awaitArrivals waits for n requests to arrive; the timeout only guards a hung test.
func (h *heldHub) awaitArrivals(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(time.Minute)
	for range n {
		select {
		case <-h.arrived:
		case <-timeout:
			t.Fatalf("fewer than %d requests reached ChronosHub", n)
		}
	}
}

// TestForwardConcurrency queues more events than Concurrency allows in flight against a
// ChronosHub that holds every request: exactly Concurrency are in flight, and the
// consumer has handed out no more than that (no message waits for a worker, unattended);
// released one at a time, every event is forwarded exactly once.
func TestForwardConcurrency(t *testing.T) {
	t.Parallel()
	const n, events = 3, 10
	hub := newHeldHub(t)
	_, js := connect(t, startNATS(t, t.TempDir()))
	oc := make(outcomes, events)
	o := openOutbox(t, store{js: js}, hub.client(t, 1), Options{Concurrency: n, OnOutcome: oc.hook})
	for i := range events {
		if _, err := o.Enqueue(t.Context(), "t", fmt.Appendf(nil, `{"n":%d}`, i), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, o)
	t.Cleanup(hub.open) // before Run stops: Run waits for the requests it has in flight

	hub.awaitArrivals(t, n)
	// All n workers are busy: the forwarder holds exactly their n messages.
	cons, err := o.stream.Consumer(t.Context(), o.consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != n || info.NumPending != events-n {
		t.Fatalf("with %d requests held: %d messages unacked, %d waiting; want %d and %d",
			n, info.NumAckPending, info.NumPending, n, events-n)
	}
	for i := range events {
		hub.release <- struct{}{}
		if i < events-n { // The freed worker takes the next event.
			hub.awaitArrivals(t, 1)
		}
	}
	oc.wait(t, events)

	hub.mu.Lock()
	maxInFlight := hub.max
	hub.mu.Unlock()
	if maxInFlight != n {
		t.Errorf("at most %d requests were in flight at once, want %d", maxInFlight, n)
	}
	requests, accepted := hub.counts()
	if requests != events || len(accepted) != events {
		t.Fatalf("%d requests for %d distinct events, want %d each", requests, len(accepted), events)
	}
	for body, ids := range accepted {
		if len(ids) != 1 {
			t.Errorf("%s accepted %d times", body, len(ids))
		}
	}
}

// TestForwardInOrderWithOneWorker: with Concurrency 1, queued events reach ChronosHub one at
// a time, in the order they were queued.
func TestForwardInOrderWithOneWorker(t *testing.T) {
	t.Parallel()
	const events = 8
	hub := newHeldHub(t)
	_, js := connect(t, startNATS(t, t.TempDir()))
	oc := make(outcomes, events)
	o := openOutbox(t, store{js: js}, hub.client(t, 1), Options{Concurrency: 1, OnOutcome: oc.hook})
	var want []string
	for i := range events {
		body := fmt.Sprintf(`{"n":%d}`, i)
		want = append(want, body)
		if _, err := o.Enqueue(t.Context(), "t", []byte(body), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, o)
	t.Cleanup(hub.open) // before Run stops: Run waits for the requests it has in flight
	for range events {
		hub.awaitArrivals(t, 1)
		hub.release <- struct{}{}
	}
	oc.wait(t, events)
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if hub.max != 1 {
		t.Errorf("at most %d requests were in flight at once, want 1", hub.max)
	}
	if !slices.Equal(hub.order, want) {
		t.Errorf("ChronosHub received %q, want %q", hub.order, want)
	}
}

// TestConcurrencyOption: a concurrency out of range is refused by Open, naming it.
func TestConcurrencyOption(t *testing.T) {
	t.Parallel()
	_, js := connect(t, startNATS(t, t.TempDir()))
	for _, c := range []int{-1, maxConcurrency + 1} {
		if _, err := Open(t.Context(), js, newChronosHub(t).client(t, 1), Options{Concurrency: c}); err == nil {
			t.Errorf("Open with Concurrency %d succeeded", c)
		}
	}
}

// TestForwardOrderByType: with OrderByType, events of one type reach ChronosHub one at a
// time in the order queued, while another type's event is sent beside them.
func TestForwardOrderByType(t *testing.T) {
	t.Parallel()
	hub := newHeldHub(t)
	_, js := connect(t, startNATS(t, t.TempDir()))
	bodies := []string{`{"t":"a","n":1}`, `{"t":"b","n":1}`, `{"t":"a","n":2}`, `{"t":"a","n":3}`}
	oc := make(outcomes, len(bodies))
	o := openOutbox(t, store{js: js}, hub.client(t, 1), Options{Concurrency: 4, OrderByType: true, OnOutcome: oc.hook})
	for i, body := range bodies {
		var ev struct{ T string }
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Enqueue(t.Context(), ev.T, []byte(body), fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, o)
	t.Cleanup(hub.open) // before Run stops: Run waits for the requests it has in flight

	// The first of each type is in flight, together.
	hub.awaitArrivals(t, 2)
	hub.mu.Lock()
	first := slices.Sorted(slices.Values(hub.order))
	hub.mu.Unlock()
	if want := []string{bodies[0], bodies[1]}; !slices.Equal(first, want) {
		t.Fatalf("first requests %q, want %q", first, want)
	}
	hub.open()
	oc.wait(t, len(bodies))

	hub.mu.Lock()
	defer hub.mu.Unlock()
	var as []string
	for _, b := range hub.order {
		if strings.Contains(b, `"a"`) {
			as = append(as, b)
		}
	}
	if want := []string{bodies[0], bodies[2], bodies[3]}; !slices.Equal(as, want) {
		t.Errorf("type a reached ChronosHub as %q, want %q", as, want)
	}
	if hub.typeMax["a"] != 1 || hub.max != 2 {
		t.Errorf("at most %d requests of type a and %d in all were in flight, want 1 and 2", hub.typeMax["a"], hub.max)
	}
}
