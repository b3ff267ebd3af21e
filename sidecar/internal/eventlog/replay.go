package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Limits of ReplayEvents.
const (
	// MaxReplayIDs is the most event ids one ReplayEvents call names.
	MaxReplayIDs = 1000
	// DefaultReplayPage is how many events one ReplayEvents call over a
	// time range offers again when ReplayRequest.Limit is zero.
	DefaultReplayPage = 1000
	// MaxReplayPage is the most events one call over a time range offers
	// again.
	MaxReplayPage = 10000
	// replayScanLimit bounds the events one call over a time range reads,
	// matching or not, so that a narrow type filter over a long range still
	// returns within an RPC deadline.
	replayScanLimit = 100000
)

// ReplayRequest names events of the log to offer again to a subscription:
// by id, or by a range of reception time; not both.
type ReplayRequest struct {
	// Subscription is the subscription; "" means DefaultSubscription.
	Subscription string
	// IDs are event ids (at most MaxReplayIDs).
	IDs []string
	// Start and End bound the time range: events stored at or after Start
	// and before End. A zero End means up to the newest event when the
	// replay began.
	Start, End time.Time
	// Types, when not empty, replays only events of these types (patterns
	// as in StreamRequest).
	Types []string
	// Limit is the most events this call offers again (time range only);
	// zero means DefaultReplayPage, at most MaxReplayPage.
	Limit int
	// Cursor continues a time range from a previous call's
	// ReplayResult.Next; "" starts it.
	Cursor string
}

// ReplayResult reports one ReplayEvents call.
type ReplayResult struct {
	// IDs are the ids of the events offered again, in log order.
	IDs []string
	// Unknown are the requested ids that are not in the log: never
	// received, past the retention window, or of a type the subscription's
	// filter excludes.
	Unknown []string
	// Next, when not empty, is the cursor that continues a time range; the
	// range is done when it is empty.
	Next string
	// Expired is true when events of the range have left the log
	// (retention or size cap) before they could be replayed: at its start
	// (the range starts at OldestRetained) or, in a later page, since the
	// previous page.
	Expired bool
	// OldestRetained is when the oldest event the log still holds was
	// stored; zero when the log is empty.
	OldestRetained time.Time
}

// ReplayEvents offers events of the log again to one subscription, with a
// fresh attempt counter, in log order. It republishes copies of them on the
// subscription's replay subject (the one dead-letter replays use), so they
// are delivered, acknowledged and dead-lettered like any other event, with
// Event.Replay set; the app receives them at its own pace (the copies wait
// in the log, not in memory).
//
// By ids, it looks for every id in the retained log, newest first, and
// reports those it does not find. By time range, one call offers at most
// Limit events and returns a cursor for the rest, so that a day of events
// is replayed in calls that each fit an RPC deadline; a range is fixed at
// its first call (events arriving later are not part of it). Events the
// subscription's filter excludes are never replayed. It returns
// ErrNotFound for a subscription that does not exist.
func (l *Log) ReplayEvents(ctx context.Context, req ReplayRequest) (ReplayResult, error) {
	name, err := NormalizeSubscription(req.Subscription)
	if err != nil {
		return ReplayResult{}, err
	}
	byTime := !req.Start.IsZero() || !req.End.IsZero() || req.Cursor != ""
	switch {
	case len(req.IDs) > 0 && byTime:
		return ReplayResult{}, fmt.Errorf("%w: give event ids or a time range, not both", ErrInvalid)
	case len(req.IDs) == 0 && !byTime:
		return ReplayResult{}, fmt.Errorf("%w: give event ids or a start time", ErrInvalid)
	case len(req.IDs) > MaxReplayIDs:
		return ReplayResult{}, fmt.Errorf("%w: at most %d event ids per replay", ErrInvalid, MaxReplayIDs)
	case byTime && req.Start.IsZero() && req.Cursor == "":
		return ReplayResult{}, fmt.Errorf("%w: a time range needs a start time", ErrInvalid)
	case !req.End.IsZero() && !req.End.After(req.Start):
		return ReplayResult{}, fmt.Errorf("%w: end time %s is not after start time %s", ErrInvalid, req.End.UTC().Format(time.RFC3339), req.Start.UTC().Format(time.RFC3339))
	case req.Limit < 0 || req.Limit > MaxReplayPage:
		return ReplayResult{}, fmt.Errorf("%w: limit must be between 0 and %d", ErrInvalid, MaxReplayPage)
	}
	for _, id := range req.IDs {
		if id == "" {
			return ReplayResult{}, fmt.Errorf("%w: empty event id", ErrInvalid)
		}
	}
	types, err := l.checkTypes(req.Types)
	if err != nil {
		return ReplayResult{}, err
	}
	cons, err := l.consumer(ctx, name)
	if err != nil {
		return ReplayResult{}, err
	}
	subTypes := typesOf(cons.CachedInfo().Config)
	wanted := func(eventType string) bool { return matchesAny(subTypes, eventType) && matchesAny(types, eventType) }
	info, err := l.events.Info(ctx)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay to %s: %w", name, err)
	}
	res := ReplayResult{}
	if info.State.Msgs > 0 {
		res.OldestRetained = info.State.FirstTime
	}
	if len(req.IDs) > 0 {
		return l.replayIDs(ctx, name, req.IDs, wanted, info.State, res)
	}
	return l.replayRange(ctx, name, req, wanted, info.State, res)
}

