package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subscription describes a subscription: its filter, where it stands and
// what it holds.
type Subscription struct {
	Name string
	// Types is its event-type filter, sorted; none means every type.
	Types []string
	// AckFloor is the log position up to which every event of the
	// subscription is acknowledged.
	AckFloor uint64
	// Pending is the backlog: events not yet delivered.
	Pending uint64
	// Unacked is how many events are delivered and not yet settled.
	Unacked int
	// OpenStreams is how many streams are open on it in this process.
	OpenStreams int
	// DeadLetters is how many dead letters it has.
	DeadLetters uint64
	// OldestUnacked is when the oldest event it has not acknowledged was
	// stored; zero when there is none.
	OldestUnacked time.Time
	// Created is when it was created.
	Created time.Time
}

// checkSubscriptionCount refuses a new subscription beyond MaxSubscriptions.
func (l *Log) checkSubscriptionCount(ctx context.Context) error {
	n := 0
	lister := l.events.ConsumerNames(ctx)
	for range lister.Name() {
		n++
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("count subscriptions: %w", err)
	}
	if n >= l.opts.MaxSubscriptions {
		return fmt.Errorf("%w: %d subscriptions exist, at most %d: delete unused ones (DeleteSubscription) or raise the limit", ErrLimit, n, l.opts.MaxSubscriptions)
	}
	return nil
}

// consumer returns the subscription's consumer, or ErrNotFound.
func (l *Log) consumer(ctx context.Context, name string) (jetstream.Consumer, error) {
	cons, err := l.events.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", name, err)
	}
	return cons, nil
}

// GetSubscription describes one subscription, or returns ErrNotFound.
func (l *Log) GetSubscription(ctx context.Context, name string) (Subscription, error) {
	name, err := NormalizeSubscription(name)
	if err != nil {
		return Subscription{}, err
	}
	cons, err := l.consumer(ctx, name)
	if err != nil {
		return Subscription{}, err
	}
	dead, err := l.deadLetterCounts(ctx)
	if err != nil {
		return Subscription{}, err
	}
	return l.describe(ctx, cons.CachedInfo(), dead)
}

// ListSubscriptions describes every subscription, by name.
func (l *Log) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	dead, err := l.deadLetterCounts(ctx)
	if err != nil {
		return nil, err
	}
	var out []Subscription
	lister := l.events.ListConsumers(ctx)
	for info := range lister.Info() {
		s, err := l.describe(ctx, info, dead)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	slices.SortFunc(out, func(a, b Subscription) int { return strings.Compare(a.Name, b.Name) })
	// Forget what is cached of subscriptions deleted or expired.
	l.mu.Lock()
	for name := range l.oldest {
		if _, ok := slices.BinarySearchFunc(out, name, func(s Subscription, n string) int { return strings.Compare(s.Name, n) }); !ok {
			delete(l.oldest, name)
		}
	}
	l.mu.Unlock()
	return out, nil
}

// Stats describes every subscription, for metrics: its dead letters, the
// age of its oldest unacknowledged event (from OldestUnacked) and its
// backlog. It is ListSubscriptions under the name operators look for.
func (l *Log) Stats(ctx context.Context) ([]Subscription, error) { return l.ListSubscriptions(ctx) }

func (l *Log) describe(ctx context.Context, info *jetstream.ConsumerInfo, dead map[string]uint64) (Subscription, error) {
	s := Subscription{
		Name:        info.Name,
		Types:       typesOf(info.Config),
		AckFloor:    info.AckFloor.Stream,
		Pending:     info.NumPending,
		Unacked:     info.NumAckPending,
		DeadLetters: dead[info.Name],
		Created:     info.Created,
	}
	l.mu.Lock()
	if st := l.subs[info.Name]; st != nil {
		s.OpenStreams = st.streams
	}
	l.mu.Unlock()
	if s.Pending == 0 && s.Unacked == 0 {
		return s, nil
	}
	// Every event of the subscription up to the ack floor is acknowledged,
	// so the first one after it, of its subjects, is the oldest that is not.
	subjects := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		subjects = []string{info.Config.FilterSubject}
	}
	// It stays the same while the ack floor and the filter do: a scrape
	// reads the store only for subscriptions whose floor moved, instead of
	// once per filter of every subscription. The cache is renewed after
	// oldestTTL, as retention may remove that event.
	key := strings.Join(subjects, " ")
	now := time.Now()
	l.mu.Lock()
	c, ok := l.oldest[s.Name]
	l.mu.Unlock()
	if ok && c.floor == s.AckFloor && c.subjects == key && now.Sub(c.read) < oldestTTL {
		s.OldestUnacked = c.t
		return s, nil
	}
	l.mu.Lock()
	l.lookups++
	l.mu.Unlock()
	for _, subj := range subjects {
		raw, err := l.events.GetMsg(ctx, s.AckFloor+1, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("describe subscription %s: %w", s.Name, err)
		}
		if s.OldestUnacked.IsZero() || raw.Time.Before(s.OldestUnacked) {
			s.OldestUnacked = raw.Time
		}
	}
	l.mu.Lock()
	l.oldest[s.Name] = oldestUnacked{floor: s.AckFloor, subjects: key, t: s.OldestUnacked, read: now}
	l.mu.Unlock()
	return s, nil
}

