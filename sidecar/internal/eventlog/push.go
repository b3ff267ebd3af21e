package eventlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// What a consumer that settles events itself (push delivery) needs besides
// Stream and Settle: declared subscriptions, giving an event back without
// counting an attempt, and dead-lettering one at once with a reason.

// ErrUndeclared means a stream named a subscription that the configuration
// does not declare while only declared ones are allowed, or one that the
// sidecar delivers by push. It wraps ErrNotFound.
var ErrUndeclared = fmt.Errorf("%w: not declared for streaming", ErrNotFound)

// Dead-letter reasons of push delivery.
const (
	// ReasonRefused: the app answered a 4xx other than 429.
	ReasonRefused = "refused"
)

// Declaration is a subscription declared in the configuration.
type Declaration struct {
	// Name is the subscription's name.
	Name string
	// Types is its event-type filter; none means every type.
	Types []string
	// Push is true when the sidecar consumes it itself (push delivery):
	// streams on it are refused.
	Push bool
}

// Declare creates the declared subscriptions that do not exist, starting at
// the oldest retained event, and sets the declared filter on those that
// exist with another: a wider one widens the subscription (nothing is
// skipped), a narrower one moves the pending events it drops to the dead
// letters with ReasonFilterNarrowed, as UpdateSubscription does. With
// strict, streams may then only open declared subscriptions that are not
// push ones (ErrUndeclared); without, a stream may still create others, and
// only push subscriptions are refused. Declare replaces an earlier call's
// declarations. Each problem is reported, all at once.
func (l *Log) Declare(ctx context.Context, decls []Declaration, strict bool) error {
	declared := map[string]Declaration{}
	var errs []error
	for _, d := range decls {
		name, err := NormalizeSubscription(d.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("subscription %q: %w", d.Name, err))
			continue
		}
		types, err := l.checkTypes(d.Types)
		if err != nil {
			errs = append(errs, fmt.Errorf("subscription %s: %w", name, err))
			continue
		}
		if _, dup := declared[name]; dup {
			errs = append(errs, fmt.Errorf("%w: subscription %s is declared twice", ErrInvalid, name))
			continue
		}
		d.Name, d.Types = name, types
		declared[name] = d
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(declared)) {
		if err := l.declareOne(ctx, declared[name]); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	l.declared, l.strict = declared, strict
	l.mu.Unlock()
	return errors.Join(errs...)
}

func (l *Log) declareOne(ctx context.Context, d Declaration) error {
	// Creation, and the filter of an existing subscription, go through the
	// revision-checked record as a stream's do (see joinFilter): replicas
	// declaring at the same moment cannot undo each other. A filter the
	// stream rules do not take (narrower, or none while the subscription
	// has one) is then set exactly, as UpdateSubscription does.
	cons, created, err := l.joinFilterRounds(ctx, d.Name, d.Types, StreamRequest{})
	switch {
	case errors.Is(err, ErrFilterMismatch):
	case err != nil:
		return fmt.Errorf("declare subscription %s: %w", d.Name, err)
	case created:
		l.opts.Logger.Info("declared subscription created", "subscription", d.Name, "event_types", d.Types, "push", d.Push)
		return nil
	case slices.Equal(typesOf(cons.CachedInfo().Config), d.Types):
		return nil
	}
	_, moved, err := l.UpdateSubscription(ctx, d.Name, d.Types)
	if err != nil {
		return fmt.Errorf("declare subscription %s: %w", d.Name, err)
	}
	if moved > 0 {
		l.opts.Logger.Warn("declared filter is narrower than the subscription's: its pending events of the dropped types moved to its dead letters",
			"subscription", d.Name, "event_types", d.Types, "moved", moved, "reason", ReasonFilterNarrowed)
	}
	return nil
}

// checkStreamable refuses a stream on a push subscription, and on an
// undeclared one in strict mode.
func (l *Log) checkStreamable(name string) error {
	l.mu.Lock()
	d, ok := l.declared[name]
	strict := l.strict
	l.mu.Unlock()
	switch {
	case ok && d.Push:
		return fmt.Errorf("%w: subscription %s is delivered by push (it is declared with a url); stream another subscription", ErrUndeclared, name)
	case !ok && strict:
		return fmt.Errorf("%w: subscription %s is not declared, and only declared subscriptions may be streamed (CHRONOSHUB_STRICT_SUBSCRIPTIONS); declared: %s",
			ErrUndeclared, name, strings.Join(l.streamable(), ", "))
	}
	return nil
}

