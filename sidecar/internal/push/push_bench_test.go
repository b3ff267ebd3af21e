package push_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

// benchServe serves a loopback app that answers 200 to every POST and calls
// got with the event id.
func benchServe(b *testing.B, got func(id string)) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got(r.Header.Get(push.HeaderEventID))
	})}
	go srv.Serve(lis)
	b.Cleanup(func() { srv.Close() })
	return "http://" + lis.Addr().String() + "/events"
}

// BenchmarkPushDrain measures how fast push delivery drains a backlog: b.N
// events stored beforehand, each POSTed to a loopback app that answers 200
// at once, and acknowledged. Compare with eventlog's BenchmarkStreamDrain
// (the same backlog through a stream). It reports events/s per concurrency.
//
//	go test -run '^$' -bench PushDrain -benchtime 5000x ./sidecar/internal/push/
func BenchmarkPushDrain(b *testing.B) {
	for _, concurrency := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) {
			l := openLog(b, eventlog.Options{})
			ctx := context.Background()
			for i := range b.N {
				if _, err := l.Append(ctx, eventlog.Event{ID: fmt.Sprint("e", i), Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"m-123","status":"submitted"}`)}); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			done := make(chan struct{})
			url := benchServe(b, func(string) {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
			})
			p, err := push.New(l, push.Target{Subscription: "bench", URL: url, Concurrency: concurrency}, push.Options{})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(ctx)
			runDone := make(chan error, 1)
			b.ResetTimer()
			go func() { runDone <- p.Run(ctx) }()
			<-done
			// Every event is acknowledged.
			for {
				s, err := l.GetSubscription(ctx, "bench")
				if err != nil {
					b.Fatal(err)
				}
				if s.Pending == 0 && s.Unacked == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cancel()
			if err := <-runDone; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkPushLatency measures one event's way from Append to the app's
// handler, one event at a time, per concurrency. Compare with eventlog's
// BenchmarkStreamLatency. It reports the p50 and p99.
//
//	go test -run '^$' -bench PushLatency -benchtime 2000x ./sidecar/internal/push/
func BenchmarkPushLatency(b *testing.B) {
	for _, concurrency := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) { benchPushLatency(b, concurrency) })
	}
}

func benchPushLatency(b *testing.B, concurrency int) {
	l := openLog(b, eventlog.Options{})
	seen := make(chan time.Time, 1)
	url := benchServe(b, func(string) { seen <- time.Now() })
	p, err := push.New(l, push.Target{Subscription: "bench", URL: url, Concurrency: concurrency}, push.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
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
		lat = append(lat, (<-seen).Sub(start))
	}
	b.StopTimer()
	cancel()
	if err := <-runDone; err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
