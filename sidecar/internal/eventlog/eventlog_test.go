package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
)

// openLog starts an embedded store in dir and opens the log on it.
func openLog(t testing.TB, dir string, opts eventlog.Options) (*eventlog.Log, func()) {
	t.Helper()
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(context.Background(), emb.Conn(), opts)
	if err != nil {
		emb.Close()
		t.Fatal(err)
	}
	var closed bool
	closeFn := func() {
		if closed {
			return
		}
		closed = true
		l.Close()
		emb.Close()
	}
	t.Cleanup(closeFn)
	return l, closeFn
}

func event(id, typ, payload string) eventlog.Event {
	return eventlog.Event{ID: id, Type: typ, Payload: []byte(payload), SignedAt: time.Unix(1740000000, 0)}
}

func appendAll(t *testing.T, l *eventlog.Log, events ...eventlog.Event) {
	t.Helper()
	for _, e := range events {
		if dup, err := l.Append(context.Background(), e); err != nil || dup {
			t.Fatalf("Append(%s) = %v, %v; want false, nil", e.ID, dup, err)
		}
	}
}

// stream runs Stream in the background and returns a channel of what it
// delivers and a function that stops it and returns its error.
func stream(t *testing.T, l *eventlog.Log, req eventlog.StreamRequest) (<-chan eventlog.Event, func() error) {
	t.Helper()
	ch, _, stop := streamWithEnd(t, l, req)
	return ch, stop
}

// streamWithEnd is stream that also tells when Stream returns on its own:
// its error arrives on ended (stop returns it too).
func streamWithEnd(t *testing.T, l *eventlog.Log, req eventlog.StreamRequest) (_ <-chan eventlog.Event, ended <-chan error, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan eventlog.Event, 100)
	end := make(chan error, 1)
	finished := make(chan struct{})
	var result error
	go func() {
		defer close(finished)
		result = l.Stream(ctx, req, func(e eventlog.Event) error {
			select {
			case ch <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		end <- result
	}()
	stop = func() error {
		select {
		case <-finished:
			if ctx.Err() == nil && result != nil {
				// Ended on its own: a test waiting for it to deliver
				// would otherwise only say that nothing came.
				t.Logf("Stream(%+v) ended on its own: %v", req, result)
			}
		default:
		}
		cancel()
		select {
		case <-finished:
			return result
		case <-time.After(30 * time.Second):
			return errors.New("Stream did not return within 30s of its context's end")
		}
	}
	t.Cleanup(func() { stop() })
	return ch, end, stop
}

func next(t *testing.T, ch <-chan eventlog.Event) eventlog.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event delivered within 10s")
		return eventlog.Event{}
	}
}

func settle(t *testing.T, l *eventlog.Log, s eventlog.Settlement) {
	t.Helper()
	done, unknown, err := l.Settle(context.Background(), s)
	if err != nil || len(unknown) > 0 || len(done) != len(s.IDs) {
		t.Fatalf("Settle(%v) = %v, %v, %v", s.IDs, done, unknown, err)
	}
}

func TestFilters(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l,
		event("a", "manuscript.submitted", `{}`),
		event("b", "manuscript.status.updated", `{}`),
		event("c", "invoice.paid", `{}`),
	)
	tests := []struct {
		sub   string
		types []string
		want  []string
	}{
		{"one", []string{"manuscript.*"}, []string{"a"}},
		{"two", []string{"manuscript.>"}, []string{"a", "b"}},
		{"three", []string{"invoice.paid", "manuscript.status.*"}, []string{"b", "c"}},
		{"four", nil, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.sub, func(t *testing.T) {
			ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: tt.sub, Types: tt.types})
			var got []string
			for range tt.want {
				got = append(got, next(t, ch).ID)
			}
			stop()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeadLetterPaging(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: 1})
	const n = 5
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 1})
	for range n {
		e := next(t, ch)
		settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}, Reject: true})
	}
	// Wait until all n are dead (the n-th is dead-lettered on the next fetch).
	var all []string
	deadline := time.Now().Add(10 * time.Second)
	for len(all) < n && time.Now().Before(deadline) {
		all = all[:0]
		var from uint64
		for {
			page, more, err := l.ListDeadLetters(context.Background(), "s", from, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page {
				all = append(all, d.Event.ID)
			}
			if more == 0 {
				break
			}
			from = more
		}
	}
	if diff := cmp.Diff([]string{"e0", "e1", "e2", "e3", "e4"}, all); diff != "" {
		t.Fatalf("dead letters by pages of 2 (-want +got):\n%s", diff)
	}
}

