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

// Run forwards queued events until ctx is done, then returns nil. Up to
// Options.Concurrency events are sent at once. A transient failure is
// retried after a growing delay; an event ChronosHub rejects, or one not accepted within
// FailAfter of its Enqueue, is marked Failed. Events queued before a crash or restart are
// forwarded by the next Run on the same store. Several Runs, in this process or in other
// replicas on the same cluster, share the work. An event being sent when ctx ends still gets
// its answer recorded (at most a minute), so that shutting down does not cause a duplicate.
//
// Run returns an error when forwarding cannot go on by itself: the consumer is gone (deleted
// by an operator, or with its stream) and cannot be made again. The caller should report it
// and call Run again, which makes the consumer again; forwarding never stops silently.
func (o *Outbox) Run(ctx context.Context) error {
	cons, err := o.ensureConsumer(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Events being sent are finished before Run returns, however it returns.
	w := newWorkers(o.concurrency)
	defer w.wg.Wait()
	// Queued events the store lost (a power cut) are settled as Failed.
	rctx, stopRepair := context.WithCancel(ctx)
	repaired := make(chan struct{})
	go func() {
		defer close(repaired)
		o.repairLoop(rctx)
	}()
	defer func() {
		stopRepair()
		<-repaired
	}()
	// Fetching ends on errors a busy machine can cause (a missed heartbeat, a
	// leadership change): fetch again rather than stop forwarding.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := o.consume(ctx, cons, w)
		if ctx.Err() != nil {
			return nil
		}
		if lost := o.consumerLost(ctx, err); lost != nil {
			return lost
		}
		o.log.Warn("forwarding interrupted; resuming", "err", err, "after", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// consumerLost returns an error when the iterator ended (with err) because
// the consumer is gone, which resuming cannot mend; nil otherwise.
func (o *Outbox) consumerLost(ctx context.Context, err error) error {
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, cerr := o.stream.Consumer(cctx, o.consumer); errors.Is(cerr, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("outbox: consumer %s is gone: %w (after %v)", o.consumer, cerr, err)
	}
	return nil
}

// consume forwards messages until fetching fails or ctx ends. Each pull asks for exactly as
// many messages as there are free workers, so that no message waits unattended for a worker
// (and for its ack deadline) while others are sent: every message received is handed to a
// worker at once, which keeps its ack deadline alive (see keepAlive).
//
// Pull requests expire after pullExpiry: a pull request held by a consumer leader that died
// (a node killed) ends after pullExpiry, and the next one goes to the new leader. With
// JetStream's default (30s) forwarding stalled for 30s after a node was lost.
//
// With one worker, events are sent one at a time in the queue's order (a retried event
// comes back after its delay, behind later ones); with more, up to that many are in flight.
func (o *Outbox) consume(ctx context.Context, cons jetstream.Consumer, w *workers) error {
	o.log.Info("forwarding queued events", "concurrency", cap(w.slots))
	for {
		n, err := w.reserve(ctx)
		if err != nil {
			return nil // ctx ended; Run tells.
		}
		fctx, cancel := context.WithTimeout(ctx, pullExpiry)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			w.release(n)
			return fmt.Errorf("outbox: fetch queued events: %w", err)
		}
		for msg := range batch.Messages() {
			n--
			// Messages arrive in the queue's order; with OrderByType each waits for the one
			// dispatched before it with the same type.
			prev, done := w.chain(o.orderKey(msg))
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				defer w.release(1)
				stop := o.keepAlive(msg)
				defer stop()
				defer done()
				if prev != nil {
					<-prev
					if ctx.Err() != nil {
						// Shutting down: finish what was being sent, not a chain of
						// waiting events; another Run takes this one now.
						msg.Nak()
						return
					}
				}
				o.forward(ctx, msg)
			}()
		}
		cancel()
		w.release(n)
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("outbox: next queued events: %w", err)
		}
	}
}

// workers bounds how many queued events are forwarded at once.
type workers struct {
	slots chan struct{} // one token per busy worker or reserved pull slot
	wg    sync.WaitGroup

	mu   sync.Mutex
	last map[string]chan struct{} // per order key, closed when its latest event is done
}

func newWorkers(n int) *workers {
	return &workers{slots: make(chan struct{}, n), last: map[string]chan struct{}{}}
}

// chain registers an event with order key k (none when empty): it returns the channel
// closed when the previous event with k is done (nil if none is in flight), and the
// function to call when this one is done.
func (w *workers) chain(k string) (prev <-chan struct{}, done func()) {
	if k == "" {
		return nil, func() {}
	}
	ch := make(chan struct{})
	w.mu.Lock()
	prev = w.last[k]
	w.last[k] = ch
	w.mu.Unlock()
	return prev, func() {
		w.mu.Lock()
		if w.last[k] == ch {
			delete(w.last, k)
		}
		w.mu.Unlock()
		close(ch)
	}
}

