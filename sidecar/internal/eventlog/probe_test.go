package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// TestProbeWritesToTheEventsStream: the readiness probe is a write to the
// events stream itself (whose quorum webhooks need), which no subscription
// receives and which leaves nothing behind.
func TestProbeWritesToTheEventsStream(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{})
	ctx := context.Background()
	ch, _ := stream(t, l, eventlog.StreamRequest{Subscription: "all"})
	waitSubscription(t, l, "all")
	events, err := l.JetStream().Stream(ctx, eventlog.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	before, err := events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Probe(ctx); err != nil {
		t.Fatalf("Probe = %v", err)
	}
	after, err := events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.LastSeq != before.State.LastSeq+1 {
		t.Fatalf("events stream last sequence %d after Probe, want %d: the probe did not write to it", after.State.LastSeq, before.State.LastSeq+1)
	}
	if after.State.Msgs != before.State.Msgs {
		t.Fatalf("events stream holds %d messages after Probe, want %d: the probe was left behind", after.State.Msgs, before.State.Msgs)
	}
	appendAll(t, l, event("real", "manuscript.submitted", `{}`))
	if e := next(t, ch); e.ID != "real" {
		t.Fatalf("a subscription of every type received %q (%s), want the event appended after the probe", e.ID, e.Type)
	}
	if s := getSub(t, l, "all"); s.Pending != 0 {
		t.Fatalf("subscription pending %d after the probe", s.Pending)
	}
}

// TestProbeOfAFullLog: a full log (MaxBytes reached, nothing acknowledged)
// takes no write, yet the store works: the probe succeeds, as appends fail
// with ErrFull, which is not a store failure.
func TestProbeOfAFullLog(t *testing.T) {
	t.Parallel()
	l, _ := openLog(t, t.TempDir(), eventlog.Options{MaxBytes: 4096})
	ctx := context.Background()
	stream(t, l, eventlog.StreamRequest{Subscription: "slow", MaxInFlight: 1})
	waitSubscription(t, l, "slow")
	for i := 0; ; i++ {
		_, err := l.Append(ctx, event(fmt.Sprint("e", i), "manuscript.submitted", strings.Repeat("x", 200)))
		if errors.Is(err, eventlog.ErrFull) {
			break
		}
		if err != nil || i > 100 {
			t.Fatalf("Append %d = %v; want ErrFull within 100 events", i, err)
		}
	}
	if err := l.Probe(ctx); err != nil {
		t.Fatalf("Probe of a full log = %v, want nil", err)
	}
}
