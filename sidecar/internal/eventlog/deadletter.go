package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is an event that exhausted its attempts on a subscription.
type DeadLetter struct {
	Event  Event
	DeadAt time.Time
	// Reason is why it left the subscription: ReasonMaxAttempts,
	// ReasonFilterNarrowed or ReasonRefused.
	Reason string
	// Detail is what the app last answered, for push subscriptions (as in
	// "HTTP 500" or "timeout"); "" when nothing was recorded.
	Detail string
	// seq is its position in the dead-letter stream.
	seq uint64
}

// deadLetter copies e to the subscription's dead-letter set, with the
// number of times it was offered. The copy is de-duplicated by subscription
// and stream sequence, so a retry after a crash does not store it twice;
// duplicate reports such a retry.
func (l *Log) deadLetter(ctx context.Context, sub string, e Event, seq uint64, reason string, offers int) (duplicate bool, err error) {
	return l.deadLetterDetail(ctx, sub, e, seq, reason, offers, "")
}

// deadLetterDetail is deadLetter with a detail; "" records none.
func (l *Log) deadLetterDetail(ctx context.Context, sub string, e Event, seq uint64, reason string, offers int, detail string) (duplicate bool, err error) {
	msg := nats.NewMsg(deadPrefix + sub + "." + e.Type)
	msg.Data = e.Payload
	msg.Header.Set(jetstream.MsgIDHeader, "dead:"+sub+":"+strconv.FormatUint(seq, 10))
	setEventHeaders(msg.Header, e)
	msg.Header.Set(hdrSequence, strconv.FormatUint(e.Sequence, 10))
	msg.Header.Set(hdrAttempts, strconv.Itoa(offers))
	msg.Header.Set(hdrReason, reason)
	if detail != "" {
		msg.Header.Set(hdrDetail, detail)
	}
	msg.Header.Set(hdrDeadAt, l.opts.Now().UTC().Format(time.RFC3339Nano))
	ack, err := l.js.PublishMsg(ctx, msg)
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

func setEventHeaders(h nats.Header, e Event) {
	h.Set(hdrEventID, e.ID)
	h.Set(hdrEventType, e.Type)
	h.Set(hdrSignedAt, strconv.FormatInt(e.SignedAt.Unix(), 10))
	h.Set(hdrReceivedAt, e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	if e.TraceParent != "" {
		h.Set(hdrTraceParent, e.TraceParent)
	}
	if e.TraceState != "" {
		h.Set(hdrTraceState, e.TraceState)
	}
}

// ListDeadLetters returns up to limit dead letters of a subscription whose
// position in the dead-letter set is at least from, oldest first, and the
// position to continue from (0 when there are no more). A page ends early
// when its payloads would pass Options.DeadLetterPageBytes, so that one
// page of large events does not make one message too large to receive. It returns
// ErrNotFound for a subscription that does not exist.
func (l *Log) ListDeadLetters(ctx context.Context, subscription string, from uint64, limit int) ([]DeadLetter, uint64, error) {
	name, err := NormalizeSubscription(subscription)
	if err != nil {
		return nil, 0, err
	}
	if _, err := l.consumer(ctx, name); err != nil {
		return nil, 0, err
	}
	if from == 0 {
		from = 1
	}
	filter := deadPrefix + name + ".>"
	var out []DeadLetter
	var size int
	seq := from
	for len(out) < limit {
		raw, err := l.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("list dead letters of %s: %w", name, err)
		}
		if len(out) > 0 && size+len(raw.Data) > l.opts.DeadLetterPageBytes {
			return out, raw.Sequence, nil
		}
		out = append(out, decodeDead(raw))
		size += len(raw.Data)
		seq = raw.Sequence + 1
	}
	// Is there anything after this page?
	if _, err := l.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter)); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		return nil, 0, fmt.Errorf("list dead letters of %s: %w", name, err)
	}
	return out, seq, nil
}

func decodeDead(raw *jetstream.RawStreamMsg) DeadLetter {
	e := decode(raw.Header, raw.Subject, raw.Data, 0)
	e.Attempt, _ = strconv.Atoi(raw.Header.Get(hdrAttempts))
	d := DeadLetter{Event: e, seq: raw.Sequence, Reason: raw.Header.Get(hdrReason), Detail: raw.Header.Get(hdrDetail)}
	if d.Reason == "" {
		d.Reason = ReasonMaxAttempts // written before reasons were recorded
	}
	d.DeadAt, _ = time.Parse(time.RFC3339Nano, raw.Header.Get(hdrDeadAt))
	return d
}

