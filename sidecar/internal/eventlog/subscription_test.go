package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// 30 s: on the three-node cluster under a loaded -race run, a filter
	// change that follows a replica's record takes seconds; polling every
	// 20 ms keeps the store calls of cond from crowding out what it waits for.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 30s", what)
}

func getSub(t *testing.T, l *eventlog.Log, name string) eventlog.Subscription {
	t.Helper()
	s, err := l.GetSubscription(context.Background(), name)
	if err != nil {
		t.Fatalf("GetSubscription(%s) = %v", name, err)
	}
	return s
}

func deadLetters(t *testing.T, l *eventlog.Log, sub string) []eventlog.DeadLetter {
	t.Helper()
	dead, _, err := l.ListDeadLetters(context.Background(), sub, 0, 1000)
	if err != nil {
		t.Fatalf("ListDeadLetters(%s) = %v", sub, err)
	}
	return dead
}

// TestUnofferedFetchesAreNotAttempts opens streams that fetch every event
// and end after handing over two (the app acks the first and abandons the
// second), more times than MaxAttempts: the events never handed over must
// not be dead-lettered, and each is offered with an attempt counting only
// earlier offers.
func TestUnofferedFetchesAreNotAttempts(t *testing.T) {
	t.Parallel()
	const maxAttempts, n = 3, 20
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: maxAttempts, MaxInFlight: 50})
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	offered := map[string]int{}
	var acked, got atomic.Int32
	for round := range 2 * maxAttempts {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		got.Store(0)
		go func() {
			done <- l.Stream(ctx, eventlog.StreamRequest{Subscription: "s"}, func(e eventlog.Event) error {
				offered[e.ID]++
				if e.Attempt != offered[e.ID] {
					t.Errorf("round %d: event %s attempt %d, offered %d times", round, e.ID, e.Attempt, offered[e.ID])
				}
				if got.Add(1) == 1 {
					_, _, err := l.Settle(ctx, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}})
					acked.Add(1)
					return err
				}
				<-ctx.Done() // the app never takes the next one
				return ctx.Err()
			})
		}()
		// The stream holds every event left on the subscription.
		waitFor(t, fmt.Sprintf("round %d: all events fetched", round), func() bool {
			s, err := l.GetSubscription(context.Background(), "s")
			return err == nil && got.Load() == 2 && s.Pending == 0 && s.Unacked == n-int(acked.Load())
		})
		cancel()
		<-done
	}
	if dead := deadLetters(t, l, "s"); len(dead) != 0 {
		t.Fatalf("dead letters = %+v; no event was offered %d times", dead, maxAttempts)
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	for range n - int(acked.Load()) {
		e := next(t, ch)
		if e.Attempt != offered[e.ID]+1 {
			t.Errorf("event %s: attempt %d, want %d (offered %d times before)", e.ID, e.Attempt, offered[e.ID]+1, offered[e.ID])
		}
		settle(t, l, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}})
	}
}

// TestDeadLettersOfferedExactlyMaxAttempts rejects or abandons every event
// across streams that come and go; every dead letter was offered exactly
// MaxAttempts times.
func TestDeadLettersOfferedExactlyMaxAttempts(t *testing.T) {
	t.Parallel()
	const maxAttempts, n = 4, 12
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: maxAttempts})
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	var mu sync.Mutex
	offered := map[string]int{}
	dead := func() int {
		d, _, err := l.ListDeadLetters(context.Background(), "s", 0, 1000)
		if err != nil && !errors.Is(err, eventlog.ErrNotFound) { // before the first stream
			t.Fatal(err)
		}
		return len(d)
	}
	for round := 0; dead() < n; round++ {
		if round > 10*maxAttempts {
			t.Fatalf("after %d rounds only %d dead letters", round, dead())
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		got := 0
		go func() {
			done <- l.Stream(ctx, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 3}, func(e eventlog.Event) error {
				mu.Lock()
				offered[e.ID]++
				mu.Unlock()
				if e.Attempt < 1 || e.Attempt > maxAttempts {
					t.Errorf("event %s offered with attempt %d", e.ID, e.Attempt)
				}
				got++
				if got%2 == 0 { // every other one is abandoned with the stream
					cancel()
					return nil
				}
				_, _, err := l.Settle(ctx, eventlog.Settlement{Subscription: "s", IDs: []string{e.ID}, Reject: true})
				return err
			})
		}()
		// The round ends when the app abandons an event, or when every
		// event is dead.
		tick := time.NewTicker(5 * time.Millisecond)
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-tick.C:
				if dead() == n {
					cancel()
					<-done
					break wait
				}
			}
		}
		tick.Stop()
		cancel()
	}
	for _, d := range deadLetters(t, l, "s") {
		if offered[d.Event.ID] != maxAttempts || d.Event.Attempt != maxAttempts || d.Reason != eventlog.ReasonMaxAttempts {
			t.Errorf("dead letter %s: offered %d times, recorded attempt %d, reason %q; want %d, %d, %q",
				d.Event.ID, offered[d.Event.ID], d.Event.Attempt, d.Reason, maxAttempts, maxAttempts, eventlog.ReasonMaxAttempts)
		}
	}
}

