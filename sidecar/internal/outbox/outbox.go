// Package outbox makes sending events to ChronosHub idempotent and asynchronous, on NATS
// JetStream (embedded or an external cluster; the package only needs a jetstream.JetStream).
//
// # Storage
//
// One KV bucket (BucketName) holds a record per idempotency key, stored under the SHA-256 of
// the key because KV keys have a restricted alphabet. One work-queue stream (StreamName)
// holds the events waiting to be forwarded, payload included; one durable consumer
// (ConsumerName) forwards them, so any replica pointed at the same cluster can deliver any
// event. Open creates the bucket and the stream with Options.Replicas when they are missing,
// and otherwise checks that they have the settings it would create (natsconn.EnsureKeyValue,
// natsconn.EnsureStream): it never reconfigures them, so that one replica configured
// differently cannot change replication for the others.
//
// # Expiry
//
// Records expire with per-message TTLs (NATS server 2.11 or later), not with the bucket's
// MaxAge, so that their lifetime follows their state:
//
//   - Accepted and Failed records live for IdempotencyWindow after their outcome is recorded.
//   - A Queued asynchronous record has no TTL: it cannot expire while its event waits, however
//     long the sidecar or ChronosHub is down. It gets its TTL when it becomes Accepted or
//     Failed, which FailAfter guarantees eventually happens once Run runs.
//   - The claim of a synchronous Send in flight lives until the caller's deadline plus a
//     margin (claimTTL without a deadline), so a crashed caller cannot hold its key forever.
//
// # Delivery semantics
//
// The outbox adds no duplicate of its own beyond what ChronosHub's lack of an idempotency key
// forces (see package chronoshub): an event is posted again only when a previous post of it
// may have been accepted without the outbox recording it —
//
//   - the response was lost (timeout or connection reset after the request was sent); or
//   - the answer arrived but the record could not be written before a crash or a JetStream
//     failure, so the queued message is delivered again; or
//   - a synchronous Send that ended in ErrUnavailable or ErrUnauthorized is repeated with the
//     same key: those outcomes are not remembered (ChronosHub did not judge the event, or the
//     outcome is unknown), so the repeat posts again.
//
// ChronosHub's definite answers are remembered: Accepted with its eventId, and Failed for a
// rejected event (400 and other 4xx, an inactive account, a 2xx without eventId).
// Asynchronous events treat a 401 as transient (the operator can fix the key by reloading
// it) and retry it until FailAfter.
package outbox

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// Names of the JetStream resources the outbox owns.
const (
	BucketName   = "CHRONOSHUB_OUTBOX"
	StreamName   = "CHRONOSHUB_OUTBOX_QUEUE"
	ConsumerName = "CHRONOSHUB_OUTBOX_FORWARDER"

	// queueSubjectPrefix starts the subject of every queued event; the rest is the key's
	// hash. It is upper case and outbox-specific so that it cannot overlap the subjects of
	// other streams on the same server.
	queueSubjectPrefix = "CHRONOSHUB_OUTBOX_QUEUE."
)

const (
	defaultWindow        = 24 * time.Hour
	defaultFailAfter     = 24 * time.Hour
	defaultRetryDelay    = time.Second
	defaultMaxRetryDelay = 5 * time.Minute

	// sendTimeout bounds one forwarding attempt (all its HTTP attempts). ackWait is the
	// queue's ack deadline: short, so that a message held by a sidecar that was killed is
	// forwarded soon after the restart; the worker extends it while it works on a message
	// (see keepAlive), so that it is not redelivered meanwhile.
	sendTimeout = time.Minute
	ackWait     = 15 * time.Second
	// maxConcurrency bounds Options.Concurrency: the consumer's MaxAckPending (1000) must
	// leave room for redeliveries waiting out their delay.
	maxConcurrency = 256
	// claimTTL is how long a synchronous Send without a deadline holds its key; claimMargin is
	// added to a deadline.
	claimTTL    = 10 * time.Minute
	claimMargin = 30 * time.Second
	// markerTTL is how long delete markers of expired records are kept.
	markerTTL = time.Minute
	// storeTimeout bounds writes made after the caller's context has ended.
	storeTimeout = 10 * time.Second
)