// TestDeadLetterPageBytes: a page ends before its payloads pass the page's
// byte budget, holds at least one dead letter however large, and the pages
// together hold every dead letter once.
func TestDeadLetterPageBytes(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: 1, DeadLetterPageBytes: 100})
	payloads := map[string]string{
		"e0": `{"p":"` + strings.Repeat("a", 40) + `"}`,  // 48 bytes
		"e1": `{"p":"` + strings.Repeat("b", 40) + `"}`,  // 48: e0+e1 fit
		"e2": `{"p":"` + strings.Repeat("c", 150) + `"}`, // larger than a page: alone
		"e3": `{}`,
		"e4": `{}`,
	}
	ids := []string{"e0", "e1", "e2", "e3", "e4"}
	for _, id := range ids {
		appendAll(t, l, event(id, "manuscript.submitted", payloads[id]))
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 1})
	for range ids {
		e := next(t, ch)
		settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}, Reject: true})
	}
	var pages [][]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		pages = nil
		var from uint64
		n := 0
		for {
			page, more, err := l.ListDeadLetters(context.Background(), "s", from, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range page {
				got = append(got, d.Event.ID)
				if string(d.Event.Payload) != payloads[d.Event.ID] {
					t.Fatalf("dead letter %s payload %q, want %q", d.Event.ID, d.Event.Payload, payloads[d.Event.ID])
				}
			}
			n += len(got)
			pages = append(pages, got)
			if more == 0 {
				break
			}
			from = more
		}
		// The last event is dead-lettered on its next fetch.
		if n == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for timing
	}
	want := [][]string{{"e0", "e1"}, {"e2"}, {"e3", "e4"}}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Fatalf("pages with a 100-byte budget (-want +got):\n%s", diff)
	}
}

func TestBackPressure(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	for i := range 10 {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 3})
	var ids []string
	for range 3 {
		ids = append(ids, next(t, ch).ID)
	}
	// From state, not by waiting: JetStream has handed the subscription
	// exactly 3 events (a 4th fetch would count as unacked) and holds the
	// other 7, this process holds 3, and nothing else is on its way to the
	// app.
	sub, err := l.GetSubscription(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Unacked != 3 || sub.Pending != 7 || l.Holding()["s"] != 3 || len(ch) != 0 {
		t.Fatalf("with 3 unsettled: unacked %d, pending %d, held %d, buffered %d; want 3, 7, 3, 0",
			sub.Unacked, sub.Pending, l.Holding()["s"], len(ch))
	}
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: ids[:1]})
	if got := next(t, ch); got.ID != "e3" {
		t.Fatalf("after one ack got %s, want e3", got.ID)
	}
}

func TestSharedSubscription(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	ch1, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", Types: []string{"manuscript.*"}})
	ch2, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", Types: []string{"manuscript.*"}})
	// Once an event has come through, a stream is attached to "s".
	appendAll(t, l, event("first", "manuscript.submitted", `{}`))
	select {
	case <-ch1:
	case <-ch2:
	case <-time.After(10 * time.Second):
		t.Fatal("no event delivered")
	}
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{"first"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Stream(ctx, eventlog.StreamRequest{Subscription: "s", Types: []string{"invoice.*"}}, nil); !errors.Is(err, eventlog.ErrFilterMismatch) {
		t.Fatalf("Stream(other filter) = %v, want ErrFilterMismatch", err)
	}
	const n = 20
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	seen := map[string]bool{}
	for len(seen) < n {
		var e eventlog.Event
		select {
		case e = <-ch1:
		case e = <-ch2:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events delivered", len(seen), n)
		}
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice to one subscription", e.ID)
		}
		seen[e.ID] = true
		settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}})
	}
}

