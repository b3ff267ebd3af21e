package eventlog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// TestDeclare creates declared subscriptions at the oldest event, widens or
// narrows existing ones to the declared filter (narrowing dead-letters what
// it drops), and refuses streams on push subscriptions always and on
// undeclared ones in strict mode.
func TestDeclare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	appendAll(t, l,
		event("e1", "manuscript.submitted", `{}`),
		event("e2", "review.completed", `{}`))

	// An existing subscription with a filter that the declaration narrows.
	ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "narrowed", Types: []string{"manuscript.*", "review.*"}})
	next(t, ch)
	next(t, ch)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v, want context.Canceled", err)
	}
	// An existing subscription the declaration widens.
	ch, stop = stream(t, l, eventlog.StreamRequest{Subscription: "widened", Types: []string{"review.*"}})
	next(t, ch)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v, want context.Canceled", err)
	}

	err := l.Declare(ctx, []eventlog.Declaration{
		{Name: "pull", Types: []string{"manuscript.*"}},
		{Name: "app", Types: []string{"manuscript.submitted"}, Push: true},
		{Name: "narrowed", Types: []string{"manuscript.*"}},
		{Name: "widened"},
	}, true)
	if err != nil {
		t.Fatalf("Declare = %v", err)
	}
	if got := getSub(t, l, "pull"); got.Pending != 1 || !cmp.Equal(got.Types, []string{"manuscript.*"}) {
		t.Errorf("declared pull subscription = %+v, want manuscript.* with 1 pending (from the oldest event)", got)
	}
	if got := getSub(t, l, "app").Pending; got != 1 {
		t.Errorf("declared push subscription pending = %d, want 1", got)
	}
	if got := getSub(t, l, "widened").Types; got != nil {
		t.Errorf("widened subscription types = %v, want every type", got)
	}
	if got := getSub(t, l, "narrowed").Types; !cmp.Equal(got, []string{"manuscript.*"}) {
		t.Errorf("narrowed subscription types = %v, want manuscript.*", got)
	}
	// e2 was delivered on "narrowed" and returned: it comes back and is
	// dead-lettered as narrowed out, never skipped.
	ch, _ = stream(t, l, eventlog.StreamRequest{Subscription: "narrowed"})
	if e := next(t, ch); e.ID != "e1" {
		t.Errorf("narrowed stream got %s, want e1", e.ID)
	}
	waitFor(t, "e2 dead-lettered on narrowed", func() bool {
		d := deadLetters(t, l, "narrowed")
		return len(d) == 1 && d[0].Event.ID == "e2" && d[0].Reason == eventlog.ReasonFilterNarrowed
	})

	for _, tc := range []struct{ sub, want string }{
		{"app", "delivered by push"},
		{"typo", "not declared"},
	} {
		err := l.Stream(ctx, eventlog.StreamRequest{Subscription: tc.sub}, func(eventlog.Event) error { return nil })
		if !errors.Is(err, eventlog.ErrUndeclared) || !errors.Is(err, eventlog.ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Stream(%s) = %v, want ErrUndeclared saying %q", tc.sub, err, tc.want)
		}
	}
	if _, err := l.GetSubscription(ctx, "typo"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Errorf("GetSubscription(typo) = %v, want ErrNotFound: the refused stream created it", err)
	}
}

// TestDeclareInvalid reports every bad declaration at once and creates
// nothing.
func TestDeclareInvalid(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	err := l.Declare(context.Background(), []eventlog.Declaration{
		{Name: "bad name"},
		{Name: "ok", Types: []string{"a.*", "a.b"}},
		{Name: "twice"},
		{Name: "twice"},
	}, false)
	for _, want := range []string{`"bad name"`, "overlap", "twice"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Declare = %v, want an error mentioning %s", err, want)
		}
	}
	subs, lerr := l.ListSubscriptions(context.Background())
	if lerr != nil || len(subs) != 0 {
		t.Errorf("ListSubscriptions = %v, %v; want none", subs, lerr)
	}
}

// TestGiveBackAndDeadLetterNow: an event given back is offered again with
// the same attempt number; one dead-lettered now keeps its reason and detail.
func TestGiveBackAndDeadLetterNow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxAttempts: 2})
	appendAll(t, l, event("e1", "a.b", `{"n":1}`))
	ch := make(chan eventlog.Event, 10)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- l.PushStream(sctx, eventlog.StreamRequest{Subscription: "p", MaxInFlight: 1}, func(e eventlog.Event) error {
			ch <- e
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for range 5 {
		e := next(t, ch)
		if e.Attempt != 1 {
			t.Fatalf("given-back event offered with attempt %d, want 1", e.Attempt)
		}
		if err := l.GiveBack("p", e.ID); err != nil {
			t.Fatalf("GiveBack = %v", err)
		}
	}
	e := next(t, ch)
	if err := l.GiveBack("p", "nope"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Errorf("GiveBack(unknown) = %v, want ErrNotFound", err)
	}
	if err := l.DeadLetterNow(ctx, "p", e, eventlog.ReasonRefused, "HTTP 400"); err != nil {
		t.Fatalf("DeadLetterNow = %v", err)
	}
	if err := l.DeadLetterNow(ctx, "p", e, eventlog.ReasonRefused, "HTTP 400"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Errorf("second DeadLetterNow = %v, want ErrNotFound", err)
	}
	dead := deadLetters(t, l, "p")
	if len(dead) != 1 || dead[0].Reason != eventlog.ReasonRefused || dead[0].Detail != "HTTP 400" || dead[0].Event.Attempt != 1 || string(dead[0].Event.Payload) != `{"n":1}` {
		t.Fatalf("dead letters = %+v, want e1 refused, HTTP 400, 1 attempt", dead)
	}
	waitFor(t, "nothing unacked", func() bool { s := getSub(t, l, "p"); return s.Unacked == 0 && s.Pending == 0 })
}
