package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A subscription's event-type filter is shared by every replica of the
// sidecar, so it changes in the store with a revision check, never behind a
// process-local lock: the record in SubscriptionsBucket (one key per
// subscription) is what the filter is, and the consumer follows it.
//
// JetStream cannot compare-and-set a consumer's configuration, so two
// replicas applying two revisions of the record may apply them in the wrong
// order. Each one therefore reads the record again after writing the
// consumer and applies the newest revision itself; the consumer's metadata
// names the revision it holds. When a replica finds it wrote an older
// revision over a newer one, the consumer may have passed events of the
// types that older revision lacked while it held it: those are republished
// on the subscription's replay subject (de-duplicated by position), so they
// are offered rather than skipped.

// SubscriptionsBucket holds one record per subscription: its event-type
// filter and the narrowings whose excluded events are still being moved to
// dead letters. It is part of the on-disk format.
const SubscriptionsBucket = "CHRONOSHUB_SUBSCRIPTIONS"

// metaFilterRevision is the consumer metadata key naming the revision of the
// subscription record its filter comes from.
const metaFilterRevision = "chronoshub_filter_revision"

// filterRounds bounds the compare-and-set retries of one filter change; each
// lost round means another replica changed the record meanwhile.
const filterRounds = 20

// subRecord is a subscription's record.
type subRecord struct {
	// Types is the event-type filter, sorted; none means every type.
	Types []string `json:"types,omitempty"`
	// Narrowings are filter changes whose excluded pending events are not
	// all known to be dead letters yet.
	Narrowings []narrowing `json:"narrowings,omitempty"`
	// written is when the store wrote this revision (not stored in it).
	written time.Time
}

// narrowing is the intent of one narrowing, kept until its excluded events
// are dead letters, so that a retry (or any later UpdateSubscription) can
// finish an interrupted one.
type narrowing struct {
	// Subjects are the consumer's subjects before the change.
	Subjects []string `json:"subjects"`
	// Types is the filter after the change; events of other types are
	// excluded.
	Types []string `json:"types,omitempty"`
	// From is the first log position not delivered before the change.
	From uint64 `json:"from"`
	// To is the last log position when the change was applied; 0 means it
	// is not known (the change was interrupted first) and the move goes to
	// the end of the log.
	To uint64 `json:"to,omitempty"`
}

func (n narrowing) equal(o narrowing) bool {
	return slices.Equal(n.Subjects, o.Subjects) && slices.Equal(n.Types, o.Types) && n.From == o.From
}

// errConflict means another replica changed the record meanwhile.
var errConflict = errors.New("subscription record changed concurrently")

// readRecord returns the subscription's record and its revision; revision 0
// means there is none.
//
// It reads through the bucket's stream leader, never with a direct get (the
// key-value API's Get): on a cluster a direct get may be answered by a
// replica that has not applied the latest write yet, and a filter read
// stale made a stream that had just widened the filter see the old one and
// refuse itself as a mismatch (seen on the three-node test cluster).
//
// While the bucket has no leader (an election, or a bucket just created on a
// cluster) nothing answers: it asks again for up to storeTimeout (or the
// caller's shorter deadline), then fails, and the stream's caller may retry.
func (l *Log) readRecord(ctx context.Context, name string) (subRecord, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{"$KV." + SubscriptionsBucket + "." + name})
	if err != nil {
		return subRecord{}, 0, err
	}
	var resp struct {
		Message *struct {
			Seq     uint64    `json:"seq"`
			Headers []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		m, err := l.nc.RequestWithContext(actx, l.apiPrefix+"STREAM.MSG.GET.KV_"+SubscriptionsBucket, req)
		acancel()
		switch {
		case err == nil:
			resp.Message, resp.Error = nil, nil
			if err := json.Unmarshal(m.Data, &resp); err != nil {
				return subRecord{}, 0, fmt.Errorf("read subscription %s: %w", name, err)
			}
			if resp.Error == nil || !leaderless(resp.Error) {
				break
			}
			err = errors.New("the subscriptions bucket has no leader")
			fallthrough
		case leaderless(err), errors.Is(err, context.DeadlineExceeded):
			// Nothing answered for the moment: ask again.
			select {
			case <-ctx.Done():
				return subRecord{}, 0, fmt.Errorf("read subscription %s: %w", name, err)
			case <-time.After(50 * time.Millisecond):
			}
			continue
		default:
			return subRecord{}, 0, fmt.Errorf("read subscription %s: %w", name, err)
		}
		break
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jsErrNoMessageFound:
		return subRecord{}, 0, nil
	case resp.Error != nil:
		return subRecord{}, 0, fmt.Errorf("read subscription %s: %w", name, resp.Error)
	case resp.Message == nil:
		return subRecord{}, 0, fmt.Errorf("read subscription %s: empty answer from JetStream", name)
	}
	if len(resp.Message.Headers) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Headers)
		if err != nil {
			return subRecord{}, 0, fmt.Errorf("read subscription %s: %w", name, err)
		}
		if op := h.Get(kvOperation); op == "DEL" || op == "PURGE" {
			return subRecord{}, 0, nil // deleted: none, as the key-value API's Get says
		}
	}
	var r subRecord
	if err := json.Unmarshal(resp.Message.Data, &r); err != nil {
		return subRecord{}, 0, fmt.Errorf("read subscription %s: %w", name, err)
	}
	r.written = resp.Message.Time
	return r, resp.Message.Seq, nil
}