// Sender posts one event to ChronosHub; *chronoshub.Client is one.
type Sender interface {
	SendEvent(ctx context.Context, eventType string, payload []byte) (chronoshub.Result, error)
}

// Options are the optional knobs of an Outbox.
type Options struct {
	// IdempotencyWindow is how long a key's outcome is remembered after it is recorded.
	// Zero means 24h.
	IdempotencyWindow time.Duration
	// FailAfter is how long after Enqueue an event not yet accepted is marked Failed. Zero
	// means 24h.
	FailAfter time.Duration
	// Replicas is the JetStream replica count of the bucket and the stream. Zero means 1.
	Replicas int
	// RetryDelay and MaxRetryDelay bound the exponential, jittered delay before a queued
	// event is retried after a transient failure. Zero means 1s and 5m.
	RetryDelay, MaxRetryDelay time.Duration
	// Concurrency is how many queued events Run sends to ChronosHub at once. With 1 they are
	// sent one at a time, in the order they were queued (an event retried after a transient
	// failure comes back after its delay, behind later ones); with more, events may reach
	// ChronosHub in any order. Zero means 1.
	Concurrency int
	// OrderByType keeps events of one type in the order they were queued with any
	// Concurrency: an event is sent once the one queued before it with the same type has
	// an outcome or is waiting for a retry (a retried event still goes out behind later
	// ones). Events of different types are sent concurrently.
	OrderByType bool
	// Now tells the time for records and FailAfter. Nil means time.Now.
	Now func() time.Time
	// Logger receives the outbox's logs. Nil discards them.
	Logger *slog.Logger
	// OnOutcome, when set, is called once for every event that becomes Accepted or Failed,
	// synchronous or not. It may be called concurrently.
	OnOutcome func(state State)
	// Tracer, when set, stores the trace context of Enqueue's ctx with the queued event, so
	// that its later send to ChronosHub continues the caller's trace. Nil means none.
	Tracer *tracing.Tracer

	// ackWait overrides the consumer's ack deadline, for tests of redelivery.
	ackWait time.Duration
	// lease overrides how long a worker posting a queued event holds it (see
	// stored.LeaseUntil), for tests; zero means twice the ack deadline.
	lease time.Duration
	// suffix is appended to the names of the bucket, the stream, its subjects and the
	// consumer, so that tests can share one cluster.
	suffix string
}

// State is where an event stands.
type State int

const (
	// Queued means the event waits for ChronosHub's answer: queued for the forwarder, or being
	// sent by a synchronous Send.
	Queued State = iota + 1
	// Accepted means ChronosHub accepted the event; Record.EventID is its eventId.
	Accepted
	// Failed means the event will not be sent again; Record.Error says why.
	Failed
)

