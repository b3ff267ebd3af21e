package natsconn

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkRestartWithIDs compares two ways for the embedded store to
// remember the ids of the duplicate window, by what a restart costs with
// CHRONOSHUB_BENCH_IDS ids in it (default 100,000; the target is about
// 1,000,000): time from StartEmbedded until the store answers (ns/op), and
// the heap the server holds afterwards, per id. The store was shut down
// cleanly; after a crash the server also rebuilds its index from the blocks.
//
//   - msg-id: the event log's way: each event carries its id in
//     Nats-Msg-Id and the stream has a 24 h duplicate window; at start
//     JetStream reads the window's events back to rebuild its table.
//   - subject-per-id: the id is the last token of the subject, and the
//     stream keeps one message per subject and refuses a second
//     (DiscardNewPerSubject); the server's subject index is the table.
func BenchmarkRestartWithIDs(b *testing.B) {
	n := 100_000
	if v := os.Getenv("CHRONOSHUB_BENCH_IDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CHRONOSHUB_BENCH_IDS=%q: want a positive integer", v)
		}
	}
	for _, tt := range []struct {
		name string
		cfg  jetstream.StreamConfig
		msg  func(id string) *nats.Msg
	}{
		{"msg-id", jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: 24 * time.Hour},
			func(id string) *nats.Msg {
				m := nats.NewMsg("events.manuscript.submitted")
				m.Header.Set(jetstream.MsgIDHeader, id)
				return m
			}},
		{"subject-per-id", jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: 100 * time.Millisecond, // the least allowed; no message carries an id
			MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true},
			func(id string) *nats.Msg { return nats.NewMsg("events.manuscript.submitted." + id) }},
	} {
		b.Run(fmt.Sprintf("%s/%d", tt.name, n), func(b *testing.B) {
			dir := b.TempDir()
			emb, err := StartEmbedded(EmbeddedOptions{Dir: dir, Sync: Sync{Interval: time.Minute}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := emb.JetStream().CreateStream(ctx, tt.cfg); err != nil {
				emb.Close()
				b.Fatal(err)
			}
			payload := make([]byte, 256)
			for i := range n {
				m := tt.msg(uuid.NewString())
				m.Data = payload
				if _, err := emb.JetStream().PublishMsgAsync(m); err != nil {
					emb.Close()
					b.Fatal(err)
				}
				if i%1000 == 999 {
					<-emb.JetStream().PublishAsyncComplete()
				}
			}
			<-emb.JetStream().PublishAsyncComplete()
			emb.Close()
			var heap uint64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				emb, err := StartEmbedded(EmbeddedOptions{Dir: dir, Sync: Sync{Interval: time.Minute}})
				if err != nil {
					b.Fatal(err)
				}
				s, err := emb.JetStream().Stream(ctx, "EVENTS")
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := s.CachedInfo().State.Msgs; got != uint64(n) {
					b.Fatalf("%d messages after restart, want %d", got, n)
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
