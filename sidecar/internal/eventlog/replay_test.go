package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// drainAcked streams n events of sub and acknowledges each, returning them.
func drainAcked(t *testing.T, l *eventlog.Log, ch <-chan eventlog.Event, sub string, n int) []eventlog.Event {
	t.Helper()
	var got []eventlog.Event
	for range n {
		e := next(t, ch)
		settle(t, l, eventlog.Settlement{Subscription: sub, IDs: []string{e.ID}})
		got = append(got, e)
	}
	return got
}

func ids(events []eventlog.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

func TestReplayEventsByID(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l,
		event("a", "x.one", `{"n":1}`),
		event("b", "x.two", `{"n":2}`),
		event("c", "x.one", `{"n":3}`),
	)
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", Types: []string{"x.one"}})
	first := drainAcked(t, l, ch, "s", 2)
	if first[0].Replay || first[1].Replay {
		t.Fatalf("first deliveries marked as replays: %+v", first)
	}
	// b is in the log but the subscription's filter excludes it.
	res, err := l.ReplayEvents(context.Background(), eventlog.ReplayRequest{Subscription: "s", IDs: []string{"c", "missing", "b", "a", "A"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "c"}, res.IDs); diff != "" {
		t.Errorf("ReplayEvents ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"missing", "b"}, res.Unknown); diff != "" {
		t.Errorf("ReplayEvents unknown (-want +got):\n%s", diff)
	}
	again := drainAcked(t, l, ch, "s", 2)
	if diff := cmp.Diff([]string{"a", "c"}, ids(again)); diff != "" {
		t.Fatalf("replayed deliveries (-want +got):\n%s", diff)
	}
	for i, e := range again {
		if !e.Replay || e.Attempt != 1 || e.Sequence != first[i].Sequence || string(e.Payload) != string(first[i].Payload) || !e.ReceivedAt.Equal(first[i].ReceivedAt) {
			t.Errorf("replayed %s = replay %v, attempt %d, sequence %d, payload %s, received %v; want true, 1, %d, %s, %v",
				e.ID, e.Replay, e.Attempt, e.Sequence, e.Payload, e.ReceivedAt, first[i].Sequence, first[i].Payload, first[i].ReceivedAt)
		}
	}
	sub, err := l.GetSubscription(context.Background(), "s")
	if err != nil || sub.Pending != 0 || sub.Unacked != 0 {
		t.Errorf("GetSubscription after acking the replays = %+v, %v; want nothing pending or unacked", sub, err)
	}
}

func TestReplayEventsByTime(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l, event("a", "x.one", `{}`))
	t1 := time.Now()
	appendAll(t, l, event("b", "x.one", `{}`), event("c", "x.two", `{}`), event("d", "x.one", `{}`))
	t2 := time.Now()
	appendAll(t, l, event("e", "x.one", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	drainAcked(t, l, ch, "s", 5)

	t.Run("range and type", func(t *testing.T) {
		res, err := l.ReplayEvents(context.Background(), eventlog.ReplayRequest{Subscription: "s", Start: t1, End: t2, Types: []string{"x.one"}})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"b", "d"}, res.IDs); diff != "" {
			t.Errorf("ReplayEvents(t1, t2, x.one) (-want +got):\n%s", diff)
		}
		if res.Next != "" || res.Expired {
			t.Errorf("ReplayEvents = next %q, expired %v; want done, not expired", res.Next, res.Expired)
		}
		got := drainAcked(t, l, ch, "s", 2)
		if diff := cmp.Diff([]string{"b", "d"}, ids(got)); diff != "" {
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
	})
	t.Run("pages", func(t *testing.T) {
		req := eventlog.ReplayRequest{Subscription: "s", Start: t1, Limit: 2}
		var all []string
		for page := 0; ; page++ {
			res, err := l.ReplayEvents(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.IDs) > 2 {
				t.Fatalf("page %d has %d events, limit 2", page, len(res.IDs))
			}
			all = append(all, res.IDs...)
			if page == 0 {
				// Not part of the range: it arrived after the replay began.
				appendAll(t, l, event("late", "x.one", `{}`))
			}
			if res.Next == "" {
				break
			}
			req.Cursor = res.Next
		}
		if diff := cmp.Diff([]string{"b", "c", "d", "e"}, all); diff != "" {
			t.Errorf("paged replay (-want +got):\n%s", diff)
		}
		got := drainAcked(t, l, ch, "s", 5)
		if diff := cmp.Diff([]string{"b", "c", "late", "d", "e"}, ids(got)); diff != "" {
			// late arrived between the first page's copies and the second's.
			t.Errorf("delivered (-want +got):\n%s", diff)
		}
	})
}

// TestReplayExpired: events that left the log are reported, never skipped
// silently.
func TestReplayExpired(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	before := time.Now()
	appendAll(t, l, event("a", "x.one", `{}`), event("b", "x.one", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	drainAcked(t, l, ch, "s", 2)
	ctx := context.Background()
	st, err := l.JetStream().Stream(ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(2)); err != nil { // as retention would
		t.Fatal(err)
	}
	res, err := l.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", IDs: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(eventlog.ReplayResult{IDs: []string{"b"}, Unknown: []string{"a"}}, res, cmpResult); diff != "" {
		t.Errorf("ReplayEvents(ids) (-want +got):\n%s", diff)
	}
	res, err = l.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", Start: before})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Expired || res.OldestRetained.Before(before) || !slicesEqual(res.IDs, []string{"b"}) {
		t.Errorf("ReplayEvents(from before a) = %+v; want expired, oldest retained after %v, [b]", res, before)
	}
}

// TestReplayExpiredBetweenPages: events of a range that leave the log
// between two pages are reported.
func TestReplayExpiredBetweenPages(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	start := time.Now()
	appendAll(t, l, event("a", "x.one", `{}`), event("b", "x.one", `{}`), event("c", "x.one", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	drainAcked(t, l, ch, "s", 3)
	ctx := context.Background()
	first, err := l.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", Start: start, Limit: 1})
	if err != nil || first.Next == "" || first.Expired || !slicesEqual(first.IDs, []string{"a"}) {
		t.Fatalf("first page = %+v, %v; want a and a cursor", first, err)
	}
	st, err := l.JetStream().Stream(ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(3)); err != nil { // a and b leave the log
		t.Fatal(err)
	}
	rest, err := l.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", Start: start, Limit: 1, Cursor: first.Next})
	if err != nil || !rest.Expired || !slicesEqual(rest.IDs, []string{"c"}) {
		t.Errorf("page after b left the log = %+v, %v; want expired, c", rest, err)
	}
}

var cmpResult = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".OldestRetained" }, cmp.Ignore())

func slicesEqual(a, b []string) bool { return cmp.Equal(a, b) }

func TestReplayEventsInvalid(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l, event("a", "x.one", `{}`))
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s"})
	drainAcked(t, l, ch, "s", 1)
	now := time.Now()
	many := make([]string, eventlog.MaxReplayIDs+1)
	for i := range many {
		many[i] = "x"
	}
	tests := []struct {
		name string
		req  eventlog.ReplayRequest
		want error
		text string
	}{
		{"unknown subscription", eventlog.ReplayRequest{Subscription: "nope", IDs: []string{"a"}}, eventlog.ErrNotFound, "nope"},
		{"bad subscription name", eventlog.ReplayRequest{Subscription: "a b", IDs: []string{"a"}}, eventlog.ErrInvalid, "subscription name"},
		{"neither", eventlog.ReplayRequest{Subscription: "s"}, eventlog.ErrInvalid, "event ids or a start time"},
		{"both", eventlog.ReplayRequest{Subscription: "s", IDs: []string{"a"}, Start: now}, eventlog.ErrInvalid, "not both"},
		{"end before start", eventlog.ReplayRequest{Subscription: "s", Start: now, End: now.Add(-time.Second)}, eventlog.ErrInvalid, "not after start"},
		{"end without start", eventlog.ReplayRequest{Subscription: "s", End: now}, eventlog.ErrInvalid, "needs a start time"},
		{"too many ids", eventlog.ReplayRequest{Subscription: "s", IDs: many}, eventlog.ErrInvalid, "at most"},
		{"empty id", eventlog.ReplayRequest{Subscription: "s", IDs: []string{""}}, eventlog.ErrInvalid, "empty event id"},
		{"bad type", eventlog.ReplayRequest{Subscription: "s", IDs: []string{"a"}, Types: []string{"a..b"}}, eventlog.ErrInvalid, ""},
		{"bad cursor", eventlog.ReplayRequest{Subscription: "s", Start: now, Cursor: "zz"}, eventlog.ErrInvalid, "cursor"},
		{"limit", eventlog.ReplayRequest{Subscription: "s", Start: now, Limit: eventlog.MaxReplayPage + 1}, eventlog.ErrInvalid, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := l.ReplayEvents(context.Background(), tt.req)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("ReplayEvents = %+v, %v; want %v containing %q", res, err, tt.want, tt.text)
			}
		})
	}
	// Nothing was replayed by any of them.
	sub, err := l.GetSubscription(context.Background(), "s")
	if err != nil || sub.Pending != 0 {
		t.Errorf("GetSubscription = %+v, %v; want nothing pending", sub, err)
	}
}