// ReplayDeadLetters offers dead letters to their subscription again with a
// fresh attempt counter and removes them from the dead-letter set. With all,
// ids must be empty and every dead letter is replayed. It returns the ids
// replayed and those not found. It returns ErrNotFound for a subscription
// that does not exist.
//
// A dead letter whose event type the subscription's filter excludes (one
// narrowed out, with ReasonFilterNarrowed, or any other after a narrowing)
// could not be delivered: naming one in ids refuses the whole call with
// ErrFilterMismatch, changing nothing, and all leaves them in the dead-letter
// set. Once the filter is widened to their type, they replay.
func (l *Log) ReplayDeadLetters(ctx context.Context, subscription string, ids []string, all bool) (replayed, unknown []string, err error) {
	name, err := NormalizeSubscription(subscription)
	if err != nil {
		return nil, nil, err
	}
	if all == (len(ids) > 0) {
		return nil, nil, fmt.Errorf("%w: name event ids or set all, not both or neither", ErrInvalid)
	}
	cons, err := l.consumer(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	types := typesOf(cons.CachedInfo().Config)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	if !all {
		// Refuse before replaying anything.
		var excluded []string
		err := l.eachDeadLetter(ctx, name, func(d DeadLetter) error {
			if want[d.Event.ID] && !matchesAny(types, d.Event.Type) {
				excluded = append(excluded, d.Event.ID+" ("+d.Event.Type+")")
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if len(excluded) > 0 {
			return nil, nil, excludedError(name, types, excluded)
		}
	}
	found := map[string]bool{}
	kept := 0
	err = l.eachDeadLetter(ctx, name, func(d DeadLetter) error {
		if !all && !want[d.Event.ID] {
			return nil
		}
		if !matchesAny(types, d.Event.Type) {
			kept++
			return nil
		}
		if err := l.replay(ctx, name, d); err != nil {
			return err
		}
		if !found[d.Event.ID] {
			replayed = append(replayed, d.Event.ID)
		}
		found[d.Event.ID] = true
		return nil
	})
	if err != nil {
		return replayed, nil, err
	}
	if kept > 0 {
		l.opts.Logger.Info("dead letters kept: the subscription's filter excludes their types", "subscription", name, "dead_letters", kept, "event_types", types)
	}
	for _, id := range ids {
		if !found[id] {
			unknown = append(unknown, id)
		}
	}
	return replayed, unknown, nil
}

// eachDeadLetter calls f with every dead letter of the subscription, oldest
// first, page by page.
func (l *Log) eachDeadLetter(ctx context.Context, name string, f func(DeadLetter) error) error {
	var from uint64
	for {
		page, next, err := l.ListDeadLetters(ctx, name, from, 256)
		if err != nil {
			return err
		}
		for _, d := range page {
			if err := f(d); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		from = next
	}
}

func excludedError(name string, types, excluded []string) error {
	return fmt.Errorf("%w: subscription %s receives %s: dead letters %s would not be delivered; "+
		"widen the filter (UpdateSubscription) before replaying them",
		ErrFilterMismatch, name, strings.Join(types, ", "), strings.Join(excluded, ", "))
}

// replay republishes one dead letter on the subscription's replay subject,
// then deletes it from the dead-letter set. The republish is de-duplicated
// by the dead letter's position, so a crash in between replays it once.
func (l *Log) replay(ctx context.Context, sub string, d DeadLetter) error {
	msg := nats.NewMsg(replayPrefix + sub + "." + d.Event.Type)
	msg.Data = d.Event.Payload
	msg.Header.Set(jetstream.MsgIDHeader, "replay:"+sub+":"+strconv.FormatUint(d.seq, 10))
	setEventHeaders(msg.Header, d.Event)
	msg.Header.Set(hdrSequence, strconv.FormatUint(d.Event.Sequence, 10))
	if _, err := l.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("replay event %s: %w", d.Event.ID, err)
	}
	// A narrowing since the caller read the filter would leave the replayed
	// copy undelivered: then the dead letter stays.
	cons, err := l.consumer(ctx, sub)
	if err != nil {
		return err
	}
	if types := typesOf(cons.CachedInfo().Config); !matchesAny(types, d.Event.Type) {
		return excludedError(sub, types, []string{d.Event.ID + " (" + d.Event.Type + ")"})
	}
	if err := l.dead.DeleteMsg(ctx, d.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove replayed dead letter %s: %w", d.Event.ID, err)
	}
	return nil
}