func TestFilterFixedAtCreation(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "f", Types: []string{"manuscript.*"}})
	waitSubscription(t, l, "f")
	ctx := context.Background()
	refuse := func(types ...string) {
		t.Helper()
		err := l.Stream(ctx, eventlog.StreamRequest{Subscription: "f", Types: types}, func(eventlog.Event) error { return nil })
		if !errors.Is(err, eventlog.ErrFilterMismatch) || !strings.Contains(err.Error(), "manuscript.*") || !strings.Contains(err.Error(), "UpdateSubscription") {
			t.Errorf("Stream(%v) = %v; want ErrFilterMismatch naming the filter and UpdateSubscription", types, err)
		}
	}
	refuse("invoice.*")                         // different
	refuse("manuscript.submitted")              // narrower
	refuse("manuscript.submitted", "invoice.*") // neither
	stop()
	_ = ch
	// The same filter and no filter attach.
	for _, types := range [][]string{{"manuscript.*"}, nil} {
		ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "f", Types: types})
		appendAll(t, l, event("same"+fmt.Sprint(len(types)), "manuscript.submitted", `{}`))
		e := next(t, ch)
		settle(t, l, eventlog.Settlement{Subscription: "f", IDs: []string{e.ID}})
		stop()
	}
	if got := getSub(t, l, "f").Types; !cmp.Equal(got, []string{"manuscript.*"}) {
		t.Fatalf("types after attaching = %v", got)
	}
	// A superset widens it.
	ch, _ = stream(t, l, eventlog.StreamRequest{Subscription: "f", Types: []string{"manuscript.>"}})
	appendAll(t, l, event("deep", "manuscript.status.updated", `{}`))
	if e := next(t, ch); e.ID != "deep" {
		t.Fatalf("after widening got %s, want deep", e.ID)
	}
	if got := getSub(t, l, "f").Types; !cmp.Equal(got, []string{"manuscript.>"}) {
		t.Fatalf("types after widening = %v", got)
	}
}

func TestNarrowingDeadLettersExcluded(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l, event("held", "manuscript.status.updated", `{}`))
	ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "n", Types: []string{"manuscript.>"}, MaxInFlight: 1})
	if e := next(t, ch); e.ID != "held" {
		t.Fatalf("first event %s", e.ID)
	}
	stop() // held is delivered, unsettled: it will come back
	appendAll(t, l, event("waiting", "manuscript.status.updated", `{}`), event("kept", "manuscript.submitted", `{}`))
	ctx := context.Background()
	sub, moved, err := l.UpdateSubscription(ctx, "n", []string{"manuscript.submitted"})
	if err != nil || moved != 1 || !cmp.Equal(sub.Types, []string{"manuscript.submitted"}) {
		t.Fatalf("UpdateSubscription = %+v, %d, %v; want narrowed, 1 moved", sub, moved, err)
	}
	ch, _ = stream(t, l, eventlog.StreamRequest{Subscription: "n"})
	if e := next(t, ch); e.ID != "kept" {
		t.Fatalf("after narrowing got %s (%s), want kept", e.ID, e.Type)
	}
	waitFor(t, "both excluded events dead-lettered", func() bool { return len(deadLetters(t, l, "n")) == 2 })
	got := map[string]string{}
	for _, d := range deadLetters(t, l, "n") {
		got[d.Event.ID] = d.Reason
	}
	want := map[string]string{"held": eventlog.ReasonFilterNarrowed, "waiting": eventlog.ReasonFilterNarrowed}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("dead letters (-want +got):\n%s", diff)
	}
}