// String returns "queued", "accepted" or "failed".
func (s State) String() string {
	switch s {
	case Queued:
		return "queued"
	case Accepted:
		return "accepted"
	case Failed:
		return "failed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Record is what the outbox knows about the event of one key.
type Record struct {
	Key                  string
	Type                 string
	State                State
	EventID              string // ChronosHub's eventId once Accepted
	Attempts             int    // HTTP attempts made so far
	Error                string // the last failure, if any; never holds the API key
	CreatedAt, UpdatedAt time.Time
}

var (
	// ErrNotFound means no record exists for a key (never used, or expired).
	ErrNotFound = errors.New("outbox: no record for key")
	// ErrKeyConflict means a key was reused for an event of another type or payload.
	ErrKeyConflict = errors.New("outbox: idempotency key reused with a different event")
)

// Outbox sends events idempotently and forwards queued ones. It is safe for concurrent use.
type Outbox struct {
	js            jetstream.JetStream
	kv            jetstream.KeyValue
	stream        jetstream.Stream
	sender        Sender
	window        time.Duration
	failAfter     time.Duration
	retryDelay    time.Duration
	maxRetryDelay time.Duration
	now           func() time.Time
	log           *slog.Logger
	tracer        *tracing.Tracer
	onOutcome     func(State)
	ackWait       time.Duration
	lease         time.Duration
	concurrency   int
	orderByType   bool

	// Names of this outbox's resources: the constants, with Options.suffix.
	bucket, streamName, consumer string
	// queuePrefix starts the subject of every queued event; recordPrefix starts the subject
	// of every record, as the bucket's stream declares it.
	queuePrefix, recordPrefix string
}

// Open creates the outbox's bucket and stream on js, or checks the existing ones (see
// Storage), creates or updates its consumer, and returns an Outbox that sends through s.
func Open(ctx context.Context, js jetstream.JetStream, s Sender, opts Options) (*Outbox, error) {
	var errs []error
	if js == nil {
		errs = append(errs, errors.New("JetStream is required"))
	}
	if s == nil {
		errs = append(errs, errors.New("Sender is required"))
	}
	for name, d := range map[string]time.Duration{
		"IdempotencyWindow": opts.IdempotencyWindow, "FailAfter": opts.FailAfter,
		"RetryDelay": opts.RetryDelay, "MaxRetryDelay": opts.MaxRetryDelay,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	if opts.IdempotencyWindow > 0 && opts.IdempotencyWindow < time.Second {
		errs = append(errs, fmt.Errorf("idempotency window %v is under the 1s JetStream allows", opts.IdempotencyWindow))
	}
	if opts.Concurrency < 0 || opts.Concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d is not between 0 and %d", opts.Concurrency, maxConcurrency))
	}
	if opts.Replicas < 0 {
		errs = append(errs, fmt.Errorf("replicas %d is negative", opts.Replicas))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("outbox options: %w", err)
	}
	o := &Outbox{
		js:            js,
		sender:        s,
		window:        cmp.Or(opts.IdempotencyWindow, defaultWindow),
		failAfter:     cmp.Or(opts.FailAfter, defaultFailAfter),
		retryDelay:    cmp.Or(opts.RetryDelay, defaultRetryDelay),
		maxRetryDelay: cmp.Or(opts.MaxRetryDelay, defaultMaxRetryDelay),
		now:           opts.Now,
		log:           opts.Logger,
		tracer:        opts.Tracer,
		onOutcome:     opts.OnOutcome,
		concurrency:   cmp.Or(opts.Concurrency, 1),
		orderByType:   opts.OrderByType,
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.log = o.log.With("component", "outbox")
	o.ackWait = cmp.Or(opts.ackWait, ackWait)
	o.lease = cmp.Or(opts.lease, 2*o.ackWait)
	replicas := cmp.Or(opts.Replicas, 1)
	o.bucket, o.streamName, o.consumer = BucketName+opts.suffix, StreamName+opts.suffix, ConsumerName+opts.suffix
	o.queuePrefix = strings.TrimSuffix(queueSubjectPrefix, ".") + opts.suffix + "."

	var err error
	o.kv, err = natsconn.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:         o.bucket,
		Description:    "chronoshub-sidecar: outcome of each idempotency key of events sent to ChronosHub",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
		LimitMarkerTTL: markerTTL,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if o.recordPrefix, err = recordPrefix(ctx, o.kv); err != nil {
		return nil, fmt.Errorf("outbox: bucket %s: %w", o.bucket, err)
	}
	o.stream, err = natsconn.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:        o.streamName,
		Description: "chronoshub-sidecar: events queued for ChronosHub",
		Subjects:    []string{o.queuePrefix + "*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if _, err := o.ensureConsumer(ctx); err != nil {
		return nil, err
	}
	return o, nil
}

// ensureConsumer creates or updates the forwarder's consumer. Its settings
// are the code's, not the operator's: updating them on every start is what
// lets a new version change them.
func (o *Outbox) ensureConsumer(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := o.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       o.consumer,
		Description:   "chronoshub-sidecar: forwards queued events to ChronosHub",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.ackWait,
		MaxDeliver:    -1, // FailAfter ends an event, not a delivery count.
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: consumer %s: %w", o.consumer, err)
	}
	return cons, nil
}

// recordPrefix returns the subject prefix of kv's records, as its stream declares it
// ($KV.<bucket>.), for the updates KeyValue cannot make (see update).
func recordPrefix(ctx context.Context, kv jetstream.KeyValue) (string, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return "", err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return "", fmt.Errorf("unexpected status type %T", st)
	}
	subjects := bs.StreamInfo().Config.Subjects
	if len(subjects) != 1 || !strings.HasSuffix(subjects[0], ".>") {
		return "", fmt.Errorf("unexpected subjects %q of the bucket's stream", subjects)
	}
	return strings.TrimSuffix(subjects[0], ">"), nil
}

// Send sends an event synchronously. With an empty key it just sends. With a key, a
// remembered outcome is returned without calling ChronosHub (a Failed one with an error of
// its original class, matching chronoshub's sentinels), and an asynchronous event still
// Queued is returned as it is; otherwise the event is sent and its outcome remembered. While
// another Send of the same key is in flight, Send waits for its outcome until ctx ends.
func (o *Outbox) Send(ctx context.Context, eventType string, payload []byte, key string) (Record, error) {
	if key == "" {
		now := o.now()
		rec := stored{Type: eventType, State: Queued, CreatedAt: now}
		res, err := o.sender.SendEvent(ctx, eventType, payload)
		o.applyResult(&rec, res, err)
		if rec.State != Queued {
			o.outcome(rec.State)
		}
		if rec.State == Queued { // Not remembered, but this call is over.
			rec.State = Failed
		}
		return rec.record(), err
	}
	hash, sum := keyHash(key), payloadHash(eventType, payload)
	for {
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		now := o.now()
		claim := stored{Key: key, Type: eventType, PayloadHash: sum, State: Queued, Sending: true, CreatedAt: now, UpdatedAt: now}
		rev, err := o.create(ctx, hash, claim, claimDuration(ctx))
		if err == nil {
			return o.sendClaimed(ctx, hash, rev, claim, payload)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Record{}, fmt.Errorf("outbox: claim key: %w", err)
		}
		rec, _, err := o.load(ctx, hash)
		if errors.Is(err, ErrNotFound) {
			continue // It expired between our Create and Get.
		}
		if err != nil {
			return Record{}, err
		}
		if rec.PayloadHash != sum {
			return rec.record(), ErrKeyConflict
		}
		if rec.State != Queued || !rec.Sending {
			return rec.record(), rec.err()
		}
		done, err := o.awaitOutcome(ctx, hash, sum)
		switch {
		case err != nil:
			return rec.record(), err
		case done != nil:
			return done.record(), done.err()
		}
		// The other Send gave its claim up; try to take it.
	}
}

// sendClaimed sends an event whose key this call has claimed and records the outcome.
func (o *Outbox) sendClaimed(ctx context.Context, hash string, rev uint64, rec stored, payload []byte) (Record, error) {
	res, err := o.sender.SendEvent(ctx, rec.Type, payload)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	o.applyResult(&rec, res, err)
	rec.Sending = false
	if rec.State == Queued {
		// Unavailable or unauthorized: not a judgement of the event, so not remembered. Give
		// the key up so that a repeat (or a waiting Send) can try again.
		if perr := o.kv.Purge(wctx, hash, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL)); perr != nil {
			o.log.Warn("release idempotency key", "key_hash", hash, "err", perr)
		}
		rec.State = Failed
		return rec.record(), err
	}
	if _, werr := o.update(wctx, hash, rec, rev, o.window); werr != nil {
		// The caller still gets ChronosHub's answer; the claim expires on its own, after which
		// a repeat would post again.
		o.log.Error("record outcome; a repeat of this key may post again", "key_hash", hash, "state", rec.State, "err", werr)
	}
	o.outcome(rec.State)
	return rec.record(), err
}

