package push_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

// pushVsStreamRate is the rate BenchmarkPushVsStream appends at: the
// 1,000 events/s of issue 20's target.
const pushVsStreamRate = 1000

// BenchmarkPushVsStream compares push delivery with the gRPC stream in one
// run, on one log: b.N events appended at 1,000/s (open loop: event i is
// due at start + i ms, and a late Append makes every later event late too),
// each delivered both to a push subscription (POSTed to a loopback app that
// answers 200 at once, with the push concurrency of the sub-benchmark's
// name) and to a gRPC stream subscription (a loopback client of the real
// EventService with the default in-flight window, acknowledging through a
// batching acker as chronoshub-bench's app does). A latency runs from the
// event's due time to the app's handler or the stream's Recv. It reports
// the p50 and p99 of both and the ratio of the p99s (push over stream;
// issue 20's target is at most 1.5).
//
//	go test -run '^$' -bench 'PushVsStream$' -benchtime 5000x ./sidecar/internal/push/
func BenchmarkPushVsStream(b *testing.B) {
	for _, concurrency := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) { benchPushVsStream(b, concurrency) })
	}
}

// receipts records when each event (id "e<i>") first reached an app.
type receipts struct {
	mu   sync.Mutex
	at   []time.Time
	n    int
	done chan struct{} // closed when every event arrived
}

func newReceipts(n int) *receipts {
	return &receipts{at: make([]time.Time, n), done: make(chan struct{})}
}

