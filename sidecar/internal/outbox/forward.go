package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Run forwards queued events until ctx is done, then returns nil. A transient failure is
// retried after a growing delay; an event ChronosHub rejects, or one not accepted within
// FailAfter of its Enqueue, is marked Failed. Events queued before a crash or restart are
// forwarded by the next Run on the same store. Several Runs, in this process or in other
// replicas on the same cluster, share the work. An event being sent when ctx ends still gets
// its answer recorded (at most a minute), so that shutting down does not cause a duplicate.
func (o *Outbox) Run(ctx context.Context) error {
	cons, err := o.stream.Consumer(ctx, ConsumerName)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("outbox: consumer %s: %w", ConsumerName, err)
	}
	// The message iterator ends on errors a busy machine can cause (a missed
	// heartbeat, a leadership change): start a new one rather than stop forwarding.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := o.consume(ctx, cons)
		if ctx.Err() != nil {
			return nil
		}
		o.log.Warn("forwarding interrupted; resuming", "err", err, "after", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// consume forwards messages from one iterator until it fails or ctx ends.
func (o *Outbox) consume(ctx context.Context, cons jetstream.Consumer) error {
	// One message at a time: a buffered message waits while another is sent, and must not
	// reach its ack deadline meanwhile.
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("outbox: consume: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	o.log.Info("forwarding queued events")
	for {
		msg, err := it.Next()
		if err != nil {
			return fmt.Errorf("outbox: next queued event: %w", err)
		}
		o.forward(ctx, msg)
	}
}

// forward handles one queued event; the message is acked once the event has an outcome,
// or nakked with a delay.
func (o *Outbox) forward(ctx context.Context, msg jetstream.Msg) {
	// The work on a message is finished even when ctx ends: see Run.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout+storeTimeout)
	defer cancel()

	defer o.keepAlive(msg)()

	var q queued
	if err := json.Unmarshal(msg.Data(), &q); err != nil {
		o.log.Error("drop undecodable queued event", "subject", msg.Subject(), "err", err)
		msg.Term()
		return
	}
	hash := keyHash(q.Key)
	log := o.log.With("key_hash", hash, "event_type", q.Type)
	delivered := uint64(1)
	if meta, err := msg.Metadata(); err == nil {
		delivered = meta.NumDelivered
	}

	rec, rev, err := o.load(wctx, hash)
	if errors.Is(err, ErrNotFound) {
		// The queue is the truth for an event it holds; bring back a lost record.
		rec = stored{Key: q.Key, Type: q.Type, PayloadHash: q.PayloadHash, State: Queued, Async: true, CreatedAt: q.CreatedAt, UpdatedAt: o.now()}
		rev, err = o.create(wctx, hash, rec, 0)
	}
	if err != nil {
		log.Warn("read record of queued event", "err", err)
		msg.NakWithDelay(o.delay(delivered))
		return
	}
	if rec.PayloadHash != q.PayloadHash || !rec.Async || rec.State != Queued {
		// Already settled (the ack after the outcome was lost), or the key now belongs to
		// another event: nothing to send.
		msg.Ack()
		return
	}
	if o.now().Sub(rec.CreatedAt) >= o.failAfter {
		rec.Expired, rec.State, rec.UpdatedAt = true, Failed, o.now()
		if rec.Error == "" {
			rec.Error = "not accepted within " + o.failAfter.String()
		}
		o.settle(wctx, msg, hash, rec, rev, log)
		return
	}
	// Mark the attempt before sending: a second worker holding a redelivery of this message
	// loses the compare-and-set and does not post.
	rec.UpdatedAt = o.now()
	if rev, err = o.update(wctx, hash, rec, rev, 0); err != nil {
		log.Warn("claim queued event", "err", err)
		msg.NakWithDelay(o.delay(delivered))
		return
	}

	sctx, scancel := context.WithTimeout(o.tracer.ContextWithTraceContext(wctx, q.TraceParent, q.TraceState), sendTimeout)
	res, err := o.sender.SendEvent(sctx, q.Type, q.Payload)
	scancel()
	o.applyResult(&rec, res, err)
	if rec.State == Queued && o.now().Sub(rec.CreatedAt) >= o.failAfter {
		rec.Expired, rec.State = true, Failed
	}
	if rec.State != Queued {
		o.settle(wctx, msg, hash, rec, rev, log)
		return
	}
	log.Warn("queued event not forwarded; will retry", "attempts", rec.Attempts, "err", err)
	if _, err := o.update(wctx, hash, rec, rev, 0); err != nil {
		log.Warn("record attempt", "err", err)
	}
	msg.NakWithDelay(o.delay(delivered))
}

// keepAlive extends msg's ack deadline every third of it until the returned
// function is called, so that a message being worked on is not redelivered,
// while one held by a killed sidecar comes back within ackWait.
func (o *Outbox) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(o.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress() // if it fails, the worst is a redelivery, which the record's CAS makes harmless
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// settle records the outcome of a queued event, then acks its message. If the record cannot
// be written the message is left to redeliver after its ack deadline.
func (o *Outbox) settle(ctx context.Context, msg jetstream.Msg, hash string, rec stored, rev uint64, log *slog.Logger) {
	if _, err := o.update(ctx, hash, rec, rev, o.window); err != nil {
		log.Error("record outcome of queued event; it will be sent again", "state", rec.State, "err", err)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// The record is settled, so a redelivery is acked without sending.
		log.Info("ack queued event", "err", err)
	}
	if rec.State == Failed {
		log.Error("queued event failed", "attempts", rec.Attempts, "err", rec.Error)
	}
	o.outcome(rec.State)
}

// delay is how long to wait before the delivery after the n-th: exponential from
// RetryDelay to MaxRetryDelay, with the upper half jittered.
func (o *Outbox) delay(n uint64) time.Duration {
	d := o.retryDelay
	for i := uint64(1); i < n && d < o.maxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, o.maxRetryDelay)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