// awaitOutcome waits for the synchronous Send holding hash to finish. It returns the record
// once it has an outcome (or became asynchronous), or nil when the claim was given up.
func (o *Outbox) awaitOutcome(ctx context.Context, hash, sum string) (*stored, error) {
	w, err := o.kv.Watch(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("outbox: watch key: %w", err)
	}
	defer w.Stop()
	seen := false
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("outbox: watch key: %w", ctx.Err())
			}
			if e == nil { // End of the initial values.
				if !seen {
					return nil, nil
				}
				continue
			}
			seen = true
			if e.Operation() != jetstream.KeyValuePut {
				return nil, nil
			}
			var rec stored
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return nil, fmt.Errorf("outbox: decode record: %w", err)
			}
			if rec.PayloadHash != sum {
				return &rec, ErrKeyConflict
			}
			if rec.State != Queued || !rec.Sending {
				return &rec, nil
			}
		}
	}
}

// Enqueue stores an event durably for Run to forward and returns its record, Queued. An
// empty key means a new UUID. A key already used returns its record as it is, or
// ErrKeyConflict when it was used for another event.
func (o *Outbox) Enqueue(ctx context.Context, eventType string, payload []byte, key string) (Record, error) {
	if key == "" {
		key = uuid.NewString()
	}
	hash, sum := keyHash(key), payloadHash(eventType, payload)
	now := o.now()
	rec := stored{Key: key, Type: eventType, PayloadHash: sum, State: Queued, Async: true, CreatedAt: now, UpdatedAt: now}
	rev, err := o.create(ctx, hash, rec, 0)
	if errors.Is(err, jetstream.ErrKeyExists) {
		existing, _, err := o.load(ctx, hash)
		if err != nil {
			return Record{}, err
		}
		if existing.PayloadHash != sum {
			return existing.record(), ErrKeyConflict
		}
		if existing.Async && existing.State == Queued {
			// The first Enqueue may have died between the record and the queue; repair.
			if err := o.ensureQueued(ctx, hash, existing, payload); err != nil {
				return Record{}, err
			}
		}
		return existing.record(), nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("outbox: store record: %w", err)
	}
	if err := o.publish(ctx, hash, rec, payload); err != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		if perr := o.kv.Purge(wctx, hash, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL)); perr != nil {
			o.log.Warn("drop record of unqueued event", "key_hash", hash, "err", perr)
		}
		return Record{}, err
	}
	return rec.record(), nil
}

