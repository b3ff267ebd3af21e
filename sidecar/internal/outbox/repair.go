package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lostAfter is how old a Queued asynchronous record must be before a
// missing queue entry counts as lost: Enqueue writes the record and then
// queues the event, so a younger record may be between the two.
const lostAfter = 2 * time.Minute

// repairInterval is how often Run looks for queued events the queue lost.
const repairInterval = 10 * time.Minute

// errLost is the reason given to an asynchronous event whose queue entry
// was lost.
const errLost = "the queued event was lost from the outbox queue (the store lost data it had not synced, e.g. a power cut with an interval sync); it may or may not have reached ChronosHub"

// repairLost marks Failed every asynchronous record still Queued, older
// than lostAfter, whose event the queue no longer holds: the record and
// the queue entry are separate streams synced at different moments, so a
// power cut can keep the one and drop the other, and nothing would ever
// send the event or settle the record. The payload is only in the lost
// entry, so it cannot be queued again. The change is revision-checked: a
// forwarder that recorded the outcome meanwhile wins. It returns how many
// records it failed.
func (o *Outbox) repairLost(ctx context.Context) (int, error) {
	w, err := o.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("outbox: look for lost events: %w", err)
	}
	type candidate struct {
		hash string
		rev  uint64
		rec  stored
	}
	var found []candidate
	cutoff := o.now().Add(-lostAfter)
scan:
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return 0, fmt.Errorf("outbox: look for lost events: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				_ = w.Stop()
				return 0, errors.New("outbox: look for lost events: watcher stopped")
			}
			if e == nil {
				break scan
			}
			var rec stored
			if json.Unmarshal(e.Value(), &rec) != nil || !rec.Async || rec.State != Queued || rec.CreatedAt.After(cutoff) {
				continue
			}
			found = append(found, candidate{e.Key(), e.Revision(), rec})
		}
	}
	_ = w.Stop()
	failed := 0
	for _, c := range found {
		_, err := o.stream.GetLastMsgForSubject(ctx, o.queuePrefix+c.hash)
		if err == nil {
			continue // still queued: the forwarder has it
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return failed, fmt.Errorf("outbox: look up queued event: %w", err)
		}
		rec := c.rec
		rec.State, rec.Error, rec.UpdatedAt, rec.LeaseUntil = Failed, errLost, o.now(), time.Time{}
		if _, err := o.update(ctx, c.hash, rec, c.rev, o.window); err != nil {
			if errors.Is(err, errRevision) {
				continue // changed meanwhile: its new state stands
			}
			return failed, fmt.Errorf("outbox: fail lost event: %w", err)
		}
		failed++
		o.log.Error("queued event lost from the outbox queue; marked failed", "key_hash", c.hash, "type", rec.Type, "created_at", rec.CreatedAt)
		o.outcome(Failed)
	}
	return failed, nil
}

// repairLoop runs repairLost at once and then every repairInterval until
// ctx ends.
func (o *Outbox) repairLoop(ctx context.Context) {
	t := time.NewTicker(repairInterval)
	defer t.Stop()
	for {
		if _, err := o.repairLost(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("look for lost queued events", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
