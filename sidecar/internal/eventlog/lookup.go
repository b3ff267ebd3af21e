package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrEventNotFound means no event with the id is in the log: never
// received, or past the retention window.
var ErrEventNotFound = errors.New("event not found in the log")

// Delivery states of GetEvent, from the log's records of each subscription.
const (
	DeliveryPending       = "pending"        // not yet offered
	DeliveryDelivered     = "delivered"      // offered, not known to be acknowledged
	DeliveryAcked         = "acked"          // acknowledged
	DeliveryDeadLettered  = "dead_lettered"  // in the subscription's dead letters
	DeliveryNotSubscribed = "not_subscribed" // the filter excludes it, or the subscription started after it
)

// deadLetterLookLimit bounds the dead letters of one type and subscription
// GetEvent reads to tell whether an event is among them.
const deadLetterLookLimit = 10000

// Delivery is an event's state on one subscription.
type Delivery struct {
	Subscription string
	// State is one of the Delivery constants.
	State string
	// Attempts is how many times it was offered, when known: held by a
	// stream of this process, or dead-lettered. Zero means unknown.
	Attempts int
	// DeadReason and DeadAt describe a dead letter.
	DeadReason string
	DeadAt     time.Time
}

// GetEvent returns the newest stored event with the id and its state on
// every subscription, by subscription name. What the log can tell: an event
// at or below a subscription's ack floor is acknowledged; one above what it
// has delivered is pending; in between it is delivered, and acknowledged or
// not (the log keeps no per-event ack record above the floor) unless a
// stream of this process holds it. It does not follow replayed copies.
//
// seq, when not zero, is where the event is expected (Event.Sequence, as a
// previous GetEvent returned it): the event is read there in one request,
// and searched for only when that position holds another event.
func (l *Log) GetEvent(ctx context.Context, id string, seq uint64) (Event, []Delivery, error) {
	if id == "" {
		return Event{}, nil, fmt.Errorf("%w: empty event id", ErrInvalid)
	}
	var raw *jetstream.RawStreamMsg
	if seq > 0 {
		m, err := l.events.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return Event{}, nil, fmt.Errorf("get event %s: %w", id, err)
		case strings.HasPrefix(m.Subject, eventsPrefix) && strings.EqualFold(m.Header.Get(hdrEventID), id):
			raw = m
		}
	}
	if raw == nil {
		var err error
		if raw, err = l.findNewest(ctx, id); err != nil {
			return Event{}, nil, err
		}
	}
	if raw == nil {
		return Event{}, nil, fmt.Errorf("%w: %s", ErrEventNotFound, id)
	}
	e := decode(raw.Header, raw.Subject, raw.Data, raw.Sequence)
	var out []Delivery
	lister := l.events.ListConsumers(ctx)
	for ci := range lister.Info() {
		d, err := l.deliveryOf(ctx, ci, e)
		if err != nil {
			return Event{}, nil, err
		}
		out = append(out, d)
	}
	if err := lister.Err(); err != nil {
		return Event{}, nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return e, out, nil
}

// findNewest returns the newest stored event with the id (not a replayed
// copy), or nil, reading the log from its newest event backwards.
func (l *Log) findNewest(ctx context.Context, id string) (*jetstream.RawStreamMsg, error) {
	info, err := l.events.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("get event %s: %w", id, err)
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := l.events.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get event %s: %w", id, err)
		}
		if strings.HasPrefix(m.Subject, eventsPrefix) && strings.EqualFold(m.Header.Get(hdrEventID), id) {
			return m, nil
		}
	}
	return nil, nil
}

func (l *Log) deliveryOf(ctx context.Context, ci *jetstream.ConsumerInfo, e Event) (Delivery, error) {
	d := Delivery{Subscription: ci.Name}
	dead, err := l.findDeadLetter(ctx, ci.Name, e)
	if err != nil {
		return d, err
	}
	l.mu.Lock()
	var held *delivery
	if st := l.subs[ci.Name]; st != nil {
		held = st.inflight[e.ID]
	}
	l.mu.Unlock()
	switch {
	case dead != nil:
		d.State, d.Attempts, d.DeadReason, d.DeadAt = DeliveryDeadLettered, dead.Event.Attempt, dead.Reason, dead.DeadAt
	case held != nil && held.seq == e.Sequence:
		d.State = DeliveryDelivered
		if meta, err := held.msg.Metadata(); err == nil {
			d.Attempts = int(meta.NumDelivered)
		}
	case !matchesAny(typesOf(ci.Config), e.Type):
		d.State = DeliveryNotSubscribed
	case e.Sequence <= ci.AckFloor.Stream:
		d.State = DeliveryAcked
		if startedAfter(ci.Config, ci.Created, e.ReceivedAt) {
			d.State = DeliveryNotSubscribed
		}
	case e.Sequence <= ci.Delivered.Stream:
		d.State = DeliveryDelivered
	default:
		d.State = DeliveryPending
	}
	return d, nil
}

// findDeadLetter returns the subscription's dead letter of e, or nil.
func (l *Log) findDeadLetter(ctx context.Context, sub string, e Event) (*DeadLetter, error) {
	filter := deadPrefix + sub + "." + e.Type
	seq := uint64(1)
	for range deadLetterLookLimit {
		raw, err := l.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dead letters of %s: %w", sub, err)
		}
		if raw.Header.Get(hdrEventID) == e.ID {
			d := decodeDead(raw)
			return &d, nil
		}
		seq = raw.Sequence + 1
	}
	return nil, nil
}

// startedAfter reports whether a subscription created at created with cfg
// started reading after an event received at received: the log moved its
// ack floor past the event without offering it.
func startedAfter(cfg jetstream.ConsumerConfig, created, received time.Time) bool {
	switch cfg.DeliverPolicy {
	case jetstream.DeliverNewPolicy:
		return created.After(received)
	case jetstream.DeliverByStartTimePolicy:
		return cfg.OptStartTime != nil && received.Before(*cfg.OptStartTime)
	}
	return false
}