// jsErrNoMessageFound is JetStream's answer to a get of a subject with no
// message.
const jsErrNoMessageFound jetstream.ErrorCode = 10037

// kvOperation is the header with which JetStream's key-value store marks a
// deleted or purged key.
const kvOperation = "KV-Operation"

// writeRecord stores r if the record's revision is still rev (0: there is
// none), and returns the new revision, or errConflict.
func (l *Log) writeRecord(ctx context.Context, name string, r subRecord, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	var n uint64
	if rev == 0 {
		n, err = l.records.Create(ctx, name, b)
	} else {
		n, err = l.records.Update(ctx, name, b, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, errConflict
	case err != nil:
		return 0, fmt.Errorf("write subscription %s: %w", name, err)
	}
	return n, nil
}

// joinFilter makes sure the subscription exists with a filter that covers
// asked (creating it, or widening it when asked is a superset of its
// filter) and returns its consumer. It makes no change and returns
// ErrFilterMismatch when asked is neither the filter, nor none, nor a
// superset, including when another replica narrowed it meanwhile.
func (l *Log) joinFilter(ctx context.Context, name string, asked []string, req StreamRequest) (jetstream.Consumer, Attachment, error) {
	cons, created, err := l.joinFilterRounds(ctx, name, asked, req)
	att := Attachment{Subscription: name}
	if err == nil && created {
		att = Attachment{Subscription: name, Created: true, Pending: cons.CachedInfo().NumPending}
		l.opts.Logger.Info("subscription created by a stream", "subscription", name, "event_types", asked,
			"start", startName(req), "replay_events", att.Pending)
	}
	return cons, att, err
}

// joinFilterRounds is joinFilter's loop; created reports that this call
// created the subscription.
func (l *Log) joinFilterRounds(ctx context.Context, name string, asked []string, req StreamRequest) (_ jetstream.Consumer, created bool, _ error) {
	for range filterRounds {
		rec, rev, err := l.readRecord(ctx, name)
		if err != nil {
			return nil, false, err
		}
		cons, err := l.events.Consumer(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			if rev != 0 && l.creating(rec) {
				// Another replica won the record and is creating the
				// consumer: wait for it rather than create it a second
				// time (a second, identical create of a replicated
				// consumer can drop the first stream's pull request).
				select {
				case <-ctx.Done():
					return nil, false, ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			cons, err = l.create(ctx, name, asked, req, rev)
			if errors.Is(err, errConflict) {
				continue
			}
			if err != nil {
				return nil, false, err
			}
			created = true
		case err != nil:
			return nil, false, fmt.Errorf("subscription %s: %w", name, err)
		default:
			if rev == 0 {
				// A subscription created before records existed: its
				// consumer is the filter.
				rec.Types = typesOf(cons.CachedInfo().Config)
			}
			current := rec.Types
			switch {
			case len(asked) == 0 || slices.Equal(asked, current):
				if rev != 0 {
					break
				}
				if _, err := l.writeRecord(ctx, name, rec, 0); errors.Is(err, errConflict) {
					continue
				} else if err != nil {
					return nil, false, err
				}
			case covers(asked, current):
				rec.Types = asked
				if _, err := l.writeRecord(ctx, name, rec, rev); errors.Is(err, errConflict) {
					continue
				} else if err != nil {
					return nil, false, err
				}
				l.opts.Logger.Info("subscription filter widened", "subscription", name, "event_types", asked)
			default:
				return nil, false, filterMismatch(name, current, asked)
			}
		}
		cons, types, err := l.applyFilter(ctx, name, cons)
		if err != nil {
			return nil, false, err
		}
		if len(asked) > 0 && !covers(types, asked) {
			// Another replica narrowed it after this one read it.
			return nil, false, filterMismatch(name, types, asked)
		}
		if err := l.purgeOlderDeadLetters(ctx, name, cons.CachedInfo().Created); err != nil {
			return nil, false, err
		}
		cons, err = l.waitLeader(ctx, name, cons)
		return cons, err == nil && created, err
	}
	return nil, false, fmt.Errorf("subscription %s: %w after %d attempts", name, errConflict, filterRounds)
}

// creating reports whether a record whose consumer does not exist was
// written too recently for the consumer to have expired since: it is being
// created. A consumer expires no sooner than SubscriptionIdleExpiry after
// its last activity, and its record is written while it exists.
func (l *Log) creating(rec subRecord) bool {
	grace := 10 * time.Second
	if e := l.opts.SubscriptionIdleExpiry; e > 0 {
		grace = min(grace, e)
	}
	return time.Since(rec.written) < grace
}

// create creates the subscription with the filter asked for, replacing a
// record at revision rev left by a subscription of the same name that
// expired. It returns errConflict when another replica created it first.
func (l *Log) create(ctx context.Context, name string, asked []string, req StreamRequest, rev uint64) (jetstream.Consumer, error) {
	if err := l.checkSubscriptionCount(ctx); err != nil {
		return nil, err
	}
	// What the dead-letter set holds now is a predecessor's: a subscription
	// that expired from idleness leaves its dead letters behind.
	dead, err := l.dead.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", name, err)
	}
	rev, err = l.writeRecord(ctx, name, subRecord{Types: asked}, rev)
	if err != nil {
		return nil, err
	}
	// Before the consumer exists, so that nobody sees the new subscription
	// with its predecessor's dead letters (the record written above makes
	// this replica the one creating it).
	if err := l.purgeLeftovers(ctx, name, dead.State.LastSeq); err != nil {
		return nil, err
	}
	subjects, _ := filterSubjects(name, asked)
	cfg := l.consumerConfig(name, subjects)
	cfg.Metadata = map[string]string{metaFilterRevision: strconv.FormatUint(rev, 10)}
	switch req.Start {
	case StartNow:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case StartTime:
		t := req.StartTime
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	}
	cons, err := l.events.CreateConsumer(ctx, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return nil, errConflict
	}
	if err != nil {
		return nil, consumerError(name, err)
	}
	return cons, nil
}

// purgeLeftovers removes the dead letters up to position upTo and the
// attempt records of a subscription of the same name that no longer exists.
func (l *Log) purgeLeftovers(ctx context.Context, name string, upTo uint64) error {
	if upTo > 0 {
		err := l.dead.Purge(ctx, jetstream.WithPurgeSubject(deadPrefix+name+".>"), jetstream.WithPurgeSequence(upTo+1))
		if err != nil {
			return fmt.Errorf("remove dead letters of an earlier subscription %s: %w", name, err)
		}
	}
	// The listing ends when JetStream says it listed every key, or when its
	// context ends; bounded, so that a watcher that never says so cannot
	// hold the stream that is creating the subscription forever.
	lctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	lister, err := l.offerRecs.ListKeysFiltered(lctx, name+".>")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove attempt records of an earlier subscription %s: %w", name, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	if err := lctx.Err(); err != nil {
		return fmt.Errorf("remove attempt records of an earlier subscription %s: list them: %w", name, err)
	}
	for _, k := range keys {
		if err := l.offerRecs.Purge(ctx, k); err != nil {
			return fmt.Errorf("remove attempt records of an earlier subscription %s: %w", name, err)
		}
	}
	return nil
}

// purgeOlderDeadLetters removes the subscription's dead letters stored
// before created, the creation of its consumer: those of an earlier
// subscription of the same name that expired, which create removes too
// unless another replica created the new one. It costs one read when there
// are none.
func (l *Log) purgeOlderDeadLetters(ctx context.Context, name string, created time.Time) error {
	subject := deadPrefix + name + ".>"
	var keep uint64 // the first dead letter to keep
	for seq := uint64(1); ; {
		raw, err := l.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("subscription %s: %w", name, err)
		}
		if !raw.Time.Before(created) {
			keep = raw.Sequence
			break
		}
		seq = raw.Sequence + 1
		keep = seq
	}
	if keep <= 1 {
		return nil
	}
	if err := l.dead.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(keep)); err != nil {
		return fmt.Errorf("remove dead letters of an earlier subscription %s: %w", name, err)
	}
	return nil
}