func TestInvalidRequests(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	tests := []struct {
		name string
		req  eventlog.StreamRequest
	}{
		{"bad subscription", eventlog.StreamRequest{Subscription: "a.b"}},
		{"long subscription", eventlog.StreamRequest{Subscription: string(make([]byte, 65))}},
		{"bad filter", eventlog.StreamRequest{Types: []string{"manuscript..x"}}},
		{"wildcard inside", eventlog.StreamRequest{Types: []string{"a.>.b"}}},
		{"overlapping filters", eventlog.StreamRequest{Subscription: "ov", Types: []string{"manuscript.*", "manuscript.submitted"}}},
		{"overlapping wildcards", eventlog.StreamRequest{Subscription: "ov2", Types: []string{"manuscript.>", "*.status.updated"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Stream(context.Background(), tt.req, func(eventlog.Event) error { return nil })
			if !errors.Is(err, eventlog.ErrInvalid) {
				t.Errorf("Stream(%+v) = %v, want ErrInvalid", tt.req, err)
			}
			if strings.Contains(tt.name, "overlapping") && !strings.Contains(err.Error(), "overlap: give one of them") {
				t.Errorf("Stream(%+v) = %v, want our message naming the overlap", tt.req, err)
			}
		})
	}
	if _, err := l.Append(context.Background(), event("x", "bad type", `{}`)); !errors.Is(err, eventlog.ErrInvalid) {
		t.Errorf("Append(bad type) = %v, want ErrInvalid", err)
	}
}

func TestRestartKeepsEventsAndAcks(t *testing.T) {
	dir := t.TempDir()
	// Events delivered but unsettled when the server stops are offered
	// again when their ack deadline passes after the restart.
	opts := eventlog.Options{AckWait: time.Second}
	l, closeLog := openLog(t, dir, opts)
	appendAll(t, l, event("e1", "manuscript.submitted", `{}`), event("e2", "manuscript.submitted", `{}`))
	ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	first := next(t, ch)
	next(t, ch)
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{first.ID}})
	stop()
	closeLog()

	l, _ = openLog(t, dir, opts)
	if dup, err := l.Append(context.Background(), event("e1", "manuscript.submitted", `{}`)); err != nil || !dup {
		t.Fatalf("Append(e1 after restart) = %v, %v; want duplicate", dup, err)
	}
	ch, _ = stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	if got := next(t, ch); got.ID != "e2" || got.Attempt != 2 {
		t.Fatalf("after restart got %s attempt %d, want e2 attempt 2 (e1 was acked)", got.ID, got.Attempt)
	}
}

// waitSubscription waits until a stream has created the subscription.
func waitSubscription(t *testing.T, l *eventlog.Log, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		depth, err := l.Depth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := depth[name]; ok {
			return
		}
	}
	t.Fatalf("subscription %s not created within 10s", name)
}

func TestStartPositions(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l, event("old", "manuscript.submitted", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "new", Start: eventlog.StartNow})
	waitSubscription(t, l, "new")
	appendAll(t, l, event("mid", "manuscript.submitted", `{}`))
	if got := next(t, ch); got.ID != "mid" {
		t.Fatalf("StartNow delivered %s, want mid", got.ID)
	}
	since := time.Now()
	appendAll(t, l, event("fresh", "manuscript.submitted", `{}`))
	chTime, _ := stream(t, l, eventlog.StreamRequest{Subscription: "since", Start: eventlog.StartTime, StartTime: since})
	if got := next(t, chTime); got.ID != "fresh" {
		t.Fatalf("StartTime delivered %s, want fresh", got.ID)
	}
	chOld, _ := stream(t, l, eventlog.StreamRequest{Subscription: "oldest"})
	if got := next(t, chOld); got.ID != "old" {
		t.Fatalf("default start delivered %s, want old", got.ID)
	}
	err := l.Stream(context.Background(), eventlog.StreamRequest{Subscription: "future", Start: eventlog.StartTime, StartTime: time.Now().Add(time.Hour)}, nil)
	if !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("Stream(future start) = %v, want ErrInvalid", err)
	}
}