func (r *receipts) got(id string, now time.Time) {
	i, err := strconv.Atoi(strings.TrimPrefix(id, "e"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || i < 0 || i >= len(r.at) || !r.at[i].IsZero() {
		return // the warm-up event, or a redelivery
	}
	r.at[i] = now
	if r.n++; r.n == len(r.at) {
		close(r.done)
	}
}

func (r *receipts) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// latencies returns each event's latency from its due time, sorted.
func (r *receipts) latencies(due []time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := make([]time.Duration, len(due))
	for i := range due {
		lat[i] = r.at[i].Sub(due[i])
	}
	slices.Sort(lat)
	return lat
}

func benchPushVsStream(b *testing.B, concurrency int) {
	l := openLog(b, eventlog.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	warm := make(chan struct{}, 2)
	pushGot, streamGot := newReceipts(b.N), newReceipts(b.N)

	// The push subscription and its app.
	url := benchServe(b, func(id string) {
		if id == "warm-up" {
			warm <- struct{}{}
			return
		}
		pushGot.got(id, time.Now())
	})
	p, err := push.New(l, push.Target{Subscription: "push", URL: url, Concurrency: concurrency}, push.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pushDone := make(chan error, 1)
	go func() { pushDone <- p.Run(ctx) }()

	// The stream subscription and its app.
	client := startEventService(b, l)
	streamDone := consumeStream(ctx, client, "stream", func(id string, now time.Time) {
		if id == "warm-up" {
			warm <- struct{}{}
			return
		}
		streamGot.got(id, now)
	})

	// Both subscriptions exist and deliver once the warm-up event arrived
	// at both apps.
	if _, err := l.Append(ctx, eventlog.Event{ID: "warm-up", Type: "manuscript.submitted", Payload: []byte(`{}`)}); err != nil {
		b.Fatal(err)
	}
	for range 2 {
		select {
		case <-warm:
		case err := <-pushDone:
			b.Fatalf("push Run = %v before the warm-up event arrived", err)
		case err := <-streamDone:
			b.Fatalf("stream = %v before the warm-up event arrived", err)
		case <-time.After(30 * time.Second):
			b.Fatal("the warm-up event did not reach both apps within 30 s")
		}
	}

	due := make([]time.Time, b.N)
	appendLat := make([]time.Duration, b.N) // due time to Append's return
	interval := time.Second / pushVsStreamRate
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		due[i] = start.Add(time.Duration(i) * interval)
		if d := time.Until(due[i]); d > 0 {
			time.Sleep(d)
		}
		e := eventlog.Event{ID: "e" + strconv.Itoa(i), Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"m-123","status":"submitted"}`)}
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
		appendLat[i] = time.Since(due[i])
	}
	deadline := time.After(30 * time.Second)
	for _, r := range []*receipts{pushGot, streamGot} {
		select {
		case <-r.done:
		case err := <-pushDone:
			b.Fatalf("push Run = %v; push delivered %d of %d", err, pushGot.count(), b.N)
		case err := <-streamDone:
			b.Fatalf("stream = %v; stream delivered %d of %d", err, streamGot.count(), b.N)
		case <-deadline:
			b.Fatalf("30 s after the last Append: push delivered %d of %d events, the stream %d", pushGot.count(), b.N, streamGot.count())
		}
	}
	b.StopTimer()
	cancel()
	if err := <-pushDone; err != nil {
		b.Fatal(err)
	}
	<-streamDone

	pushLat, streamLat := pushGot.latencies(due), streamGot.latencies(due)
	p99 := func(lat []time.Duration) time.Duration { return lat[len(lat)*99/100] }
	slices.Sort(appendLat)
	// What both share: how late the Appends returned.
	b.ReportMetric(float64(p99(appendLat).Microseconds()), "append-p99-µs")
	b.ReportMetric(float64(pushLat[len(pushLat)/2].Microseconds()), "push-p50-µs")
	b.ReportMetric(float64(p99(pushLat).Microseconds()), "push-p99-µs")
	b.ReportMetric(float64(streamLat[len(streamLat)/2].Microseconds()), "stream-p50-µs")
	b.ReportMetric(float64(p99(streamLat).Microseconds()), "stream-p99-µs")
	b.ReportMetric(float64(p99(pushLat))/float64(max(p99(streamLat), 1)), "p99-ratio")
	// How much later push delivered the same event than the stream, which
	// takes out what both share (the Append, a stall of the whole process).
	extra := make([]time.Duration, b.N)
	for i := range extra {
		extra[i] = pushGot.at[i].Sub(streamGot.at[i])
	}
	slices.Sort(extra)
	b.ReportMetric(float64(extra[len(extra)/2].Microseconds()), "push-later-p50-µs")
	b.ReportMetric(float64(p99(extra).Microseconds()), "push-later-p99-µs")
	b.ReportMetric(0, "ns/op") // the per-op time is the pacing, not a figure
}

// startEventService serves the real gRPC EventService over l on a loopback
// port and returns a client of it.
func startEventService(b *testing.B, l *eventlog.Log) sidecarv1.EventServiceClient {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	svc := grpcapi.New(l, nil, nil, grpcapi.Options{})
	srv := grpc.NewServer()
	sidecarv1.RegisterEventServiceServer(srv, svc)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn.Close()
		svc.CancelStreams()
		srv.Stop()
		<-served
	})
	return sidecarv1.NewEventServiceClient(conn)
}

// consumeStream is a gRPC app: one stream on sub (the default in-flight
// window) that calls got with each event's id at its receipt and
// acknowledges every event through a batching acker, which sends whatever
// arrived since its last call (one id under light load). The returned
// channel yields the stream's end once both goroutines stopped.
func consumeStream(ctx context.Context, client sidecarv1.EventServiceClient, sub string, got func(id string, now time.Time)) <-chan error {
	done := make(chan error, 1)
	stream, err := client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: sub})
	if err != nil {
		done <- err
		return done
	}
	ids := make(chan string, 4096)
	var wg sync.WaitGroup
	var recvErr error
	wg.Go(func() {
		defer close(ids)
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr = err
				return
			}
			got(resp.GetEvent().GetId(), time.Now())
			ids <- resp.GetEvent().GetId()
		}
	})
	wg.Go(func() {
		batch := make([]string, 0, 256)
		for id := range ids {
			batch = append(batch[:0], id)
		more:
			for len(batch) < cap(batch) {
				select {
				case id, ok := <-ids:
					if !ok {
						break more
					}
					batch = append(batch, id)
				default:
					break more
				}
			}
			// A failed acknowledgement (the stream ending) leaves the event
			// to its ack deadline; the receiver reports the stream's end.
			_, _ = client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: sub, EventIds: batch})
		}
	})
	go func() {
		wg.Wait()
		done <- recvErr
	}()
	return done
}

// BenchmarkPushVsStreamDrain compares how fast push delivery and the gRPC
// stream drain the same backlog in one run: b.N events stored first, then
// drained by a push subscription (to a loopback app that answers 200 at
// once, with the push concurrency of the sub-benchmark's name) and, after
// it, by a gRPC stream subscription (the default in-flight window, a
// batching acker). Each drain is timed from the consumer's start to the
// app's receipt of the last event. It reports both rates in events/s and
// their ratio (push over stream).
//
//	go test -run '^$' -bench PushVsStreamDrain -benchtime 5000x ./sidecar/internal/push/
func BenchmarkPushVsStreamDrain(b *testing.B) {
	for _, concurrency := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) { benchPushVsStreamDrain(b, concurrency) })
	}
}

func benchPushVsStreamDrain(b *testing.B, concurrency int) {
	l := openLog(b, eventlog.Options{})
	ctx := context.Background()
	for i := range b.N {
		e := eventlog.Event{ID: "e" + strconv.Itoa(i), Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"m-123","status":"submitted"}`)}
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	pushGot, streamGot := newReceipts(b.N), newReceipts(b.N)
	url := benchServe(b, func(id string) { pushGot.got(id, time.Now()) })
	client := startEventService(b, l)
	b.ResetTimer()

	// Push drains first.
	pctx, cancel := context.WithCancel(ctx)
	p, err := push.New(l, push.Target{Subscription: "push", URL: url, Concurrency: concurrency}, push.Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	pushDone := make(chan error, 1)
	go func() { pushDone <- p.Run(pctx) }()
	select {
	case <-pushGot.done:
	case err := <-pushDone:
		b.Fatalf("push Run = %v after %d of %d events", err, pushGot.count(), b.N)
	case <-time.After(time.Minute):
		b.Fatalf("push delivered %d of %d events in a minute", pushGot.count(), b.N)
	}
	pushTime := time.Since(start)
	cancel()
	if err := <-pushDone; err != nil {
		b.Fatal(err)
	}

	// Then the stream.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start = time.Now()
	streamDone := consumeStream(sctx, client, "stream", streamGot.got)
	select {
	case <-streamGot.done:
	case err := <-streamDone:
		b.Fatalf("stream = %v after %d of %d events", err, streamGot.count(), b.N)
	case <-time.After(time.Minute):
		b.Fatalf("the stream delivered %d of %d events in a minute", streamGot.count(), b.N)
	}
	streamTime := time.Since(start)
	b.StopTimer()
	cancel()
	<-streamDone

	pushRate, streamRate := float64(b.N)/pushTime.Seconds(), float64(b.N)/streamTime.Seconds()
	b.ReportMetric(pushRate, "push-events/s")
	b.ReportMetric(streamRate, "stream-events/s")
	b.ReportMetric(pushRate/streamRate, "rate-ratio")
	b.ReportMetric(0, "ns/op")
}