// applyFilter brings the consumer to the newest revision of the
// subscription's record and returns it with the record's filter.
func (l *Log) applyFilter(ctx context.Context, name string, cons jetstream.Consumer) (jetstream.Consumer, []string, error) {
	// stale is what this call wrote over a newer revision, if it did, and
	// from the consumer's position before that write.
	var (
		stale   [][]string
		from    = cons.CachedInfo().Delivered.Stream
		written bool
	)
	for range filterRounds {
		rec, rev, err := l.readRecord(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if rev == 0 {
			return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		cfg := cons.CachedInfo().Config
		have, _ := strconv.ParseUint(cfg.Metadata[metaFilterRevision], 10, 64)
		if have == rev && cfg.InactiveThreshold == l.opts.SubscriptionIdleExpiry {
			if len(stale) > 0 {
				if err := l.repairStale(ctx, name, cons, rec.Types, stale, from); err != nil {
					return nil, nil, err
				}
			}
			return cons, rec.Types, nil
		}
		if have > rev || (written && have != rev) {
			// Another replica wrote meanwhile: read the consumer again.
			if cons, err = l.events.Consumer(ctx, name); err != nil {
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, name)
				}
				return nil, nil, fmt.Errorf("subscription %s: %w", name, err)
			}
			written = false
			continue
		}
		cfg.FilterSubject = ""
		cfg.FilterSubjects, _ = filterSubjects(name, rec.Types)
		cfg.Metadata = maps.Clone(cfg.Metadata)
		if cfg.Metadata == nil {
			cfg.Metadata = map[string]string{}
		}
		cfg.Metadata[metaFilterRevision] = strconv.FormatUint(rev, 10)
		cfg.InactiveThreshold = l.opts.SubscriptionIdleExpiry
		if cons, err = l.events.UpdateConsumer(ctx, cfg); err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, name)
			}
			return nil, nil, consumerError(name, err)
		}
		written = true
		// Read the record again: a newer revision may have been applied
		// before this write, which then replaced it.
		_, now, err := l.readRecord(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if now != rev {
			stale = append(stale, rec.Types)
		}
	}
	return nil, nil, fmt.Errorf("subscription %s: %w after %d attempts", name, errConflict, filterRounds)
}

