// Package eventlog is the sidecar's durable log of events received from
// ChronosHub and their delivery to the app.
//
// It is built on NATS JetStream: one stream holds the events (subject
// "chronoshub.events.<event type>", de-duplicated by ChronosHub's event id);
// each named subscription is a durable consumer with explicit acks, an ack
// deadline and subject filters, so "manuscript.*" filters work natively.
// Events that exhaust their delivery attempts move to a dead-letter stream,
// from which they can be listed and replayed to their subscription.
//
// Delivery is at-least-once. An event is offered again when its ack deadline
// passes, when it is rejected, and when the stream holding it ends. An ack is
// applied by JetStream at once and written to disk within about 100 ms; a
// crash inside that window offers the event again after restart.
//
// Attempts count offers to the app, not JetStream's deliveries: a
// delivery that never reached the app (lost with a connection, or given
// back because its stream ended first) is no attempt. Offers are recorded
// per subscription and event in a key-value bucket, on redeliveries and on
// first deliveries that are not acknowledged promptly, so the count is
// right across restarts and across sidecars sharing one JetStream (see
// offers.go for the bound a crash puts on it).
//
// A subscription's event-type filter is fixed when it is created. A stream
// asking for the same filter, or for none ("whatever the subscription has"),
// attaches; one asking for a wider filter (a superset) widens it, which skips
// nothing; one asking for any other filter is refused with
// ErrFilterMismatch. Narrowing is explicit (UpdateSubscription), and the
// subscription's pending events of the types it drops move to its dead
// letters with the reason "filter_narrowed": no event answered 2xx is ever
// skipped silently.
package eventlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream names. They are part of the on-disk format: changing them
// orphans existing data.
const (
	EventsStream      = "CHRONOSHUB_EVENTS"
	DeadLettersStream = "CHRONOSHUB_DEADLETTERS"

	eventsPrefix = "chronoshub.events."
	replayPrefix = "chronoshub.replay."
	deadPrefix   = "chronoshub.dead."
)

// Message headers. JetStream's own Nats-Msg-Id carries the event id for
// de-duplication.
const (
	hdrEventID    = "Chronoshub-Event-Id"
	hdrEventType  = "Chronoshub-Event-Type"
	hdrSignedAt   = "Chronoshub-Signed-At"
	hdrReceivedAt = "Chronoshub-Received-At"
	hdrSequence   = "Chronoshub-Sequence"
	hdrAttempts   = "Chronoshub-Attempts"
	hdrDeadAt     = "Chronoshub-Dead-At"
	hdrReason     = "Chronoshub-Dead-Reason"
	hdrDetail     = "Chronoshub-Dead-Detail"
	// The W3C trace context of the webhook that stored the event; absent
	// when the sidecar's tracing was off.
	hdrTraceParent = "Chronoshub-Traceparent"
	hdrTraceState  = "Chronoshub-Tracestate"
)

// jsErrStorageResources is JetStream's error code for a stream whose
// limits exceed the storage it may reserve.
const jsErrStorageResources jetstream.ErrorCode = 10047

// DefaultSubscription is the subscription used when none is named.
const DefaultSubscription = "default"

// Sentinel errors callers branch on.
var (
	// ErrInvalid wraps every error caused by the caller's input.
	ErrInvalid = errors.New("invalid request")
	// ErrFilterMismatch means a stream asked for event-type filters other
	// than its subscription's, and not a superset of them.
	ErrFilterMismatch = errors.New("event-type filter differs from the subscription's")
	// ErrNotFound means the subscription does not exist.
	ErrNotFound = errors.New("subscription not found")
	// ErrLimit means a bound of Options (subscriptions, filters) would be
	// exceeded.
	ErrLimit = errors.New("limit reached")
	// ErrFull means the event log reached Options.MaxBytes with events not
	// yet acknowledged by every subscription: nothing is dropped to make
	// room, so the append is refused. Callers should ask ChronosHub to retry
	// later.
	ErrFull = errors.New("event log full")
	// ErrClosed means the log is shutting down.
	ErrClosed = errors.New("event log closed")
)

// Event is one event received from ChronosHub.
type Event struct {
	ID string
	// DedupKey, when not empty, is what retries are recognised by (the
	// canonical, lower-case form of a UUID); "" means ID. The event keeps
	// ID as ChronosHub first sent it.
	DedupKey   string
	Type       string
	Payload    []byte
	SignedAt   time.Time
	ReceivedAt time.Time
	// Attempt is the delivery attempt on a subscription, from 1; zero on
	// Append.
	Attempt int
	// Sequence is the event's position in the log; set by the log.
	Sequence uint64
	// TraceParent and TraceState are the W3C trace context (traceparent and
	// tracestate header values) of the span that received the event, stored
	// as given so that its delivery joins the same trace. Empty means none.
	TraceParent, TraceState string
	// Replay is true for an event offered again on purpose: a replayed dead
	// letter or an event of ReplayEvents.
	Replay bool
}

