package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
)

var subscriptionName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// StreamRequest opens a stream on a subscription.
type StreamRequest struct {
	// Subscription is the subscription name; "" means DefaultSubscription.
	Subscription string
	// Types are event-type patterns; empty means every type.
	Types []string
	// Start and StartTime apply when the subscription is created.
	Start     StartPosition
	StartTime time.Time
	// MaxInFlight bounds the stream's unsettled events; 0 means the log's
	// default, and it is capped at the log's MaxInFlight.
	MaxInFlight int
}

// streamHandle is one open stream's share of a subscription.
type streamHandle struct {
	sub   *subState
	types []string      // the stream's event-type patterns; none means all
	wake  chan struct{} // signalled when one of its deliveries settles
	// n is the number of deliveries this stream holds; guarded by Log.mu.
	n int
}

func (h *streamHandle) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func validateType(t string) error {
	if err := eventtype.Validate(t); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// NormalizeSubscription returns the subscription name to use for name, or
// an ErrInvalid error.
func NormalizeSubscription(name string) (string, error) {
	if name == "" {
		return DefaultSubscription, nil
	}
	if !subscriptionName.MatchString(name) {
		return "", fmt.Errorf("%w: subscription name must be 1 to 64 letters, digits, '-' or '_'", ErrInvalid)
	}
	return name, nil
}

// filterSubjects maps event-type patterns to the consumer's subjects: the
// events themselves and the subscription's replayed dead letters.
func filterSubjects(sub string, types []string) ([]string, error) {
	if len(types) == 0 {
		types = []string{">"}
	}
	var subjects []string
	for i, t := range types {
		if err := eventtype.ValidatePattern(t); err != nil {
			return nil, fmt.Errorf("%w: event type filter: %w", ErrInvalid, err)
		}
		for _, u := range types[:i] {
			if u != t && patternsOverlap(u, t) {
				return nil, fmt.Errorf("%w: event type filters %q and %q overlap: give one of them", ErrInvalid, u, t)
			}
		}
		subjects = append(subjects, eventsPrefix+t, replayPrefix+sub+"."+t)
	}
	slices.Sort(subjects)
	return slices.Compact(subjects), nil
}

// patternsOverlap reports whether some event type matches both patterns
// ('*' is one token, '>' one or more), which JetStream refuses in one
// consumer's filters.
func patternsOverlap(p, q string) bool {
	a, b := strings.Split(p, "."), strings.Split(q, ".")
	for len(a) > 0 && len(b) > 0 {
		if a[0] == ">" || b[0] == ">" {
			return true
		}
		if a[0] != "*" && b[0] != "*" && a[0] != b[0] {
			return false
		}
		a, b = a[1:], b[1:]
	}
	return len(a) == 0 && len(b) == 0
}

// matchesAny reports whether eventType matches one of patterns; no patterns
// match everything.
func matchesAny(patterns []string, eventType string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if eventtype.Match(p, eventType) {
			return true
		}
	}
	return false
}

// Stream delivers the subscription's events to send until ctx is done, send
// fails, or the log fails. It creates the subscription if needed. Events
// still unsettled when it returns are offered again at once.
//
// send is called from one goroutine at a time; it may block (back-pressure)
// and should return promptly when ctx is done.
func (l *Log) Stream(ctx context.Context, req StreamRequest, send func(Event) error) error {
	name, err := NormalizeSubscription(req.Subscription)
	if err != nil {
		return err
	}
	subjects, err := filterSubjects(name, req.Types)
	if err != nil {
		return err
	}
	if req.Start == StartTime && req.StartTime.After(l.opts.Now()) {
		return fmt.Errorf("%w: start time is in the future", ErrInvalid)
	}
	max := req.MaxInFlight
	if max <= 0 || max > l.opts.MaxInFlight {
		max = l.opts.MaxInFlight
	}
	h, err := l.attach(ctx, name, subjects, req)
	if err != nil {
		return err
	}
	defer l.detach(h)

	// Pull requests are answered on an inbox this stream owns; release
	// withdraws it when the stream ends and returns what it received.
	msgs := make(chan *nats.Msg, max+16)
	inbox := l.nc.NewInbox()
	sub, err := l.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return fmt.Errorf("subscribe for subscription %s: %w", name, err)
	}
	defer l.release(sub, msgs)
	next := "$JS.API.CONSUMER.MSG.NEXT." + EventsStream + "." + name
	for {
		if err := l.waitCapacity(ctx, h, max, l.quiesce); err != nil {
			return err
		}
		if l.quiescing() {
			// Withdraw the pull request and return what it holds, then
			// give the app until ctx ends to settle what it has.
			l.release(sub, msgs)
			return l.waitCapacity(ctx, h, 1, nil)
		}
		l.mu.Lock()
		n := max - h.n
		l.mu.Unlock()
		req, _ := json.Marshal(pullRequest{Batch: n, Expires: l.opts.PollInterval})
		if err := l.nc.PublishRequest(next, inbox, req); err != nil {
			return fmt.Errorf("fetch from subscription %s: %w", name, err)
		}
		if err := l.receive(ctx, h, n, msgs, send); err != nil {
			return err
		}
	}
}