// repairStale republishes, on the subscription's replay subject, the events
// of its filter types that the consumer may have passed while it held one
// of the stale filters this replica wrote: those after position from up to
// where the consumer stands now.
func (l *Log) repairStale(ctx context.Context, name string, cons jetstream.Consumer, types []string, stale [][]string, from uint64) error {
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("subscription %s: %w", name, err)
	}
	to := info.Delivered.Stream
	subjects, _ := filterSubjects(name, types)
	n := 0
	for _, subj := range subjects {
		for seq := from + 1; seq <= to; {
			raw, err := l.events.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("subscription %s: %w", name, err)
			}
			seq = raw.Sequence + 1
			if raw.Sequence > to {
				break
			}
			e := decode(raw.Header, raw.Subject, raw.Data, raw.Sequence)
			if !matchesAny(types, e.Type) || !slices.ContainsFunc(stale, func(s []string) bool { return !matchesAny(s, e.Type) }) {
				continue
			}
			msg := nats.NewMsg(replayPrefix + name + "." + e.Type)
			msg.Data = e.Payload
			msg.Header.Set(jetstream.MsgIDHeader, "refilter:"+name+":"+strconv.FormatUint(raw.Sequence, 10))
			setEventHeaders(msg.Header, e)
			msg.Header.Set(hdrSequence, strconv.FormatUint(e.Sequence, 10))
			if _, err := l.js.PublishMsg(ctx, msg); err != nil {
				return fmt.Errorf("subscription %s: offer event %s again: %w", name, e.ID, err)
			}
			n++
		}
	}
	if n > 0 {
		l.opts.Logger.Warn("a concurrent filter change may have skipped events: offered them again", "subscription", name, "events", n)
	}
	return nil
}

// consumerLeaderWait bounds how long opening a subscription waits for its
// consumer's leader: about three of JetStream's longest election timeouts
// (9 s), so that an election ends well within it while a consumer that gets
// no leader (a group that lost its quorum) ends the stream with UNAVAILABLE
// rather than holding it open and silent.
const consumerLeaderWait = 30 * time.Second

// waitLeader returns once the consumer has a leader. A replicated consumer
// just created (or one whose leader is being elected) drops pull requests
// until it has one, silently: the stream would wait for missed heartbeats
// (seconds) before asking again, while other replicas' streams took every
// event.
func (l *Log) waitLeader(ctx context.Context, name string, cons jetstream.Consumer) (jetstream.Consumer, error) {
	return awaitLeader(ctx, name, cons, consumerLeaderWait)
}

// awaitLeader is waitLeader with its bound: after limit it returns an error
// that wraps context.DeadlineExceeded (an unavailable store, to apps).
func awaitLeader(ctx context.Context, name string, cons jetstream.Consumer, limit time.Duration) (jetstream.Consumer, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		info := cons.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader != "" {
			return cons, nil
		}
		var err error
		select {
		case <-wctx.Done():
		case <-time.After(20 * time.Millisecond):
			_, err = cons.Info(wctx)
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case wctx.Err() != nil:
			return nil, fmt.Errorf("subscription %s: its consumer got no leader within %v: %w", name, limit, context.DeadlineExceeded)
		case err != nil:
			return nil, fmt.Errorf("subscription %s: %w", name, err)
		}
	}
}
