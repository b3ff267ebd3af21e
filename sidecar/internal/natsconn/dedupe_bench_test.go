package natsconn

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// idLayout is a way for the embedded store to remember the ids of the
// duplicate window.
type idLayout struct {
	name    string
	streams []jetstream.StreamConfig
	// msgs are what one webhook's event stores.
	msgs func(id string, payload []byte) []*nats.Msg
	// before, if set, is the subject to read before storing (a duplicate
	// is one found there).
	before func(id string) string
	// settle is how long to wait after filling, so that what a short
	// JetStream window holds is what it holds in its steady state.
	settle time.Duration
}

// idLayouts are the layouts BenchmarkRestartWithIDs and
// BenchmarkWebhookStoreCalls compare:
//
//   - msg-id: the event log's way: each event carries its id in
//     Nats-Msg-Id and the stream has a 24 h duplicate window; at start
//     JetStream reads the window's events back to rebuild its table.
//   - subject-per-id: the id is the last token of the subject, and the
//     stream keeps one message per subject and refuses a second
//     (DiscardNewPerSubject); the server's subject index is the table.
//     It changes the events' subjects, so the on-disk format.
//   - id-stream: the events as they are, with a short JetStream window
//     (concurrent and quick retries; 1 s here, the steady state of a
//     window of minutes, which holds only its last minutes' events), and a
//     second stream with one empty message per id on a subject of its own
//     (ids.<id>, a second one refused) for the 24 h: read before the
//     append, written after it. No change to the events.
var idLayouts = []idLayout{
	{name: "msg-id",
		streams: []jetstream.StreamConfig{{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: 24 * time.Hour}},
		msgs: func(id string, payload []byte) []*nats.Msg {
			return []*nats.Msg{{Subject: "events.manuscript.submitted", Header: nats.Header{jetstream.MsgIDHeader: {id}}, Data: payload}}
		}},
	{name: "subject-per-id",
		streams: []jetstream.StreamConfig{{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: 100 * time.Millisecond, // the least allowed; no message carries an id
			MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true}},
		msgs: func(id string, payload []byte) []*nats.Msg {
			return []*nats.Msg{{Subject: "events.manuscript.submitted." + id, Data: payload}}
		}},
	{name: "id-stream",
		streams: []jetstream.StreamConfig{
			{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: time.Second},
			{Name: "IDS", Subjects: []string{"ids.>"}, MaxAge: 24 * time.Hour, AllowDirect: true,
				MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true},
		},
		msgs: func(id string, payload []byte) []*nats.Msg {
			return []*nats.Msg{
				{Subject: "events.manuscript.submitted", Header: nats.Header{jetstream.MsgIDHeader: {id}}, Data: payload},
				{Subject: "ids." + id},
			}
		},
		before: func(id string) string { return "$JS.API.DIRECT.GET.IDS.ids." + id },
		settle: 2 * time.Second},
}

// benchPayload is a webhook body of the bench's size (1 KiB).
var benchPayload = make([]byte, 1024)

// benchIDs is CHRONOSHUB_BENCH_IDS, default 100,000.
func benchIDs(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("CHRONOSHUB_BENCH_IDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CHRONOSHUB_BENCH_IDS=%q: want a positive integer", v)
		}
	}
	return n
}

// startLayout starts an embedded store on dir with the layout's streams.
func startLayout(b *testing.B, dir string, l idLayout) *Embedded {
	b.Helper()
	emb, err := StartEmbedded(EmbeddedOptions{Dir: dir, Sync: Sync{Interval: time.Second}, StartTimeout: 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	for _, cfg := range l.streams {
		if _, err := emb.JetStream().CreateOrUpdateStream(context.Background(), cfg); err != nil {
			emb.Close()
			b.Fatal(err)
		}
	}
	return emb
}

// BenchmarkRestartWithIDs compares the layouts by what a restart costs
// with CHRONOSHUB_BENCH_IDS ids in the window (default 100,000; the target
// is about 1,000,000) and 1 KiB events: time from StartEmbedded until the
// store answers (ns/op), and the heap the server holds afterwards, per id.
// The store was shut down cleanly; after a crash the server also rebuilds
// its index from the blocks.
//
//	CHRONOSHUB_BENCH_IDS=1000000 go test -run '^$' -bench RestartWithIDs -benchtime 2x -timeout 30m ./sidecar/internal/natsconn
func BenchmarkRestartWithIDs(b *testing.B) {
	n := benchIDs(b)
	for _, l := range idLayouts {
		b.Run(fmt.Sprintf("%s/%d", l.name, n), func(b *testing.B) {
			dir := b.TempDir()
			emb := startLayout(b, dir, l)
			js := emb.JetStream()
			for i := range n {
				for _, m := range l.msgs(uuid.NewString(), benchPayload) {
					if _, err := js.PublishMsgAsync(m); err != nil {
						emb.Close()
						b.Fatal(err)
					}
				}
				if i%1000 == 999 {
					<-js.PublishAsyncComplete()
				}
			}
			<-js.PublishAsyncComplete()
			time.Sleep(l.settle)
			emb.Close()
			var heap uint64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				emb := startLayout(b, dir, l)
				b.StopTimer()
				for _, cfg := range l.streams {
					s, err := emb.JetStream().Stream(context.Background(), cfg.Name)
					if err != nil {
						b.Fatal(err)
					}
					if got := s.CachedInfo().State.Msgs; got != uint64(n) {
						b.Fatalf("%s: %d messages after restart, want %d", cfg.Name, got, n)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
				emb.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(heap)/float64(n), "heap-bytes/id")
		})
	}
}

// BenchmarkWebhookStoreCalls compares the layouts by what one new
// webhook's store calls take, one webhook at a time (fsync every second):
// the read before the append where the layout has one, the append, and
// the writes after it. It reports their p50 and p99.
//
//	go test -run '^$' -bench WebhookStoreCalls -benchtime 5000x ./sidecar/internal/natsconn
func BenchmarkWebhookStoreCalls(b *testing.B) {
	for _, l := range idLayouts {
		b.Run(l.name, func(b *testing.B) {
			emb := startLayout(b, b.TempDir(), l)
			defer emb.Close()
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				id := uuid.NewString()
				t0 := time.Now()
				if l.before != nil {
					if _, err := emb.Conn().Request(l.before(id), nil, 5*time.Second); err != nil {
						b.Fatal(err)
					}
				}
				for _, m := range l.msgs(id, benchPayload) {
					if _, err := emb.JetStream().PublishMsg(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