// StartPosition says where a new subscription starts.
type StartPosition int

// Start positions.
const (
	StartOldest StartPosition = iota
	StartNow
	StartTime
)

// Options configures a Log. Every zero value has a default.
type Options struct {
	// Retention is how long events are kept for delivery and replay. Zero
	// means 7 days.
	Retention time.Duration
	// DuplicateWindow is how long an event id is remembered to drop
	// ChronosHub's retries. Zero means 24 h. It is capped at Retention.
	DuplicateWindow time.Duration
	// AckWait is how long a delivered event may stay unsettled before it is
	// offered again. Zero means 30 s.
	AckWait time.Duration
	// MaxAttempts is how many times an event is offered on a subscription
	// before it moves to the dead-letter set. Zero means 5.
	MaxAttempts int
	// MaxAckPending is the most unsettled events per subscription, across
	// its streams. Zero means 1000.
	MaxAckPending int
	// MaxInFlight is the default and the upper bound of a stream's
	// unsettled events. Zero means 256.
	MaxInFlight int
	// Replicas is the JetStream replication factor. Zero means 1 (embedded).
	Replicas int
	// Domain is the JetStream domain to use; "" means the connection's
	// own JetStream.
	Domain string
	// CheckExisting makes Open check streams and buckets that exist instead
	// of updating them: on a cluster shared by several sidecars, a mismatch
	// (replicas, retention, duplicate window, size cap) is an error naming
	// the settings, never a silent reconfiguration of the fleet's log. False
	// (the embedded store, which one process owns) updates them to Options.
	CheckExisting bool
	// DeadLetterPageBytes bounds the payload bytes of one ListDeadLetters
	// page (a page holds at least one dead letter, however large). Zero
	// means 3 MiB, which leaves a page's metadata room under the 4 MiB a
	// gRPC client receives by default.
	DeadLetterPageBytes int
	// PollInterval is how long one pull request waits for new events before
	// it is renewed. Zero means 5 s; it is at least 1 s.
	PollInterval time.Duration
	// MaxBytes caps the size of the event log. When it is reached, events
	// every subscription has acknowledged are removed early to make room;
	// if that is not enough, Append returns ErrFull (unacknowledged events
	// are never dropped). Zero means no cap other than the disk.
	MaxBytes int64
	// MaxSubscriptions bounds how many subscriptions may exist. Zero means
	// 100.
	MaxSubscriptions int
	// MaxFiltersPerSubscription bounds a subscription's event-type
	// patterns. Zero means 32.
	MaxFiltersPerSubscription int
	// SubscriptionIdleExpiry is how long a subscription may stay without
	// any stream before JetStream deletes it with its position. Zero means
	// 30 days; a negative value keeps subscriptions until they are deleted.
	SubscriptionIdleExpiry time.Duration
	// Commit, when set, makes durable what the store acknowledged before the
	// call (the embedded store's group commit). Mark calls it between
	// reading what the log holds and recording it, so that the mark never
	// claims events a power loss can still take. Nil means nothing to do.
	Commit func(context.Context) error
	// Now is the clock for receipt and dead-letter times. Nil means time.Now.
	Now func() time.Time
	// Logger receives warnings, and at Info the subscriptions streams
	// create and the filters they widen. Nil discards them.
	Logger *slog.Logger
	// Observer receives delivery events for metrics. Nil ignores them.
	Observer Observer
}

// Observer is told about deliveries, for metrics. Methods must not block.
type Observer interface {
	// Delivered is called when an event is offered to a stream.
	Delivered(subscription string, attempt int)
	// Acked is called when an event is acknowledged, with the time since it
	// was received from ChronosHub.
	Acked(subscription string, sinceReceived time.Duration)
	// DeadLettered is called when an event moves to the dead-letter set.
	DeadLettered(subscription string)
}

type nopObserver struct{}

func (nopObserver) Delivered(string, int)       {}
func (nopObserver) Acked(string, time.Duration) {}
func (nopObserver) DeadLettered(string)         {}

