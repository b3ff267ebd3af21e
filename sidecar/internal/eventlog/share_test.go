package eventlog_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// testSharedSubscriptionSpreadsWork: two replicas' streams on one
// subscription, each acknowledging at once, with events arriving one by one:
// both streams receive events (the work is shared), and each event is
// delivered once.
func testSharedSubscriptionSpreadsWork(t *testing.T, b backend) {
	l1, replica := b.open(t, eventlog.Options{})
	l2 := replica()
	ch1, _ := stream(t, l1, eventlog.StreamRequest{Subscription: "w"})
	ch2, _ := stream(t, l2, eventlog.StreamRequest{Subscription: "w"})
	waitFor(t, "both streams open", func() bool {
		s1, err1 := l1.GetSubscription(t.Context(), "w")
		s2, err2 := l2.GetSubscription(t.Context(), "w")
		return err1 == nil && err2 == nil && s1.OpenStreams == 1 && s2.OpenStreams == 1
	})
	const n = 80
	got := [2]int{}
	seen := map[string]bool{}
	tick := time.NewTicker(50 * time.Millisecond) // as apps' webhooks arrive, one by one
	defer tick.Stop()
	for i := range n {
		<-tick.C
		appendAll(t, l1, event(fmt.Sprint("e", i), "manuscript.submitted", `{}`))
		var (
			e eventlog.Event
			l *eventlog.Log
		)
		select {
		case e = <-ch1:
			got[0]++
			l = l1
		case e = <-ch2:
			got[1]++
			l = l2
		case <-time.After(10 * time.Second):
			t.Fatalf("event e%d not delivered", i)
		}
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice", e.ID)
		}
		seen[e.ID] = true
		settle(t, l, eventlog.Settlement{Subscription: "w", IDs: []string{e.ID}})
	}
	t.Logf("stream 1 received %d, stream 2 received %d", got[0], got[1])
	if got[0] == 0 || got[1] == 0 {
		t.Fatalf("stream 1 received %d of %d events, stream 2 %d: the work is not shared", got[0], n, got[1])
	}
}