// testReplayAcrossReplicas: one replica replays, by id and by time, events
// another replica's stream acknowledged; that stream receives them, and
// GetEvent on the first tells their state from the shared store.
func testReplayAcrossReplicas(t *testing.T, b backend) {
	l1, replica := b.open(t, eventlog.Options{})
	l2 := replica()
	ctx := context.Background()
	start := time.Now()
	appendAll(t, l1, event("a", "x.one", `{"n":1}`), event("b", "x.one", `{"n":2}`), event("c", "x.two", `{"n":3}`))
	ch, _ := stream(t, l2, eventlog.StreamRequest{Subscription: "s"})
	drainAcked(t, l2, ch, "s", 3)
	res, err := l1.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", IDs: []string{"b", "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(res.IDs, []string{"b"}) || !cmp.Equal(res.Unknown, []string{"nope"}) {
		t.Errorf("ReplayEvents(ids) = %+v; want b replayed, nope unknown", res)
	}
	if got := drainAcked(t, l2, ch, "s", 1); got[0].ID != "b" || !got[0].Replay {
		t.Errorf("replayed = %+v, want b marked as a replay", got[0])
	}
	res, err = l1.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", Start: start, Types: []string{"x.one"}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	for res.Next != "" {
		next, err := l1.ReplayEvents(ctx, eventlog.ReplayRequest{Subscription: "s", Start: start, Types: []string{"x.one"}, Limit: 1, Cursor: res.Next})
		if err != nil {
			t.Fatal(err)
		}
		res.IDs, res.Next = append(res.IDs, next.IDs...), next.Next
	}
	if !cmp.Equal(res.IDs, []string{"a", "b"}) {
		t.Errorf("ReplayEvents(time, x.one) = %v; want a, b", res.IDs)
	}
	if got := ids(drainAcked(t, l2, ch, "s", 2)); !cmp.Equal(got, []string{"a", "b"}) {
		t.Errorf("replayed by time = %v, want a, b", got)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, ds, err := l1.GetEvent(ctx, "c", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].State == eventlog.DeliveryAcked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetEvent(c) on the other replica = %+v, want acked on s", ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplayIDsInALongLog: ids anywhere in a log of 150 events, found
// newest first, are replayed in log order, and GetEvent finds each.
func TestReplayIDsInALongLog(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	const n = 150
	for i := range n {
		appendAll(t, l, event(fmt.Sprint("e", i), "x.one", `{}`))
	}
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "s", MaxInFlight: 200})
	drainAcked(t, l, ch, "s", n)
	want := []string{"e0", "e1", "e85", "e86", "e149"}
	res, err := l.ReplayEvents(context.Background(), eventlog.ReplayRequest{Subscription: "s", IDs: []string{"e149", "e86", "e0", "e85", "e1", "e150"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, res.IDs); diff != "" || !slicesEqual(res.Unknown, []string{"e150"}) {
		t.Errorf("ReplayEvents = %+v; (-want +got ids):\n%s", res, diff)
	}
	if got := ids(drainAcked(t, l, ch, "s", len(want))); !cmp.Equal(want, got) {
		t.Errorf("replayed %v, want %v", got, want)
	}
	for _, id := range []string{"e0", "e85", "e86", "e149"} {
		if e, _, err := l.GetEvent(context.Background(), id, 0); err != nil || e.ID != id {
			t.Errorf("GetEvent(%s) = %s, %v", id, e.ID, err)
		}
	}
}
