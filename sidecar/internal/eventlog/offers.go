package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The offer record of an event on a subscription counts its offers to the
// app, not JetStream's deliveries: a delivery that never reached the log (a
// pull answered while the connection dropped, a fetch in flight during a
// partition) or that the log gave back unoffered is no attempt.
//
// The record is the set of JetStream delivery numbers (NumDelivered) that
// were offered, kept in the OffersBucket under "<subscription>.<sequence>"
// and changed with a revision check, so replicas sharing the subscription
// count together and a delivery is counted once however often it is marked.
// A redelivery is marked before it is offered. A first delivery costs no
// store write on its way: it is marked only when it does not end in an ack
// soon — when it is rejected, when its stream ends holding it, when it is
// still held after markAfter (half the ack deadline, at most a second:
// before JetStream offers it again), and when it is found past its
// deadline. Events acknowledged promptly, the common case, never touch the
// bucket.
//
// Bound: when the process holding a first delivery cannot record its offer
// before JetStream offers the event again — it is killed within markAfter
// of the offer, cut off from the store, or paused, for longer than the ack
// deadline — that offer is not counted, and the event can be offered once
// more than MaxAttempts (a mark written late, after a partition or a
// pause, counts for the offers after it). A crash between marking a
// redelivery and handing it to the app counts an offer that was not made,
// so it can be offered once less. Each such fault shifts one event's count
// by at most one.

// OffersBucket is the key-value bucket of offer records. It is part of the
// on-disk format. (Versions before it kept CHRONOSHUB_UNOFFERED, counts of
// fetches given back, which is no longer read.)
const OffersBucket = "CHRONOSHUB_OFFERS"

func offersKey(sub string, seq uint64) string { return sub + "." + strconv.FormatUint(seq, 10) }