// release ends a stream's inbox. Events of the outstanding pull request
// that are already on their way count as delivered for JetStream; draining
// the subscription and flushing the connection brings them into msgs, and
// they go back to the subscription at once with everything else buffered,
// rather than waiting out the ack deadline.
func (l *Log) release(sub *nats.Subscription, msgs chan *nats.Msg) {
	if sub.Drain() == nil {
		_ = l.nc.FlushTimeout(time.Second)
	}
	_ = sub.Unsubscribe()
	for {
		select {
		case m := <-msgs:
			if !isStatus(m) {
				_ = m.Nak()
			}
		default:
			return
		}
	}
}

func (l *Log) quiescing() bool {
	select {
	case <-l.quiesce:
		return true
	default:
		return false
	}
}

// pullRequest is JetStream's request for the next messages of a consumer.
type pullRequest struct {
	Batch   int           `json:"batch"`
	Expires time.Duration `json:"expires"`
}

// isStatus reports whether m is a JetStream status message rather than an
// event.
func isStatus(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") != ""
}

// receive hands up to n events of one pull request to send, until the
// request is complete or expires.
func (l *Log) receive(ctx context.Context, h *streamHandle, n int, msgs <-chan *nats.Msg, send func(Event) error) error {
	// JetStream answers an expired request with a 408 status; the timer only
	// guards against a lost one.
	guard := time.NewTimer(2*l.opts.PollInterval + time.Second)
	defer guard.Stop()
	for received := 0; received < n; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.quiesce:
			return nil
		case <-guard.C:
			return nil
		case m := <-msgs:
			if !isStatus(m) {
				received++
				if err := l.deliverOne(ctx, h, m, send); err != nil {
					return err
				}
				continue
			}
			switch code, desc := m.Header.Get("Status"), m.Header.Get("Description"); code {
			case "100": // heartbeat
			case "404", "408": // no messages, request expired
				return nil
			default:
				if strings.Contains(strings.ToLower(desc), "deleted") {
					return fmt.Errorf("subscription %s: %s", h.sub.name, desc)
				}
				// For example leadership changes or limits: retry shortly.
				l.opts.Logger.Warn("pull request refused", "subscription", h.sub.name, "status", code, "description", desc)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
				return nil
			}
		}
	}
	return nil
}