// replayIDs finds ids in the log, newest first (an operator usually
// replays recent events), and replays what it found in log order.
func (l *Log) replayIDs(ctx context.Context, sub string, ids []string, wanted func(string) bool, state jetstream.StreamState, res ReplayResult) (ReplayResult, error) {
	left := map[string]bool{}
	for _, id := range ids {
		left[strings.ToLower(id)] = true
	}
	var found []*jetstream.RawStreamMsg
	for seq := state.LastSeq; seq >= state.FirstSeq && seq > 0 && len(left) > 0; seq-- {
		raw, err := l.events.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return ReplayResult{}, fmt.Errorf("replay to %s: %w", sub, err)
		}
		if !strings.HasPrefix(raw.Subject, eventsPrefix) {
			continue // a replayed copy
		}
		id := strings.ToLower(raw.Header.Get(hdrEventID))
		if !left[id] || !wanted(raw.Header.Get(hdrEventType)) {
			continue
		}
		delete(left, id)
		found = append(found, raw)
	}
	slices.Reverse(found)
	for _, raw := range found {
		if err := l.republish(ctx, sub, raw); err != nil {
			return res, err
		}
		res.IDs = append(res.IDs, raw.Header.Get(hdrEventID))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if k := strings.ToLower(id); left[k] && !seen[k] {
			seen[k] = true
			res.Unknown = append(res.Unknown, id)
		}
	}
	return res, nil
}

// replayRange replays one page of a time range.
func (l *Log) replayRange(ctx context.Context, sub string, req ReplayRequest, wanted func(string) bool, state jetstream.StreamState, res ReplayResult) (ReplayResult, error) {
	limit := req.Limit
	if limit == 0 {
		limit = DefaultReplayPage
	}
	var from, last uint64
	if req.Cursor != "" {
		var ok bool
		if from, last, ok = parseCursor(req.Cursor); !ok {
			return ReplayResult{}, fmt.Errorf("%w: not a cursor returned by a replay", ErrInvalid)
		}
	} else {
		last = state.LastSeq
		if state.FirstSeq > 1 && req.Start.Before(state.FirstTime) {
			res.Expired = true // events were removed from the head of the log
		}
		var err error
		if from, err = l.firstAtOrAfter(ctx, req.Start, state); err != nil {
			return ReplayResult{}, fmt.Errorf("replay to %s: %w", sub, err)
		}
	}
	if from < state.FirstSeq {
		// Events of the range left the log (retention) since the previous
		// page: say so rather than skip them silently.
		res.Expired = true
		from = state.FirstSeq
	}
	for scanned := 0; from <= last; scanned++ {
		if len(res.IDs) == limit || scanned == replayScanLimit {
			res.Next = formatCursor(from, last)
			return res, nil
		}
		raw, err := l.events.GetMsg(ctx, from, jetstream.WithGetMsgSubject(eventsPrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("replay to %s: %w", sub, err)
		}
		if raw.Sequence > last || (!req.End.IsZero() && !raw.Time.Before(req.End)) {
			break
		}
		from = raw.Sequence + 1
		if !wanted(raw.Header.Get(hdrEventType)) {
			continue
		}
		if err := l.republish(ctx, sub, raw); err != nil {
			return res, err
		}
		res.IDs = append(res.IDs, raw.Header.Get(hdrEventID))
	}
	return res, nil
}

// firstAtOrAfter returns the position of the first event stored at or
// after t (past the last one when there is none), by binary search over the
// log's store times, which grow with the position.
func (l *Log) firstAtOrAfter(ctx context.Context, t time.Time, state jetstream.StreamState) (uint64, error) {
	lo, hi := state.FirstSeq, state.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		raw, err := l.events.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid
			continue
		}
		if err != nil {
			return 0, err
		}
		if raw.Time.Before(t) {
			lo = raw.Sequence + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// republish copies one stored event onto the subscription's replay subject.
// The copy keeps the event's headers (its id, type, times, trace context and
// original position) and gets no de-duplication id: a replay repeated on
// purpose is offered again.
func (l *Log) republish(ctx context.Context, sub string, raw *jetstream.RawStreamMsg) error {
	e := decode(raw.Header, raw.Subject, raw.Data, raw.Sequence)
	msg := nats.NewMsg(replayPrefix + sub + "." + e.Type)
	msg.Data = raw.Data
	setEventHeaders(msg.Header, e)
	msg.Header.Set(hdrSequence, strconv.FormatUint(e.Sequence, 10))
	if _, err := l.js.PublishMsg(ctx, msg); err != nil {
		if l.full(ctx, msg) {
			return fmt.Errorf("replay event %s: %w", e.ID, ErrFull)
		}
		return fmt.Errorf("replay event %s: %w", e.ID, err)
	}
	return nil
}

// A cursor is "<next position>-<last position of the range>".
func formatCursor(next, last uint64) string {
	return strconv.FormatUint(next, 10) + "-" + strconv.FormatUint(last, 10)
}

func parseCursor(s string) (next, last uint64, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	next, err1 := strconv.ParseUint(a, 10, 64)
	last, err2 := strconv.ParseUint(b, 10, 64)
	return next, last, err1 == nil && err2 == nil && next > 0 && next <= last+1
}