// parseOffers decodes a record: delivery numbers separated by commas. What
// does not parse is ignored, so a damaged record counts fewer offers rather
// than stopping delivery.
func parseOffers(v []byte) []int {
	var out []int
	for f := range strings.SplitSeq(string(v), ",") {
		if n, err := strconv.Atoi(f); err == nil && n > 0 && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func formatOffers(s []int) []byte {
	s = slices.Clone(s)
	slices.Sort(s)
	b := make([]byte, 0, 4*len(s))
	for i, n := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return b
}

// offers reads the delivery numbers offered so far and the record's
// revision (0 when there is none).
func (l *Log) offers(ctx context.Context, sub string, seq uint64) ([]int, uint64, error) {
	e, err := l.offerRecs.Get(ctx, offersKey(sub, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return parseOffers(e.Value()), e.Revision(), nil
}

// changeOffers applies change to the event's record with a revision check,
// retrying when another writer got there first, and returns the record as
// written. change returns false to leave the record as it is.
//
// While the bucket has no leader (an election on a cluster, a node
// restarting), it asks again until ctx ends, so that a stream does not end
// for an election. Asking again is safe: a write that was applied but not
// answered fails the next revision check, and change sees it in the record
// read again.
func (l *Log) changeOffers(ctx context.Context, sub string, seq uint64, change func([]int) ([]int, bool)) ([]int, error) {
	key := offersKey(sub, seq)
	for conflicts := 0; conflicts < 20; {
		cur, rev, err := l.offers(ctx, sub, seq)
		if err == nil {
			next, ok := change(cur)
			if !ok {
				return cur, nil
			}
			if rev == 0 {
				_, err = l.offerRecs.Create(ctx, key, formatOffers(next))
			} else {
				_, err = l.offerRecs.Update(ctx, key, formatOffers(next), rev)
			}
			if err == nil {
				return next, nil
			}
		}
		switch {
		case isRevisionConflict(err):
			conflicts++
		case leaderless(err):
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(100 * time.Millisecond):
			}
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("record offer of %s: too many concurrent updates", key)
}

// isRevisionConflict reports whether err says another writer changed the
// record first. A replicated bucket answers a failed revision check with
// JetStream's error 10164 rather than 10071, which nats.go does not always
// map to ErrKeyExists.
func isRevisionConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// markOffer adds delivery number n to the event's offers.
func (l *Log) markOffer(ctx context.Context, sub string, seq uint64, n int) error {
	_, err := l.changeOffers(ctx, sub, seq, func(s []int) ([]int, bool) {
		if slices.Contains(s, n) {
			return s, false
		}
		return append(slices.Clone(s), n), true
	})
	if err != nil {
		return fmt.Errorf("record offer of event %d on %s: %w", seq, sub, err)
	}
	return nil
}

// offerOnce records delivery number n as an offer unless the event was
// offered max times already (by other deliveries), and returns the offers
// made before n. The decision is made on the record as written, with a
// revision check: a stale read (a lagging replica answering a direct get)
// cannot let an offer beyond max through.
func (l *Log) offerOnce(ctx context.Context, sub string, seq uint64, n, max int) (before int, err error) {
	_, err = l.changeOffers(ctx, sub, seq, func(s []int) ([]int, bool) {
		others := slices.DeleteFunc(slices.Clone(s), func(d int) bool { return d == n })
		before = len(others)
		if before >= max || len(others) < len(s) {
			return s, false // out of attempts, or already marked
		}
		return append(slices.Clone(s), n), true
	})
	if err != nil {
		return 0, fmt.Errorf("record offer of event %d on %s: %w", seq, sub, err)
	}
	return before, nil
}

// offersBefore returns how many deliveries other than n were offered.
func (l *Log) offersBefore(ctx context.Context, sub string, seq uint64, n int) (int, error) {
	s, _, err := l.offers(ctx, sub, seq)
	if err != nil {
		return 0, err
	}
	return len(slices.DeleteFunc(s, func(d int) bool { return d == n })), nil
}

// unmarkOffer removes delivery number n from the event's offers: it was
// given back without reaching the app.
func (l *Log) unmarkOffer(ctx context.Context, sub string, seq uint64, n int) error {
	_, err := l.changeOffers(ctx, sub, seq, func(s []int) ([]int, bool) {
		i := slices.Index(s, n)
		if i < 0 {
			return s, false
		}
		return slices.Delete(slices.Clone(s), i, i+1), true
	})
	if err != nil {
		return fmt.Errorf("withdraw offer of event %d on %s: %w", seq, sub, err)
	}
	return nil
}

// forgetOffers drops an event's record once it left the subscription.
func (l *Log) forgetOffers(ctx context.Context, sub string, seq uint64) {
	if err := l.offerRecs.Purge(ctx, offersKey(sub, seq)); err != nil {
		l.opts.Logger.Warn("forget offer record", "subscription", sub, "err", err)
	}
}

// markAfter is how long a first delivery may be held unsettled before its
// offer is recorded: half the ack deadline, so that the record is written
// before JetStream offers the event again, and at most a second, so that a
// crash of the process holding it loses few marks. An app that holds its
// events longer (a slow one with many in flight) costs one store write per
// event; one that acknowledges within a second costs none.
func (l *Log) markAfter() time.Duration { return min(l.opts.AckWait/2, time.Second) }

// markHeld marks the first deliveries the stream holds that are not marked
// yet and were handed over at least markAfter ago, before JetStream offers
// them again.
func (l *Log) markHeld(h *streamHandle) {
	cutoff := time.Now().Add(-l.markAfter())
	var todo []*delivery
	l.mu.Lock()
	for _, d := range h.sub.inflight {
		if d.owner == h && !d.marked && !d.offeredAt.After(cutoff) {
			d.marked = true
			todo = append(todo, d)
		}
	}
	l.mu.Unlock()
	l.markAll(h.sub.name, todo)
}

// markAll marks the offers of deliveries taken out of the registry or
// flagged marked by the caller, all at once. A mark that fails (the store
// is out of reach) is tried again for up to markRetry: one written late
// still counts for the offers after it.
func (l *Log) markAll(sub string, ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), markRetry)
	defer cancel()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() { l.markRetrying(ctx, sub, d) })
	}
	wg.Wait()
}

func (l *Log) markRetrying(ctx context.Context, sub string, d *delivery) {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		tctx, tcancel := context.WithTimeout(ctx, storeTimeout)
		err := l.markOffer(tctx, sub, d.seq, d.delivered)
		tcancel()
		if err == nil {
			return
		}
		if l.nc.IsClosed() {
			// Nothing to wait for: a closed connection stays closed.
			l.opts.Logger.Warn("record offer", "subscription", sub, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			// The offer goes uncounted: the event may be offered once
			// more than MaxAttempts.
			l.opts.Logger.Warn("record offer", "subscription", sub, "err", err)
			return
		case <-time.After(wait):
		}
	}
}

// markRetry bounds how long markAll keeps trying to record offers: longer
// than the partitions and elections a cluster rides out.
const markRetry = 30 * time.Second

// markHeldLoop runs markHeld until ctx is done, often enough that a first
// delivery is marked well before its ack deadline passes.
func (l *Log) markHeldLoop(ctx context.Context, h *streamHandle) {
	t := time.NewTicker(max(l.markAfter()/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.markHeld(h)
		}
	}
}
