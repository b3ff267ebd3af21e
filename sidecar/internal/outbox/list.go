package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// List returns up to limit records, most recently updated first. It reads
// every record the bucket holds (one pass over the bucket's current
// values, keeping at most 2×limit in memory), so its cost grows with the
// events sent within the idempotency window.
func (o *Outbox) List(ctx context.Context, limit int) ([]Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	w, err := o.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("outbox: list records: %w", err)
	}
	defer func() { _ = w.Stop() }()
	newestFirst := func(a, b Record) int { return b.UpdatedAt.Compare(a.UpdatedAt) }
	var out []Record
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("outbox: list records: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("outbox: list records: watcher stopped")
			}
			if e == nil { // every current value has been read
				slices.SortFunc(out, newestFirst)
				return out[:min(len(out), limit)], nil
			}
			var rec stored
			if json.Unmarshal(e.Value(), &rec) != nil || rec.Key == "" {
				continue
			}
			out = append(out, rec.record())
			if len(out) >= 2*limit {
				slices.SortFunc(out, newestFirst)
				out = out[:limit]
			}
		}
	}
}