// attach makes sure the subscription's consumer exists with the requested
// filters and registers a stream on it.
func (l *Log) attach(ctx context.Context, name string, subjects []string, req StreamRequest) (*streamHandle, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	s := l.subs[name]
	if s == nil {
		s = &subState{name: name, inflight: map[string]*delivery{}}
		l.subs[name] = s
	}
	// Consumer calls happen under l.mu so that filter changes and creation
	// are serialised; they are local and fast.
	cons, err := l.events.Consumer(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cfg := l.consumerConfig(name, subjects)
		switch req.Start {
		case StartNow:
			cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		case StartTime:
			t := req.StartTime
			cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
			cfg.OptStartTime = &t
		}
		_, err = l.events.CreateConsumer(ctx, cfg)
		if err != nil {
			return nil, consumerError(name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("subscription %s: %w", name, err)
	default:
		cfg := cons.CachedInfo().Config
		current := cfg.FilterSubjects
		if cfg.FilterSubject != "" {
			current = []string{cfg.FilterSubject}
		}
		if !slices.Equal(sorted(current), subjects) {
			if s.streams > 0 {
				return nil, fmt.Errorf("%w: subscription %s", ErrFilterConflict, name)
			}
			cfg.FilterSubject = ""
			cfg.FilterSubjects = subjects
			_, err = l.events.UpdateConsumer(ctx, cfg)
			if err != nil {
				return nil, consumerError(name, err)
			}
			l.opts.Logger.Info("subscription filters changed", "subscription", name, "event_types", req.Types)
		}
	}
	s.streams++
	return &streamHandle{sub: s, types: req.Types, wake: make(chan struct{}, 1)}, nil
}

func (l *Log) consumerConfig(name string, subjects []string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "chronoshub-sidecar subscription " + name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        l.opts.AckWait,
		MaxDeliver:     -1, // attempts are counted here, to dead-letter instead of dropping
		MaxAckPending:  l.opts.MaxAckPending,
		FilterSubjects: subjects,
		Replicas:       l.opts.Replicas,
	}
}

func consumerError(name string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 400 {
		return fmt.Errorf("%w: subscription %s: %s", ErrInvalid, name, apiErr.Description)
	}
	return fmt.Errorf("subscription %s: %w", name, err)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// detach returns the stream's unsettled events to the subscription.
func (l *Log) detach(h *streamHandle) {
	l.mu.Lock()
	var naks []*nats.Msg
	for id, d := range h.sub.inflight {
		if d.owner == h {
			naks = append(naks, d.msg)
			delete(h.sub.inflight, id)
		}
	}
	h.n = 0
	h.sub.streams--
	l.mu.Unlock()
	// Confirmed naks, so that a graceful shutdown that follows does not
	// leave them unapplied; if one fails, the ack deadline redelivers.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range naks {
		_ = l.settleMsg(ctx, m, ackNak)
	}
}

// waitCapacity blocks until the stream holds fewer than max deliveries or
// stop is closed, expiring deliveries whose ack deadline passed (JetStream
// offers those again by itself).
func (l *Log) waitCapacity(ctx context.Context, h *streamHandle, max int, stop <-chan struct{}) error {
	for {
		l.mu.Lock()
		now := time.Now()
		var next time.Time
		for id, d := range h.sub.inflight {
			if d.owner != h {
				continue
			}
			if !now.Before(d.deadline) {
				delete(h.sub.inflight, id)
				h.n--
				continue
			}
			if next.IsZero() || d.deadline.Before(next) {
				next = d.deadline
			}
		}
		n := h.n
		l.mu.Unlock()
		if n < max {
			return nil
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-stop:
			timer.Stop()
			return nil
		case <-h.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (l *Log) deliverOne(ctx context.Context, h *streamHandle, m *nats.Msg, send func(Event) error) error {
	meta, err := m.Metadata()
	if err != nil {
		_ = l.settleMsg(ctx, m, ackTerm)
		l.opts.Logger.Error("dropping message without JetStream metadata", "subject", m.Subject)
		return nil
	}
	e := decode(m.Header, m.Subject, m.Data, meta.Sequence.Stream)
	e.Attempt = int(meta.NumDelivered)
	if !matchesAny(h.types, e.Type) {
		// A redelivery from before the subscription's filters changed:
		// the subscription no longer wants this type.
		if err := l.settleMsg(ctx, m, ackTerm); err != nil {
			return fmt.Errorf("skip event %s: %w", e.ID, err)
		}
		l.opts.Logger.Info("event skipped: its type left the subscription's filters", "subscription", h.sub.name, "event_id", e.ID, "event_type", e.Type)
		return nil
	}
	if e.Attempt > l.opts.MaxAttempts {
		// Its last attempt expired or was rejected: dead-letter it, and only
		// then stop its redelivery (a crash in between redelivers it here and
		// the dead-letter id de-duplicates it).
		if err := l.deadLetter(ctx, h.sub.name, e, meta.Sequence.Stream); err != nil {
			_ = m.NakWithDelay(time.Second)
			return fmt.Errorf("dead-letter event %s: %w", e.ID, err)
		}
		if err := l.settleMsg(ctx, m, ackTerm); err != nil {
			return fmt.Errorf("dead-letter event %s: %w", e.ID, err)
		}
		l.opts.Observer.DeadLettered(h.sub.name)
		l.opts.Logger.Warn("event moved to dead letters", "subscription", h.sub.name, "event_id", e.ID, "event_type", e.Type, "attempts", l.opts.MaxAttempts)
		return nil
	}
	l.mu.Lock()
	if old, ok := h.sub.inflight[e.ID]; ok {
		// A redelivery after the ack deadline: the newer delivery wins.
		old.owner.n--
		old.owner.signal()
	}
	h.sub.inflight[e.ID] = &delivery{msg: m, owner: h, receivedAt: e.ReceivedAt, deadline: time.Now().Add(l.opts.AckWait)}
	h.n++
	l.mu.Unlock()
	l.opts.Observer.Delivered(h.sub.name, e.Attempt)
	if err := send(e); err != nil {
		return err
	}
	return nil
}

// Settlement says what to do with delivered events.
type Settlement struct {
	// Subscription the events were delivered on; "" means default.
	Subscription string
	// IDs are the event ids.
	IDs []string
	// Reject offers the events again instead of acknowledging them.
	Reject bool
	// Delay, with Reject, postpones the next offer.
	Delay time.Duration
}

// Settle acknowledges or rejects delivered events. It returns the ids it
// settled and those not delivered and unsettled on the subscription.
// Acknowledgements are confirmed by JetStream before Settle returns.
func (l *Log) Settle(ctx context.Context, s Settlement) (done, unknown []string, err error) {
	name, err := NormalizeSubscription(s.Subscription)
	if err != nil {
		return nil, nil, err
	}
	if s.Delay < 0 {
		return nil, nil, fmt.Errorf("%w: negative redelivery delay", ErrInvalid)
	}
	type item struct {
		id string
		d  *delivery
	}
	var items []item
	l.mu.Lock()
	sub := l.subs[name]
	for _, id := range s.IDs {
		var d *delivery
		if sub != nil {
			d = sub.inflight[id]
		}
		if d == nil {
			unknown = append(unknown, id)
			continue
		}
		// The delivery leaves the registry now, so that it is settled once,
		// but keeps its stream's capacity until JetStream confirms: in strict
		// order (one in flight) a rejected event must be back in line before
		// the stream asks for the next one.
		delete(sub.inflight, id)
		items = append(items, item{id, d})
	}
	l.mu.Unlock()
	var errs []error
	for _, it := range items {
		var err error
		switch {
		case !s.Reject:
			err = l.settleMsg(ctx, it.d.msg, ackAck)
			if err == nil {
				l.opts.Observer.Acked(name, l.opts.Now().Sub(it.d.receivedAt))
			}
		case s.Delay > 0:
			err = l.settleMsg(ctx, it.d.msg, fmt.Sprintf(`%s {"delay": %d}`, ackNak, s.Delay.Nanoseconds()))
		default:
			err = l.settleMsg(ctx, it.d.msg, ackNak)
		}
		l.mu.Lock()
		it.d.owner.n--
		l.mu.Unlock()
		it.d.owner.signal()
		if err != nil {
			errs = append(errs, fmt.Errorf("settle event %s: %w", it.id, err))
			continue
		}
		done = append(done, it.id)
	}
	return done, unknown, errors.Join(errs...)
}

// JetStream acknowledgement bodies.
const (
	ackAck  = "+ACK"
	ackNak  = "-NAK"
	ackTerm = "+TERM"
)

// settleMsg sends an acknowledgement and waits for JetStream to confirm it
// applied it.
func (l *Log) settleMsg(ctx context.Context, m *nats.Msg, body string) error {
	if _, err := l.nc.RequestWithContext(ctx, m.Reply, []byte(body)); err != nil {
		return err
	}
	return nil
}