// Log is the durable event log. It is safe for concurrent use.
type Log struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	events    jetstream.Stream
	dead      jetstream.Stream
	offerRecs jetstream.KeyValue // offers made, by subscription and sequence; see offers.go
	records   jetstream.KeyValue // subscription records (filters), by name; see filter.go
	apiPrefix string             // JetStream's API subject prefix, "$JS.API." or a domain's
	opts      Options

	mu     sync.Mutex
	subs   map[string]*subState
	closed bool
	// declared are the subscriptions of the last Declare, by name; strict
	// refuses streams on others.
	declared map[string]Declaration
	strict   bool
	// oldest caches, per subscription, the time of its oldest unacknowledged
	// event (see describe); lookups counts the store reads made for it.
	oldest  map[string]oldestUnacked
	lookups int

	// quiesce is cancelled by Quiesce: open streams stop taking new events.
	quiesce       context.Context
	quiesceCancel context.CancelFunc
}

// subState is the in-memory state of one subscription: its filter, its open
// streams and the events delivered and not yet settled, by event id.
type subState struct {
	name     string
	types    []string // the subscription's filter as last seen; none means all
	streams  int
	inflight map[string]*delivery
}

// delivery is one event handed to a stream and not yet settled.
type delivery struct {
	msg        jetstream.Msg
	owner      *streamHandle
	receivedAt time.Time
	deadline   time.Time
	seq        uint64 // position in the event log
	// delivered is JetStream's delivery number (NumDelivered); marked is
	// set once the offer is in the offer record, or being written to it
	// (guarded by Log.mu).
	delivered int
	marked    bool
	offeredAt time.Time
}