func TestSubscriptionManagement(t *testing.T) {
	t.Parallel()
	// A short poll interval: a stream whose first pull request is sent after
	// the deletion notices it by missed heartbeats.
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: 1, PollInterval: time.Second})
	ctx := context.Background()
	for _, name := range []string{"gone", "x"} {
		if _, err := l.GetSubscription(ctx, name); !errors.Is(err, eventlog.ErrNotFound) {
			t.Errorf("GetSubscription(%s) = %v, want ErrNotFound", name, err)
		}
		if _, _, err := l.ListDeadLetters(ctx, name, 0, 10); !errors.Is(err, eventlog.ErrNotFound) {
			t.Errorf("ListDeadLetters(%s) = %v, want ErrNotFound", name, err)
		}
		if _, _, err := l.ReplayDeadLetters(ctx, name, nil, true); !errors.Is(err, eventlog.ErrNotFound) {
			t.Errorf("ReplayDeadLetters(%s) = %v, want ErrNotFound", name, err)
		}
		if err := l.DeleteSubscription(ctx, name); !errors.Is(err, eventlog.ErrNotFound) {
			t.Errorf("DeleteSubscription(%s) = %v, want ErrNotFound", name, err)
		}
		if _, _, err := l.UpdateSubscription(ctx, name, nil); !errors.Is(err, eventlog.ErrNotFound) {
			t.Errorf("UpdateSubscription(%s) = %v, want ErrNotFound", name, err)
		}
	}
	before := time.Now()
	appendAll(t, l, event("a", "manuscript.submitted", `{}`), event("b", "manuscript.submitted", `{}`), event("c", "manuscript.submitted", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "m", Types: []string{"manuscript.*"}, MaxInFlight: 1})
	a := next(t, ch)
	settle(t, l, eventlog.Settlement{Subscription: "m", IDs: []string{a.ID}, Reject: true}) // dead at once
	b := next(t, ch)
	if b.ID != "b" {
		t.Fatalf("second event %s", b.ID)
	}
	s := getSub(t, l, "m")
	if s.Name != "m" || !cmp.Equal(s.Types, []string{"manuscript.*"}) || s.Pending != 1 || s.Unacked != 1 || s.OpenStreams != 1 || s.DeadLetters != 1 ||
		s.OldestUnacked.Before(before.Add(-time.Second)) || s.OldestUnacked.After(time.Now()) || s.AckFloor != 1 {
		t.Fatalf("GetSubscription = %+v", s)
	}
	list, err := l.Stats(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "m" {
		t.Fatalf("Stats = %+v, %v", list, err)
	}
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- l.Stream(ctx, eventlog.StreamRequest{Subscription: "m"}, func(eventlog.Event) error { return nil })
	}()
	waitFor(t, "second stream open", func() bool { return getSub(t, l, "m").OpenStreams == 2 })
	if err := l.DeleteSubscription(ctx, "m"); err != nil {
		t.Fatalf("DeleteSubscription = %v", err)
	}
	select {
	case err := <-streamErr:
		if !errors.Is(err, eventlog.ErrNotFound) {
			t.Fatalf("stream on deleted subscription ended with %v, want ErrNotFound", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream on a deleted subscription did not end")
	}
	if _, err := l.GetSubscription(ctx, "m"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("GetSubscription(deleted) = %v", err)
	}
	if list, err := l.ListSubscriptions(ctx); err != nil || len(list) != 0 {
		t.Fatalf("ListSubscriptions after delete = %+v, %v", list, err)
	}
	// A new subscription of the same name has no dead letters.
	stream(t, l, eventlog.StreamRequest{Subscription: "m"})
	waitSubscription(t, l, "m")
	if d := deadLetters(t, l, "m"); len(d) != 0 {
		t.Fatalf("dead letters of the recreated subscription = %v", d)
	}
}

func TestSubscriptionLimits(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxSubscriptions: 2, MaxFiltersPerSubscription: 2})
	for _, name := range []string{"one", "two"} {
		stream(t, l, eventlog.StreamRequest{Subscription: name})
		waitSubscription(t, l, name)
	}
	err := l.Stream(context.Background(), eventlog.StreamRequest{Subscription: "three"}, func(eventlog.Event) error { return nil })
	if !errors.Is(err, eventlog.ErrLimit) || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("third subscription: Stream = %v, want ErrLimit", err)
	}
	err = l.Stream(context.Background(), eventlog.StreamRequest{Subscription: "one", Types: []string{"a", "b", "c"}}, func(eventlog.Event) error { return nil })
	if !errors.Is(err, eventlog.ErrInvalid) || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("3 filters: Stream = %v, want ErrInvalid", err)
	}
	if _, _, err := l.UpdateSubscription(context.Background(), "one", []string{"a", "b", "c"}); !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("3 filters: UpdateSubscription = %v, want ErrInvalid", err)
	}
}

func TestIdleSubscriptionExpires(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{SubscriptionIdleExpiry: 500 * time.Millisecond, PollInterval: time.Second})
	_, stop := stream(t, l, eventlog.StreamRequest{Subscription: "idle"})
	waitSubscription(t, l, "idle")
	stop()
	waitFor(t, "idle subscription deleted", func() bool {
		_, err := l.GetSubscription(context.Background(), "idle")
		return errors.Is(err, eventlog.ErrNotFound)
	})
}

// TestSettleIsAppliedOnReturn acknowledges a batch in one Settle: when it
// returns, JetStream has applied every acknowledgement (no waiting).
func TestSettleIsAppliedOnReturn(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	const n = 100
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: n})
	var ids []string
	for range n {
		ids = append(ids, next(t, ch).ID)
	}
	settle(t, l, eventlog.Settlement{Subscription: "s", IDs: ids})
	if s := getSub(t, l, "s"); s.Unacked != 0 || s.AckFloor != n || s.Pending != 0 {
		t.Fatalf("right after Settle: %+v; want every acknowledgement applied", s)
	}
}
