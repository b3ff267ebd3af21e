package eventlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// benchLog is a log of n stored events with one subscription ("bench")
// that exists, and the time before the first.
func benchLog(b *testing.B, n int) (*eventlog.Log, time.Time) {
	b.Helper()
	l, _ := openLog(b, b.TempDir(), eventlog.Options{})
	ctx := context.Background()
	start := time.Now()
	for i := range n {
		if _, err := l.Append(ctx, eventlog.Event{ID: fmt.Sprint("e", i), Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"m-123","status":"submitted"}`)}); err != nil {
			b.Fatal(err)
		}
	}
	// Create the subscription, at the end of the log, with a stream that
	// ends once it exists.
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- l.Stream(sctx, eventlog.StreamRequest{Subscription: "bench", Start: eventlog.StartNow}, func(eventlog.Event) error { return nil })
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := l.GetSubscription(ctx, "bench"); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("subscription not created: %v", err)
		}
	}
	cancel()
	<-done
	return l, start
}

// BenchmarkReplayRange measures a replay by time range: b.N stored events
// offered again in pages of the default size (1000 per call), the copies
// written to the log. It reports events/s.
//
//	go test -run '^$' -bench ReplayRange -benchtime 20000x ./sidecar/internal/eventlog/
func BenchmarkReplayRange(b *testing.B) {
	l, start := benchLog(b, b.N)
	ctx := context.Background()
	b.ResetTimer()
	req := eventlog.ReplayRequest{Subscription: "bench", Start: start}
	replayed := 0
	for {
		res, err := l.ReplayEvents(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		replayed += len(res.IDs)
		if res.Next == "" {
			break
		}
		req.Cursor = res.Next
	}
	b.StopTimer()
	if replayed != b.N {
		b.Fatalf("replayed %d of %d", replayed, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReplayIDScan measures the worst case of a replay by id: an id
// that is not in a log of b.N events, which reads every event, newest
// first. It reports events read per second.
//
//	go test -run '^$' -bench ReplayIDScan -benchtime 20000x ./sidecar/internal/eventlog/
func BenchmarkReplayIDScan(b *testing.B) {
	l, _ := benchLog(b, b.N)
	b.ResetTimer()
	res, err := l.ReplayEvents(context.Background(), eventlog.ReplayRequest{Subscription: "bench", IDs: []string{"missing"}})
	b.StopTimer()
	if err != nil || len(res.Unknown) != 1 {
		b.Fatalf("ReplayEvents = %+v, %v", res, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