// orderKey is what msg's event must keep its order within: its type with OrderByType,
// otherwise nothing.
func (o *Outbox) orderKey(msg jetstream.Msg) string {
	if !o.orderByType {
		return ""
	}
	var q struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(msg.Data(), &q) != nil {
		return "" // forward drops it
	}
	return "type:" + q.Type
}

// reserve waits for at least one free worker and reserves every free one; it returns how
// many, or ctx's error.
func (w *workers) reserve(ctx context.Context) (int, error) {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n := 1
	for ; n < cap(w.slots); n++ {
		select {
		case w.slots <- struct{}{}:
		default:
			return n, nil
		}
	}
	return n, nil
}

func (w *workers) release(n int) {
	for range n {
		<-w.slots
	}
}

// forward handles one queued event; the message is acked once the event has an outcome,
// or nakked with a delay. The caller keeps its ack deadline alive (keepAlive).
func (o *Outbox) forward(ctx context.Context, msg jetstream.Msg) {
	// The work on a message is finished even when ctx ends: see Run.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout+storeTimeout)
	defer cancel()

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

	rec, rev, err := bounded(wctx, func(ctx context.Context) (stored, uint64, error) { return o.load(ctx, hash) })
	if errors.Is(err, ErrNotFound) {
		// The queue is the truth for an event it holds; bring back a lost record.
		rec = stored{Key: q.Key, Type: q.Type, PayloadHash: q.PayloadHash, State: Queued, Async: true, CreatedAt: q.CreatedAt, UpdatedAt: o.now()}
		_, rev, err = bounded(wctx, func(ctx context.Context) (struct{}, uint64, error) {
			rev, err := o.create(ctx, hash, rec, 0)
			return struct{}{}, rev, err
		})
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
	if now := o.now(); rec.LeaseUntil.After(now) {
		// Another worker holds the lease and is posting it now (its message came back
		// because that worker's process stalled past the ack deadline): come back when the
		// lease ends rather than post it a second time.
		msg.NakWithDelay(rec.LeaseUntil.Sub(now) + time.Second)
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
	// Mark the attempt before sending, with a lease: a second worker holding a redelivery of
	// this message loses the compare-and-set if it raced this one, and later sees the lease,
	// so it does not post while this send runs. The message comes back one ack deadline
	// after this worker stopped extending it (its process stalled or died); the lease, twice
	// that, makes the redelivery wait one more ack deadline for a stalled worker to finish,
	// while a dead one's event is posted again at most 2 ack deadlines (30 s) after its
	// claim. A post still running after that (ChronosHub slow, and this process stalled)
	// can be posted twice: at least once, as for any answer lost.
	rec.UpdatedAt = o.now()
	rec.LeaseUntil = rec.UpdatedAt.Add(o.lease)
	if rev, err = o.boundedUpdate(wctx, hash, rec, rev, 0); err != nil {
		log.Warn("claim queued event", "err", err)
		msg.NakWithDelay(o.delay(delivered))
		return
	}

	sctx, scancel := context.WithTimeout(o.tracer.ContextWithTraceContext(wctx, q.TraceParent, q.TraceState), sendTimeout)
	res, err := o.sender.SendEvent(sctx, q.Type, q.Payload)
	scancel()
	rec.LeaseUntil = time.Time{}
	o.applyResult(&rec, res, err)
	if rec.State == Queued && o.now().Sub(rec.CreatedAt) >= o.failAfter {
		rec.Expired, rec.State = true, Failed
	}
	if rec.State != Queued {
		o.settle(wctx, msg, hash, rec, rev, log)
		return
	}
	log.Warn("queued event not forwarded; will retry", "attempts", rec.Attempts, "err", err)
	if _, err := o.boundedUpdate(wctx, hash, rec, rev, 0); err != nil {
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
	if _, err := o.boundedUpdate(ctx, hash, rec, rev, o.window); err != nil {
		log.Error("record outcome of queued event; it will be sent again", "state", rec.State, "err", err)
		return
	}
	actx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
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

// opTimeout bounds each JetStream operation of the forwarder, as JetStream's own default
// request timeout does: a request lost to a leader election or a reconnection must not hold
// the queue for the whole of sendTimeout. A timed-out operation is retried with the message.
const opTimeout = 5 * time.Second

// pullExpiry is how long a pull request for queued events lives; see consume.
const pullExpiry = 5 * time.Second

// bounded runs one store operation under opTimeout.
func bounded[T any](ctx context.Context, op func(context.Context) (T, uint64, error)) (T, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return op(ctx)
}

// boundedUpdate is update under opTimeout.
func (o *Outbox) boundedUpdate(ctx context.Context, hash string, rec stored, rev uint64, ttl time.Duration) (uint64, error) {
	_, rev, err := bounded(ctx, func(ctx context.Context) (struct{}, uint64, error) {
		rev, err := o.update(ctx, hash, rec, rev, ttl)
		return struct{}{}, rev, err
	})
	return rev, err
}