func TestQuiesceLetsStreamsSettleThenEnds(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l, event("e1", "manuscript.submitted", `{}`), event("e2", "manuscript.submitted", `{}`), event("e3", "manuscript.submitted", `{}`))
	ch := make(chan eventlog.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- l.Stream(context.Background(), eventlog.StreamRequest{Subscription: "q", MaxInFlight: 2}, func(e eventlog.Event) error {
			ch <- e
			return nil
		})
	}()
	first, second := next(t, ch), next(t, ch)
	l.Quiesce()
	if err := l.Stream(context.Background(), eventlog.StreamRequest{Subscription: "other"}, func(eventlog.Event) error { return nil }); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Stream after Quiesce = %v, want ErrClosed", err)
	}
	settle(t, l, eventlog.Settlement{Subscription: "q", IDs: []string{first.ID}})
	select {
	case err := <-done:
		t.Fatalf("Stream returned %v while an event was still unsettled", err)
	default:
	}
	settle(t, l, eventlog.Settlement{Subscription: "q", IDs: []string{second.ID}})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Stream after Quiesce and settling = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not end after its events were settled")
	}
	select {
	case e := <-ch:
		t.Fatalf("event %s delivered after Quiesce", e.ID)
	default:
	}
	depth, err := l.Depth(context.Background())
	if err != nil || depth["q"] != 1 {
		t.Fatalf("Depth = %v, %v; want q: 1 (e3 still waiting)", depth, err)
	}
}

func TestPatternsOverlapTable(t *testing.T) {
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	tests := []struct {
		a, b    string
		overlap bool
	}{
		{"manuscript.*", "manuscript.submitted", true},
		{"manuscript.>", "manuscript.status.updated", true},
		{"manuscript.*", "manuscript.status.updated", false},
		{"*.submitted", "manuscript.*", true},
		{"invoice.paid", "manuscript.*", false},
		{"a.*.c", "a.b.d", false},
		{">", "a", true},
	}
	// A cancelled context: filters are checked first, and a valid request
	// ends at once with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i, tt := range tests {
		err := l.Stream(ctx, eventlog.StreamRequest{Subscription: fmt.Sprint("p", i), Types: []string{tt.a, tt.b}}, func(eventlog.Event) error { return nil })
		if got := errors.Is(err, eventlog.ErrInvalid); got != tt.overlap {
			t.Errorf("filters %q and %q: Stream = %v, want overlap %v", tt.a, tt.b, err, tt.overlap)
		}
	}
}

// TestStreamMaxEvents: a stream with MaxEvents delivers that many and takes
// no more, even when acknowledging them frees its in-flight window, and
// ends once they are settled. (The client's --max-events relied on the
// window alone: acknowledging the last event it printed let the sidecar
// hand it the next one, which the client never printed and which went back
// to the subscription only once the sidecar noticed the client gone, so the
// client's next run could get the event after it first.)
func TestStreamMaxEvents(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	for i := range 5 {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	ch := make(chan eventlog.Event, 10)
	done := make(chan error, 1)
	go func() {
		done <- l.Stream(t.Context(), eventlog.StreamRequest{Subscription: "s", MaxInFlight: 1, MaxEvents: 2}, func(e eventlog.Event) error {
			ch <- e
			return nil
		})
	}()
	for i := range 2 {
		e := next(t, ch)
		if want := fmt.Sprint("e", i); e.ID != want {
			t.Fatalf("delivery %d = %s, want %s", i, e.ID, want)
		}
		settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}})
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Stream after its 2 events were settled = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not end within 10s of settling its 2 events")
	}
	if len(ch) > 0 {
		t.Fatalf("a third event was delivered: %v", (<-ch).ID)
	}
	if s := getSub(t, l, "s"); s.Pending != 3 || s.Unacked != 0 || s.AckFloor != 2 {
		t.Fatalf("subscription after the stream = pending %d, unacked %d, ack floor %d; want 3, 0, 2", s.Pending, s.Unacked, s.AckFloor)
	}
	// The next stream starts where it stopped.
	ch2, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 1})
	if e := next(t, ch2); e.ID != "e2" || e.Attempt != 1 {
		t.Fatalf("next stream's first event = %s (attempt %d), want e2 (attempt 1)", e.ID, e.Attempt)
	}
}