// oldestUnacked is a cached OldestUnacked of a subscription.
type oldestUnacked struct {
	floor    uint64
	subjects string
	t, read  time.Time
}

// oldestTTL bounds how long a cached OldestUnacked is used.
const oldestTTL = time.Minute

// deadLetterCounts returns the number of dead letters per subscription.
func (l *Log) deadLetterCounts(ctx context.Context) (map[string]uint64, error) {
	info, err := l.dead.Info(ctx, jetstream.WithSubjectFilter(deadPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	out := map[string]uint64{}
	for subj, n := range info.State.Subjects {
		sub, _, _ := strings.Cut(strings.TrimPrefix(subj, deadPrefix), ".")
		out[sub] += n
	}
	return out, nil
}

// UpdateSubscription sets a subscription's event-type filter (none means
// every type). Its pending events of the types the new filter drops move to
// its dead letters with the reason ReasonFilterNarrowed, at once for those
// not yet delivered and when they come back for those delivered and not
// settled. It returns the subscription and how many events it moved.
//
// The narrowing is recorded before the filter changes, and the record is
// cleared only when every excluded event is a dead letter: a call that is
// interrupted (its deadline, a crash) is finished by the next
// UpdateSubscription on the subscription, for example a retry with the same
// types. Moving is de-duplicated by log position, so a resumed move does not
// store a dead letter twice within the duplicate window.
func (l *Log) UpdateSubscription(ctx context.Context, name string, types []string) (Subscription, int, error) {
	name, err := NormalizeSubscription(name)
	if err != nil {
		return Subscription{}, 0, err
	}
	if types, err = l.checkTypes(types); err != nil {
		return Subscription{}, 0, err
	}
	if err := l.setFilter(ctx, name, types); err != nil {
		return Subscription{}, 0, err
	}
	moved, err := l.finishNarrowings(ctx, name)
	if err != nil {
		return Subscription{}, moved, err
	}
	s, err := l.GetSubscription(ctx, name)
	return s, moved, err
}

// setFilter writes the subscription's new filter, with the intent of a
// narrowing when it drops types, and applies it to the consumer.
func (l *Log) setFilter(ctx context.Context, name string, types []string) error {
	for range filterRounds {
		cons, err := l.consumer(ctx, name)
		if err != nil {
			return err
		}
		rec, rev, err := l.readRecord(ctx, name)
		if err != nil {
			return err
		}
		if rev == 0 {
			rec.Types = typesOf(cons.CachedInfo().Config)
		}
		old := rec.Types
		if slices.Equal(old, types) && rev != 0 {
			// Nothing to change; an interrupted change is finished by
			// applying the record again.
			_, _, err := l.applyFilter(ctx, name, cons)
			return err
		}
		rec.Types = types
		if !covers(types, old) {
			// The events not yet delivered before the change are those
			// after this position; one delivered between this read and
			// the change may also be dead-lettered (a duplicate, never a
			// loss).
			info, err := cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("subscription %s: %w", name, err)
			}
			subjects, _ := filterSubjects(name, old)
			rec.Narrowings = append(rec.Narrowings, narrowing{Subjects: subjects, Types: types, From: info.Delivered.Stream + 1})
		}
		if _, err := l.writeRecord(ctx, name, rec, rev); errors.Is(err, errConflict) {
			continue
		} else if err != nil {
			return err
		}
		if _, _, err := l.applyFilter(ctx, name, cons); err != nil {
			return err
		}
		l.opts.Logger.Info("subscription filter changed", "subscription", name, "event_types", types, "previous", old)
		if n := len(rec.Narrowings); n > 0 && rec.Narrowings[n-1].To == 0 {
			// Bound the move by the log's end now that the consumer has
			// the new filter: later events were never the subscription's.
			// If this is not recorded (the record changed meanwhile), the
			// move goes to the log's end when it runs.
			l.boundNarrowing(ctx, name, rec.Narrowings[n-1])
		}
		return nil
	}
	return fmt.Errorf("subscription %s: %w after %d attempts", name, errConflict, filterRounds)
}

// finishNarrowings moves the excluded events of every recorded narrowing of
// the subscription to its dead letters and then clears the narrowing. It
// returns how many events it moved (counting those an interrupted earlier
// call had moved).
func (l *Log) finishNarrowings(ctx context.Context, name string) (int, error) {
	rec, _, err := l.readRecord(ctx, name)
	if err != nil || len(rec.Narrowings) == 0 {
		return 0, err
	}
	moved := 0
	for _, n := range rec.Narrowings {
		if n.To == 0 {
			// Bound the move by the log's end once the filter is applied:
			// later events were never the subscription's.
			info, err := l.events.Info(ctx)
			if err != nil {
				return moved, fmt.Errorf("narrow subscription %s: %w", name, err)
			}
			n.To = info.State.LastSeq
		}
		m, err := l.moveExcluded(ctx, name, n)
		moved += m
		if err != nil {
			return moved, err
		}
		if err := l.clearNarrowing(ctx, name, n); err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// boundNarrowing records the log's last position as the end of narrowing n.
func (l *Log) boundNarrowing(ctx context.Context, name string, n narrowing) {
	info, err := l.events.Info(ctx)
	if err != nil {
		return
	}
	rec, rev, err := l.readRecord(ctx, name)
	if err != nil || rev == 0 {
		return
	}
	i := slices.IndexFunc(rec.Narrowings, n.equal)
	if i < 0 || rec.Narrowings[i].To != 0 {
		return
	}
	rec.Narrowings[i].To = info.State.LastSeq
	_, _ = l.writeRecord(ctx, name, rec, rev)
}

// clearNarrowing removes a finished narrowing from the record.
func (l *Log) clearNarrowing(ctx context.Context, name string, done narrowing) error {
	for range filterRounds {
		rec, rev, err := l.readRecord(ctx, name)
		if err != nil || rev == 0 {
			return err
		}
		rest := slices.DeleteFunc(slices.Clone(rec.Narrowings), done.equal)
		if len(rest) == len(rec.Narrowings) {
			return nil
		}
		rec.Narrowings = rest
		if _, err := l.writeRecord(ctx, name, rec, rev); !errors.Is(err, errConflict) {
			return err
		}
	}
	return fmt.Errorf("subscription %s: %w after %d attempts", name, errConflict, filterRounds)
}

// moveExcluded dead-letters the events of a narrowing: those of its old
// subjects from n.From to n.To that its new filter excludes. The consumer
// no longer delivers them, so nothing else moves them; delivered ones come
// back to deliverOne.
func (l *Log) moveExcluded(ctx context.Context, name string, n narrowing) (int, error) {
	moved := 0
	for _, subj := range n.Subjects {
		for seq := n.From; seq <= n.To; {
			raw, err := l.events.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return moved, fmt.Errorf("narrow subscription %s: %w", name, err)
			}
			if raw.Sequence > n.To {
				break
			}
			seq = raw.Sequence + 1
			e := decode(raw.Header, raw.Subject, raw.Data, raw.Sequence)
			if matchesAny(n.Types, e.Type) {
				continue
			}
			dup, err := l.deadLetter(ctx, name, e, raw.Sequence, ReasonFilterNarrowed, 0)
			if err != nil {
				return moved, fmt.Errorf("narrow subscription %s: dead-letter event %s: %w", name, e.ID, err)
			}
			if !dup {
				l.opts.Observer.DeadLettered(name)
			}
			moved++
		}
	}
	return moved, nil
}

// DeleteSubscription deletes a subscription, its position and its dead
// letters. Streams open on it end with ErrNotFound.
func (l *Log) DeleteSubscription(ctx context.Context, name string) error {
	name, err := NormalizeSubscription(name)
	if err != nil {
		return err
	}
	if err := l.events.DeleteConsumer(ctx, name); err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return fmt.Errorf("delete subscription %s: %w", name, err)
	}
	if err := l.dead.Purge(ctx, jetstream.WithPurgeSubject(deadPrefix+name+".>")); err != nil {
		return fmt.Errorf("delete dead letters of %s: %w", name, err)
	}
	if err := l.purgeLeftovers(ctx, name, 0); err != nil {
		return fmt.Errorf("delete subscription %s: %w", name, err)
	}
	if err := l.records.Purge(ctx, name); err != nil {
		return fmt.Errorf("delete subscription %s: %w", name, err)
	}
	l.opts.Logger.Info("subscription deleted", "subscription", name)
	return nil
}

// Holding returns, per subscription, how many events this process's streams
// hold delivered and not yet settled: what a graceful shutdown waits for.
// Subscriptions holding none are left out.
func (l *Log) Holding() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for name, st := range l.subs {
		if n := len(st.inflight); n > 0 {
			out[name] = n
		}
	}
	return out
}