// ensureQueued publishes the event of a Queued record again unless the queue holds it.
func (o *Outbox) ensureQueued(ctx context.Context, hash string, rec stored, payload []byte) error {
	_, err := o.stream.GetLastMsgForSubject(ctx, o.queuePrefix+hash)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("outbox: look up queued event: %w", err)
	}
	return o.publish(ctx, hash, rec, payload)
}

// queued is the body of a queue message.
type queued struct {
	Key         string    `json:"key"`
	Type        string    `json:"type"`
	PayloadHash string    `json:"payload_hash"`
	Payload     []byte    `json:"payload"` // base64 in JSON: byte-exact
	CreatedAt   time.Time `json:"created_at"`
	// The W3C trace context of the call that queued the event; empty without one.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// publish puts an event on the queue; the key's hash as message ID folds concurrent repeats.
func (o *Outbox) publish(ctx context.Context, hash string, rec stored, payload []byte) error {
	q := queued{Key: rec.Key, Type: rec.Type, PayloadHash: rec.PayloadHash, Payload: payload, CreatedAt: rec.CreatedAt}
	q.TraceParent, q.TraceState = o.tracer.TraceContext(ctx)
	body, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("outbox: encode event: %w", err)
	}
	if _, err := o.js.Publish(ctx, o.queuePrefix+hash, body, jetstream.WithMsgID(hash), jetstream.WithExpectStream(o.streamName)); err != nil {
		return fmt.Errorf("outbox: queue event: %w", err)
	}
	return nil
}

// Get returns the record of key, or ErrNotFound.
func (o *Outbox) Get(ctx context.Context, key string) (Record, error) {
	rec, _, err := o.load(ctx, keyHash(key))
	if err != nil {
		return Record{}, err
	}
	return rec.record(), nil
}

// Pending returns how many queued events wait to be forwarded, in flight included.
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	info, err := o.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox: stream info: %w", err)
	}
	return int(info.State.Msgs), nil
}

// Oldest returns when the oldest event still queued for forwarding was
// queued, zero when the queue is empty.
func (o *Outbox) Oldest(ctx context.Context) (time.Time, error) {
	info, err := o.stream.Info(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("outbox: stream info: %w", err)
	}
	if info.State.Msgs == 0 {
		return time.Time{}, nil
	}
	return info.State.FirstTime, nil
}

func (o *Outbox) outcome(s State) {
	if o.onOutcome != nil {
		o.onOutcome(s)
	}
}

