package eventlog_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// BenchmarkDuplicateWindowMemory reports the heap that JetStream's
// de-duplication costs per tracked event id: the same events are appended
// with a 24 h window (every id tracked) and with a 1 s window (ids expired
// before the measurement), and the difference of the heaps in use is divided
// by the number of ids. Run it with -benchtime=1x; b.N is not used.
func BenchmarkDuplicateWindowMemory(b *testing.B) {
	const n = 100_000
	heap := func(window time.Duration) uint64 {
		l, closeLog := openLog(b, b.TempDir(), eventlog.Options{DuplicateWindow: window, Retention: time.Hour})
		defer closeLog()
		ctx := context.Background()
		for i := range n {
			e := eventlog.Event{ID: uuid.NewString(), Type: "manuscript.submitted", Payload: []byte(`{}`), SignedAt: time.Now()}
			if _, err := l.Append(ctx, e); err != nil {
				b.Fatalf("Append %d: %v", i, err)
			}
		}
		if window < time.Minute {
			time.Sleep(2*window + time.Second) // let JetStream expire the ids
		}
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	for b.Loop() {
		short := heap(time.Second)
		long := heap(24 * time.Hour)
		perID := (float64(long) - float64(short)) / n
		b.ReportMetric(perID, "B/id")
		b.ReportMetric(perID*1e6/(1<<20), "MiB/million-ids")
		b.Logf("heap in use after %d appends: 1s window %d MiB, 24h window %d MiB", n, short>>20, long>>20)
	}
}
