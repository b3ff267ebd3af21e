package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter is an event that exhausted its attempts on a subscription.
type DeadLetter struct {
	Event  Event
	DeadAt time.Time
	// Reason is why it left the subscription: ReasonMaxAttempts or
	// ReasonFilterNarrowed.
	Reason string
	// seq is its position in the dead-letter stream.
	seq uint64
}

// deadLetter copies e to the subscription's dead-letter set, with the
// number of times it was offered. The copy is de-duplicated by subscription
// and stream sequence, so a retry after a crash does not store it twice;
// duplicate reports such a retry.
func (l *Log) deadLetter(ctx context.Context, sub string, e Event, seq uint64, reason string, offers int) (duplicate bool, err error) {
	msg := nats.NewMsg(deadPrefix + sub + "." + e.Type)
	msg.Data = e.Payload
	msg.Header.Set(jetstream.MsgIDHeader, "dead:"+sub+":"+strconv.FormatUint(seq, 10))
	setEventHeaders(msg.Header, e)
	msg.Header.Set(hdrSequence, strconv.FormatUint(e.Sequence, 10))
	msg.Header.Set(hdrAttempts, strconv.Itoa(offers))
	msg.Header.Set(hdrReason, reason)
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
	d := DeadLetter{Event: e, seq: raw.Sequence, Reason: raw.Header.Get(hdrReason)}
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
func (l *Log) ReplayDeadLetters(ctx context.Context, subscription string, ids []string, all bool) (replayed, unknown []string, err error) {
	name, err := NormalizeSubscription(subscription)
	if err != nil {
		return nil, nil, err
	}
	if all == (len(ids) > 0) {
		return nil, nil, fmt.Errorf("%w: name event ids or set all, not both or neither", ErrInvalid)
	}
	if _, err := l.consumer(ctx, name); err != nil {
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	found := map[string]bool{}
	var from uint64
	for {
		page, next, err := l.ListDeadLetters(ctx, name, from, 256)
		if err != nil {
			return replayed, nil, err
		}
		for _, d := range page {
			if !all && !want[d.Event.ID] {
				continue
			}
			if err := l.replay(ctx, name, d); err != nil {
				return replayed, nil, err
			}
			if !found[d.Event.ID] {
				replayed = append(replayed, d.Event.ID)
			}
			found[d.Event.ID] = true
		}
		if next == 0 {
			break
		}
		from = next
	}
	for _, id := range ids {
		if !found[id] {
			unknown = append(unknown, id)
		}
	}
	return replayed, unknown, nil
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
	if err := l.dead.DeleteMsg(ctx, d.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove replayed dead letter %s: %w", d.Event.ID, err)
	}
	return nil
}