// Open creates or updates the log's JetStream streams on nc and returns the
// log. The caller keeps ownership of nc.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Log, error) {
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = 24 * time.Hour
	}
	opts.DuplicateWindow = min(opts.DuplicateWindow, opts.Retention)
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.MaxAckPending <= 0 {
		opts.MaxAckPending = 1000
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.DeadLetterPageBytes <= 0 {
		opts.DeadLetterPageBytes = 3 << 20
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	opts.PollInterval = max(opts.PollInterval, time.Second) // the least jetstream accepts
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = -1
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = 100
	}
	if opts.MaxFiltersPerSubscription <= 0 {
		opts.MaxFiltersPerSubscription = 32
	}
	switch {
	case opts.SubscriptionIdleExpiry == 0:
		opts.SubscriptionIdleExpiry = 30 * 24 * time.Hour
	case opts.SubscriptionIdleExpiry < 0:
		opts.SubscriptionIdleExpiry = 0 // JetStream: never
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	var (
		js  jetstream.JetStream
		err error
	)
	if opts.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, opts.Domain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	settings := natsconn.Settings{
		"max age": "CHRONOSHUB_RETENTION", "duplicate window": "CHRONOSHUB_DUPLICATE_WINDOW",
		"max bytes": "CHRONOSHUB_LOG_MAX_BYTES", "replicas": "CHRONOSHUB_NATS_REPLICAS", "TTL": "CHRONOSHUB_RETENTION",
	}
	ensureStream := func(cfg jetstream.StreamConfig) (jetstream.Stream, error) {
		if opts.CheckExisting {
			return natsconn.EnsureStream(ctx, js, cfg, settings)
		}
		return js.CreateOrUpdateStream(ctx, cfg)
	}
	events, err := ensureStream(jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "Events received from ChronosHub webhooks, by event type.",
		Subjects:    []string{eventsPrefix + ">", replayPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      opts.Retention,
		Duplicates:  opts.DuplicateWindow,
		MaxBytes:    opts.MaxBytes,
		// A full log refuses appends rather than dropping events that
		// subscriptions have not acknowledged (see reclaim).
		Discard:  jetstream.DiscardNew,
		Replicas: opts.Replicas,
	})
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStorageResources && opts.MaxBytes > 0 {
			return nil, fmt.Errorf("create stream %s: its size cap of %d bytes (CHRONOSHUB_LOG_MAX_BYTES) is more than the store can reserve on disk: lower it, or give the store more space: %w", EventsStream, opts.MaxBytes, err)
		}
		return nil, fmt.Errorf("create stream %s: %w", EventsStream, err)
	}
	dead, err := ensureStream(jetstream.StreamConfig{
		Name:        DeadLettersStream,
		Description: "Events that exhausted their delivery attempts, by subscription.",
		Subjects:    []string{deadPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      opts.Retention,
		Duplicates:  opts.DuplicateWindow,
		Replicas:    opts.Replicas,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", DeadLettersStream, err)
	}
	kvCfg := jetstream.KeyValueConfig{
		Bucket:      OffersBucket,
		Description: "Per subscription and event, the deliveries offered to the app.",
		TTL:         opts.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	}
	var offerRecs jetstream.KeyValue
	if opts.CheckExisting {
		offerRecs, err = natsconn.EnsureKeyValue(ctx, js, kvCfg, settings)
	} else {
		offerRecs, err = js.CreateOrUpdateKeyValue(ctx, kvCfg)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", OffersBucket, err)
	}
	recCfg := jetstream.KeyValueConfig{
		Bucket:      SubscriptionsBucket,
		Description: "Per subscription, its event-type filter, changed with a revision check.",
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	}
	var records jetstream.KeyValue
	if opts.CheckExisting {
		records, err = natsconn.EnsureKeyValue(ctx, js, recCfg, settings)
	} else {
		records, err = js.CreateOrUpdateKeyValue(ctx, recCfg)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", SubscriptionsBucket, err)
	}
	q, qcancel := context.WithCancel(context.Background())
	return &Log{
		nc: nc, js: js, events: events, dead: dead, offerRecs: offerRecs, records: records, opts: opts,
		apiPrefix: apiPrefix(opts.Domain),
		subs:      map[string]*subState{},
		oldest:    map[string]oldestUnacked{},
		quiesce:   q, quiesceCancel: qcancel,
	}, nil
}

// JetStream returns the JetStream context the log uses, for other stores
// that share the connection.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// Append stores e durably. It returns duplicate=true, storing nothing, when
// an event with the same id was stored within the duplicate window. When
// Append returns nil, the event has been written to the operating system.
func (l *Log) Append(ctx context.Context, e Event) (duplicate bool, err error) {
	if e.ID == "" {
		return false, fmt.Errorf("%w: empty event id", ErrInvalid)
	}
	if err := validateType(e.Type); err != nil {
		return false, err
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = l.opts.Now()
	}
	msg := nats.NewMsg(eventsPrefix + e.Type)
	msg.Data = e.Payload
	msg.Header.Set(jetstream.MsgIDHeader, cmp.Or(e.DedupKey, e.ID))
	setEventHeaders(msg.Header, e)
	ack, err := l.publish(ctx, msg)
	if err != nil && l.full(ctx, msg) {
		// Make room by removing what every subscription has acknowledged,
		// then try once more.
		if l.reclaim(ctx) {
			ack, err = l.publish(ctx, msg)
		}
		if err != nil && l.full(ctx, msg) {
			return false, fmt.Errorf("store event %s: %w", e.ID, ErrFull)
		}
	}
	if err != nil {
		return false, fmt.Errorf("store event %s: %w", e.ID, err)
	}
	return ack.Duplicate, nil
}

// jsErrDuplicateInProcess is JetStream's answer to a message whose id is
// the id of one still being stored ("duplicate message id is in process"):
// on a cluster, ChronosHub's retry of a webhook whose first attempt is
// still waiting for its quorum.
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158

// publish stores msg, waiting out a first attempt of the same id still in
// process: its outcome decides this one's (a duplicate once it is stored,
// stored anew if it failed), instead of a failure the caller would take for
// an unavailable store.
func (l *Log) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		ack, err := l.js.PublishMsg(ctx, msg)
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsErrDuplicateInProcess {
			return ack, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for an earlier attempt of the same event: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// storeRecordOverhead is what JetStream's file store adds to a message.
const storeRecordOverhead = 42

// full reports whether the event log has no room for m under MaxBytes.
func (l *Log) full(ctx context.Context, m *nats.Msg) bool {
	if l.opts.MaxBytes <= 0 {
		return false
	}
	info, err := l.events.Info(ctx)
	if err != nil {
		return false
	}
	// The store counts a message as its subject, headers and data plus a
	// record of up to 42 bytes (length, sequence, time, lengths, hash);
	// counting only the subject and data took a refusal of a nearly full
	// log for a store failure.
	return int64(info.State.Bytes)+int64(m.Size())+storeRecordOverhead > l.opts.MaxBytes
}

// reclaim removes, from the head of the event log, the events every
// subscription has acknowledged. With no subscription nothing is removed:
// a new subscription starts at the oldest retained event. It reports
// whether it removed anything.
func (l *Log) reclaim(ctx context.Context) bool {
	// Read before the subscriptions: a subscription with nothing pending
	// and nothing unacknowledged is done with every event up to here.
	before, err := l.events.Info(ctx)
	if err != nil {
		return false
	}
	var floor uint64
	any := false
	lister := l.events.ListConsumers(ctx)
	for info := range lister.Info() {
		f := info.AckFloor.Stream
		if info.NumPending == 0 && info.NumAckPending == 0 {
			f = max(f, before.State.LastSeq)
		}
		if !any || f < floor {
			floor = f
		}
		any = true
	}
	if lister.Err() != nil || !any || floor == 0 || before.State.FirstSeq > floor {
		return false
	}
	// Keep floor+1 and later.
	if err := l.events.Purge(ctx, jetstream.WithPurgeSequence(floor+1)); err != nil {
		l.opts.Logger.Warn("reclaim acknowledged events", "err", err)
		return false
	}
	l.opts.Logger.Info("event log full: removed events every subscription acknowledged", "up_to_sequence", floor)
	return true
}

// decode turns a stored message into an Event.
func decode(hdr nats.Header, subject string, data []byte, seq uint64) Event {
	e := Event{
		ID:       hdr.Get(hdrEventID),
		Type:     hdr.Get(hdrEventType),
		Payload:  data,
		Sequence: seq,

		TraceParent: hdr.Get(hdrTraceParent),
		TraceState:  hdr.Get(hdrTraceState),
		Replay:      strings.HasPrefix(subject, replayPrefix),
	}
	if e.Type == "" {
		e.Type = strings.TrimPrefix(subject, eventsPrefix)
	}
	if s, err := strconv.ParseInt(hdr.Get(hdrSignedAt), 10, 64); err == nil {
		e.SignedAt = time.Unix(s, 0).UTC()
	}
	if t, err := time.Parse(time.RFC3339Nano, hdr.Get(hdrReceivedAt)); err == nil {
		e.ReceivedAt = t
	}
	if s, err := strconv.ParseUint(hdr.Get(hdrSequence), 10, 64); err == nil {
		e.Sequence = s
	}
	return e
}

// Quiesce prepares a graceful shutdown: open streams stop taking new events,
// wait until the events they hold are settled (or their ack deadlines pass),
// and then return nil; new streams are refused with ErrClosed. Acks keep
// working. It is idempotent.
func (l *Log) Quiesce() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.quiesceCancel()
}

// Close stops accepting streams. Open
// streams end when their contexts are cancelled; Close does not cancel them.
func (l *Log) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// Depth returns, per known subscription, how many events wait to be
// delivered (not counting those delivered and unsettled).
func (l *Log) Depth(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	lister := l.events.ListConsumers(ctx)
	for info := range lister.Info() {
		out[info.Name] = info.NumPending
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return out, nil
}

// probeSubject is the events stream subject Probe writes to. It is in the
// stream (under replayPrefix) but no subscription's filter matches it:
// their replay subjects have the subscription's name and at least one
// event-type token after the prefix, this one a single token.
const probeSubject = replayPrefix + "_probe"

// Probe checks that the events stream takes a write: it appends a small
// message through the stream's replicated write path (on a cluster, it
// needs the events stream's quorum, exactly as an append does) on a subject
// that no subscription receives, then removes it. The sidecar uses it to
// notice that the store works again when no append has been tried since it
// failed.
func (l *Log) Probe(ctx context.Context) error {
	msg := nats.NewMsg(probeSubject)
	msg.Data = []byte(l.opts.Now().UTC().Format(time.RFC3339Nano))
	if _, err := l.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(EventsStream)); err != nil {
		if l.full(ctx, msg) {
			// The stream answered, and is full: appends get ErrFull,
			// which readiness does not count as a store failure (and a
			// full log is emptied by appends, which an unready replica
			// would not get).
			return nil
		}
		return fmt.Errorf("event log write probe: %w", err)
	}
	if err := l.events.Purge(ctx, jetstream.WithPurgeSubject(probeSubject)); err != nil {
		l.opts.Logger.Warn("remove event log write probe", "err", err)
	}
	return nil
}

// Ping checks that the store answers.
func (l *Log) Ping(ctx context.Context) error {
	if _, err := l.events.Info(ctx); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	return nil
}

// leaderless reports whether err is JetStream's answer from a stream or
// bucket without a leader (an election, a node restarting), which asked
// again shortly succeeds: nothing answered (nats.go's publish already asked
// twice more), or 503.
func leaderless(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.As(err, &apiErr) && apiErr.Code == 503
}

// apiPrefix is the subject prefix of JetStream's API in domain ("" for the
// connection's own).
func apiPrefix(domain string) string {
	if domain == "" {
		return "$JS.API."
	}
	return "$JS." + domain + ".API."
}