// stored is a record as the bucket holds it.
type stored struct {
	Key         string          `json:"key"`
	Type        string          `json:"type"`
	PayloadHash string          `json:"payload_hash"`
	State       State           `json:"state"`
	Async       bool            `json:"async,omitempty"`
	Sending     bool            `json:"sending,omitempty"` // a synchronous Send holds the key
	EventID     string          `json:"event_id,omitempty"`
	Attempts    int             `json:"attempts,omitempty"`
	Error       string          `json:"error,omitempty"`
	StatusCode  int             `json:"status_code,omitempty"`
	Problem     json.RawMessage `json:"problem,omitempty"`
	Expired     bool            `json:"expired,omitempty"` // failed by FailAfter
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	// LeaseUntil, while in the future, says that a forwarder (of this
	// replica or another) is posting the queued event: a redelivery of its
	// message meanwhile waits instead of posting it a second time.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

func (s stored) record() Record {
	return Record{Key: s.Key, Type: s.Type, State: s.State, EventID: s.EventID, Attempts: s.Attempts,
		Error: s.Error, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// err rebuilds the error of a Failed record with its original class.
func (s stored) err() error {
	if s.State != Failed {
		return nil
	}
	var p *chronoshub.Problem
	if len(s.Problem) > 0 {
		p = &chronoshub.Problem{Raw: s.Problem}
		_ = json.Unmarshal(s.Problem, p) // A member of an unexpected type only empties a field.
	}
	err := chronoshub.NewError(s.Type, s.StatusCode, p, s.Attempts)
	if s.Expired {
		return fmt.Errorf("outbox: event %q not accepted in time: %w", s.Key, err)
	}
	return fmt.Errorf("outbox: event %q failed: %w", s.Key, err)
}

// applyResult folds a SendEvent outcome into rec: Accepted, Failed for an answer that
// judged the event, or still Queued for a transient failure.
func (o *Outbox) applyResult(rec *stored, res chronoshub.Result, err error) {
	rec.UpdatedAt = o.now()
	if err == nil {
		rec.State, rec.EventID, rec.Error = Accepted, res.EventID, ""
		rec.Attempts += res.Attempts
		return
	}
	rec.Error = err.Error()
	rec.Attempts++
	if ce, ok := errors.AsType[*chronoshub.Error](err); ok {
		rec.Attempts += ce.Attempts - 1
		rec.StatusCode = ce.StatusCode
		rec.Problem = nil
		if ce.Problem != nil {
			rec.Problem = ce.Problem.Raw
		}
	}
	if errors.Is(err, chronoshub.ErrRejected) || errors.Is(err, chronoshub.ErrInactiveAccount) || errors.Is(err, chronoshub.ErrInvalidResponse) {
		rec.State = Failed
	}
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func payloadHash(eventType string, payload []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s", len(eventType), eventType)
	h.Write(payload)
	return hex.EncodeToString(h.Sum(nil))
}

// claimDuration is how long a synchronous Send may hold its key.
func claimDuration(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl)+claimMargin, time.Second)
	}
	return claimTTL
}

// load reads the record under hash.
func (o *Outbox) load(ctx context.Context, hash string) (stored, uint64, error) {
	e, err := o.kv.Get(ctx, hash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return stored{}, 0, ErrNotFound
	}
	if err != nil {
		return stored{}, 0, fmt.Errorf("outbox: read record: %w", err)
	}
	var rec stored
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return stored{}, 0, fmt.Errorf("outbox: decode record: %w", err)
	}
	return rec, e.Revision(), nil
}

// create stores a new record under hash, expiring after ttl unless ttl is 0.
func (o *Outbox) create(ctx context.Context, hash string, rec stored, ttl time.Duration) (uint64, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(ttl))
	}
	return o.kv.Create(ctx, hash, body, opts...)
}

// errRevision means a record changed under a compare-and-set update.
var errRevision = errors.New("record changed concurrently")

// update replaces the record under hash if it is still at rev, expiring after ttl unless
// ttl is 0. KeyValue.Update cannot set a TTL (nats.go 1.55), so this publishes as Update
// does, with the same compare-and-set header, to the subject the bucket's stream declares
// (read in Open, not built), which is the same in a JetStream domain.
func (o *Outbox) update(ctx context.Context, hash string, rec stored, rev uint64, ttl time.Duration) (uint64, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	msg := &nats.Msg{Subject: o.recordPrefix + hash, Header: nats.Header{}, Data: body}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	ack, err := o.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return 0, fmt.Errorf("outbox: update record: %w", errRevision)
		}
		return 0, fmt.Errorf("outbox: update record: %w", err)
	}
	return ack.Sequence, nil
}