// streamable lists the declared subscriptions a stream may open.
func (l *Log) streamable() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for name, d := range l.declared {
		if !d.Push {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	slices.Sort(out)
	return out
}

// PushStream is Stream for the sidecar's own consumer of a push
// subscription: the same delivery, without the check that refuses streams
// on push subscriptions.
func (l *Log) PushStream(ctx context.Context, req StreamRequest, send func(Event) error) error {
	req.push = true
	return l.Stream(ctx, req, send)
}

// take removes a delivered, unsettled event from the subscription's
// registry, or returns nil when it is not there.
func (l *Log) take(sub, id string) *delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.subs[sub]
	if s == nil {
		return nil
	}
	d := s.inflight[id]
	if d != nil {
		delete(s.inflight, id)
	}
	return d
}

// release gives the delivery's stream its capacity back.
func (l *Log) release(d *delivery) {
	l.mu.Lock()
	d.owner.n--
	l.mu.Unlock()
	d.owner.signal()
}

// GiveBack returns a delivered, unsettled event to its subscription as if
// it had never been offered: it does not count as an attempt, and it is
// offered again at once, before later events. Push delivery gives back an
// event the app could not be reached for (connection refused). It returns
// ErrNotFound when the event is not delivered and unsettled.
func (l *Log) GiveBack(sub, id string) error {
	name, err := NormalizeSubscription(sub)
	if err != nil {
		return err
	}
	d := l.take(name, id)
	if d == nil {
		return fmt.Errorf("%w: event %s is not delivered on %s", ErrNotFound, id, name)
	}
	l.mu.Lock()
	marked := d.marked
	l.mu.Unlock()
	if marked {
		// A redelivery is recorded as offered before it is handed over,
		// a first delivery once held for half the ack deadline: withdraw
		// that.
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := l.unmarkOffer(ctx, name, d.seq, d.delivered); err != nil {
			l.opts.Logger.Warn("withdraw offer", "subscription", name, "err", err)
		}
	}
	l.returnUnoffered(d.msg)
	l.release(d)
	return nil
}

// DeadLetterNow moves a delivered, unsettled event to the subscription's
// dead letters at once, with reason and detail (what the app answered, as
// in "HTTP 400"), and acknowledges it so that it is not offered again. e is
// the event as it was delivered (its Attempt is the number of offers
// recorded). It returns ErrNotFound when the event is not delivered and
// unsettled.
func (l *Log) DeadLetterNow(ctx context.Context, sub string, e Event, reason, detail string) error {
	name, err := NormalizeSubscription(sub)
	if err != nil {
		return err
	}
	d := l.take(name, e.ID)
	if d == nil {
		return fmt.Errorf("%w: event %s is not delivered on %s", ErrNotFound, e.ID, name)
	}
	defer l.release(d)
	ctx, cancel := storeContext(ctx)
	defer cancel()
	if _, err := l.deadLetterDetail(ctx, name, e, d.seq, reason, e.Attempt, detail); err != nil {
		// Still delivered: its ack deadline offers it again.
		return fmt.Errorf("dead-letter event %s: %w", e.ID, err)
	}
	if err := l.settleMsg(ctx, d.msg, ackTerm); err != nil {
		// The dead letter is stored; a redelivery is dead-lettered again
		// under the same id, which de-duplicates it.
		return fmt.Errorf("dead-letter event %s: %w", e.ID, err)
	}
	l.mu.Lock()
	marked := d.marked
	l.mu.Unlock()
	if marked {
		l.forgetOffers(ctx, name, d.seq)
	}
	l.opts.Observer.DeadLettered(name)
	l.opts.Logger.Warn("event moved to dead letters", "subscription", name, "event_id", e.ID, "event_type", e.Type, "reason", reason, "detail", detail, "attempts", e.Attempt)
	return nil
}
