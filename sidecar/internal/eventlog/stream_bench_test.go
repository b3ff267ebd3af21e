package eventlog_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// BenchmarkStreamDrain measures how fast one stream drains a backlog: b.N
// events stored beforehand, received and acknowledged by one stream (the
// app acks in batches of 100 ids, as AckEvents allows). It reports events/s.
//
//	go test -run '^$' -bench StreamDrain -benchtime 20000x ./sidecar/internal/eventlog/
func BenchmarkStreamDrain(b *testing.B) {
	l, _ := openLog(b, b.TempDir(), eventlog.Options{})
	ctx := context.Background()
	for i := range b.N {
		if _, err := l.Append(ctx, eventlog.Event{ID: fmt.Sprint("e", i), Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"m-123","status":"submitted"}`)}); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 100
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make([]string, 0, batch)
	received := 0
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		done, _, err := l.Settle(ctx, eventlog.Settlement{Subscription: "bench", IDs: ids})
		if err == nil && len(done) != len(ids) {
			err = fmt.Errorf("settled %d of %d", len(done), len(ids))
		}
		ids = ids[:0]
		return err
	}
	b.ResetTimer()
	err := l.Stream(ctx, eventlog.StreamRequest{Subscription: "bench", MaxInFlight: batch}, func(e eventlog.Event) error {
		ids = append(ids, e.ID)
		received++
		if len(ids) == batch || received == b.N {
			if err := flush(); err != nil {
				return err
			}
		}
		if received == b.N {
			cancel()
		}
		return nil
	})
	b.StopTimer()
	if received != b.N {
		b.Fatalf("received %d of %d: %v", received, b.N, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSettle measures AckEvents' cost in the log: one Settle of 100
// delivered events per iteration (delivery is outside the timer). It
// reports acknowledgements/s.
//
//	go test -run '^$' -bench Settle -benchtime 200x ./sidecar/internal/eventlog/
func BenchmarkSettle(b *testing.B) {
	const batch = 100
	l, _ := openLog(b, b.TempDir(), eventlog.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range b.N * batch {
		if _, err := l.Append(ctx, eventlog.Event{ID: fmt.Sprint("e", i), Type: "manuscript.submitted", Payload: []byte(`{}`)}); err != nil {
			b.Fatal(err)
		}
	}
	delivered := make(chan string, batch)
	go l.Stream(ctx, eventlog.StreamRequest{Subscription: "bench", MaxInFlight: batch}, func(e eventlog.Event) error {
		delivered <- e.ID
		return nil
	})
	ids := make([]string, 0, batch)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ids = ids[:0]
		for range batch {
			ids = append(ids, <-delivered)
		}
		b.StartTimer()
		done, _, err := l.Settle(ctx, eventlog.Settlement{Subscription: "bench", IDs: ids})
		if err != nil || len(done) != batch {
			b.Fatalf("Settle = %d done, %v", len(done), err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "acks/s")
}

// BenchmarkStreamLatency measures one event's way through the log while a
// stream waits for it: Append, then the time until the stream's send sees
// it, one event at a time (the app acknowledges each at once, from another
// goroutine, as the bench command's app does). It reports the p50 and p99
// of that time.
//
//	go test -run '^$' -bench StreamLatency -benchtime 2000x ./sidecar/internal/eventlog/
func BenchmarkStreamLatency(b *testing.B) {
	l, _ := openLog(b, b.TempDir(), eventlog.Options{MaxInFlight: latencyInFlight})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan time.Time, 1)
	acks := make(chan string, 1)
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- l.Stream(ctx, eventlog.StreamRequest{Subscription: "bench", MaxInFlight: latencyInFlight}, func(e eventlog.Event) error {
			seen <- time.Now()
			acks <- e.ID
			return nil
		})
	}()
	ackErr := make(chan error, 1)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for id := range acks {
			if _, _, err := l.Settle(ctx, eventlog.Settlement{Subscription: "bench", IDs: []string{id}}); err != nil && ctx.Err() == nil {
				ackErr <- err
				return
			}
		}
	}()
	// The stream is open once it delivered a first event.
	if _, err := l.Append(ctx, eventlog.Event{ID: "warm-up", Type: "manuscript.submitted", Payload: []byte(`{}`)}); err != nil {
		b.Fatal(err)
	}
	<-seen
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := l.Append(ctx, eventlog.Event{ID: fmt.Sprint("e", i), Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"m-123","status":"submitted"}`)}); err != nil {
			b.Fatal(err)
		}
		select {
		case t := <-seen:
			lat = append(lat, t.Sub(start))
		case err := <-streamErr:
			b.Fatal(err)
		case err := <-ackErr:
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cancel()
	<-streamErr
	close(acks)
	<-ackDone
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// latencyInFlight is BenchmarkStreamLatency's in-flight window, the
// default one (and the bench command's app's).
const latencyInFlight = 100
