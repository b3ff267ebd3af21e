package natsconn

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkDurableAppend measures appends from 32 concurrent callers (the
// bench's webhook senders) with the interval setting (written to the
// operating system, fsynced every second) and with group commit (each
// append followed by Commit, as a webhook with CHRONOSHUB_SYNC=always).
func BenchmarkDurableAppend(b *testing.B) {
	for _, tt := range []struct {
		name string
		sync Sync
	}{{"interval-1s", Sync{Interval: time.Second}}, {"group-commit", Sync{Always: true}}} {
		b.Run(tt.name, func(b *testing.B) {
			emb, err := StartEmbedded(EmbeddedOptions{Dir: b.TempDir(), Sync: tt.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer emb.Close()
			ctx := context.Background()
			if _, err := emb.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 1024)
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := emb.JetStream().Publish(ctx, "events.x", payload); err != nil {
						b.Error(err)
						return
					}
					if err := emb.Commit(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
