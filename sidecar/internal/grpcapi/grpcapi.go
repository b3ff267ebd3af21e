// Package grpcapi implements the app-facing gRPC service,
// chronoshub.sidecar.v1.EventService, over the event log (events from
// ChronosHub) and the outbox (events to ChronosHub).
//
// It is the one place where the sidecar's errors become gRPC statuses (see
// toStatus): no RPC returns a raw error. It declares the small interfaces it
// needs from the event log, the outbox and the event checker, so that it
// depends on none of their implementations.
package grpcapi

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// EventLog is what the service needs of the event log.
type EventLog interface {
	Stream(ctx context.Context, req eventlog.StreamRequest, send func(eventlog.Event) error) error
	Settle(ctx context.Context, s eventlog.Settlement) (done, unknown []string, err error)
	ListDeadLetters(ctx context.Context, subscription string, from uint64, limit int) ([]eventlog.DeadLetter, uint64, error)
	ReplayDeadLetters(ctx context.Context, subscription string, ids []string, all bool) (replayed, unknown []string, err error)
	ListSubscriptions(ctx context.Context) ([]eventlog.Subscription, error)
	GetSubscription(ctx context.Context, name string) (eventlog.Subscription, error)
	UpdateSubscription(ctx context.Context, name string, types []string) (eventlog.Subscription, int, error)
	DeleteSubscription(ctx context.Context, name string) error
	ReplayEvents(ctx context.Context, req eventlog.ReplayRequest) (eventlog.ReplayResult, error)
	GetEvent(ctx context.Context, id string, seq uint64) (eventlog.Event, []eventlog.Delivery, error)
}

// Outbox is what the service needs of the outbox.
type Outbox interface {
	Send(ctx context.Context, eventType string, payload []byte, key string) (outbox.Record, error)
	Enqueue(ctx context.Context, eventType string, payload []byte, key string) (outbox.Record, error)
	Get(ctx context.Context, key string) (outbox.Record, error)
	List(ctx context.Context, limit int) ([]outbox.Record, error)
}

// Checker validates an outgoing event before anything leaves the pod; it
// returns nil or an *eventcheck.Error.
type Checker interface {
	Check(eventType string, payload []byte) error
}

// Limits on request fields.
const (
	maxAckIDs         = 1000
	maxIdempotencyKey = 128 // characters, as sidecar.proto documents
	defaultPageSize   = 100
	maxPageSize       = 1000
	maxRedeliverDelay = 24 * time.Hour
)

// Options configures a Service. Every zero value has a default.
type Options struct {
	// SendTimeout bounds a synchronous SendEvent whose caller set no
	// deadline. Zero means 30s.
	SendTimeout time.Duration
	// Logger receives errors an operator must act on. Nil discards.
	Logger *slog.Logger
	// Tracer starts a "receive <subscription>" span for every event handed
	// to the app, child of the event's stored trace context, and gives the
	// app that span's context in Event.traceparent. Nil means no spans; the
	// stored trace context is then passed on as it is.
	Tracer *tracing.Tracer
	// PushState returns the push delivery state of a subscription, or nil
	// for one that is not a push subscription. Nil means none is.
	PushState func(subscription string) *sidecarv1.PushState
	// Webhooks lists recent webhooks for ListRecentWebhooks. Nil means
	// the list is empty.
	Webhooks RecentWebhooks
}

// Service implements sidecarv1.EventServiceServer. It is safe for
// concurrent use.
type Service struct {
	sidecarv1.UnimplementedEventServiceServer

	log         EventLog
	out         Outbox
	check       Checker
	sendTimeout time.Duration
	logger      *slog.Logger
	tracer      *tracing.Tracer
	pushState   func(string) *sidecarv1.PushState
	webhooks    RecentWebhooks

	// stopStreams ends every open stream; see CancelStreams.
	streamsCtx  context.Context
	stopStreams context.CancelFunc

	mu      sync.Mutex
	streams int
	idle    chan struct{} // closed while streams == 0
}

// New returns the service. log, out and check are required.
func New(log EventLog, out Outbox, check Checker, opts Options) *Service {
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &Service{
		log: log, out: out, check: check,
		sendTimeout: opts.SendTimeout,
		logger:      opts.Logger,
		tracer:      opts.Tracer,
		pushState:   opts.PushState,
		webhooks:    opts.Webhooks,
		streamsCtx:  ctx, stopStreams: cancel,
		idle: idle,
	}
}

// CancelStreams ends every open stream at once, and every stream opened
// later; their unsettled events return to their subscriptions. Shutdown calls
// it when the grace period is over.
func (s *Service) CancelStreams() { s.stopStreams() }

// WaitStreams blocks until no stream is open or ctx ends.
func (s *Service) WaitStreams(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenStreams returns how many streams are open.
func (s *Service) OpenStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

func (s *Service) streamStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams == 0 {
		s.idle = make(chan struct{})
	}
	s.streams++
}

func (s *Service) streamEnded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams--
	if s.streams == 0 {
		close(s.idle)
	}
}

// Response header metadata of StreamEvents, sent when the stream is
// attached to its subscription and before any event. Over REST they are HTTP
// headers of the same names.
const (
	// HeaderSubscriptionCreated is "true" when the stream created its
	// subscription (a name seen for the first time, perhaps mistyped), and
	// "false" when the subscription existed.
	HeaderSubscriptionCreated = "chronoshub-subscription-created"
	// HeaderReplayEvents, with a created subscription, is how many stored
	// events it will deliver from its start position.
	HeaderReplayEvents = "chronoshub-replay-events"
)

// StreamEvents implements sidecarv1.EventServiceServer.
func (s *Service) StreamEvents(req *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
	s.streamStarted()
	defer s.streamEnded()
	sr, err := streamRequest(req)
	if err != nil {
		return s.toStatus(err)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(s.streamsCtx, cancel)()
	// Send the headers once the stream is attached, before any event, so
	// that a client (and the REST gateway, which then answers 200) knows the
	// stream is open, and a refused stream ends with its status alone.
	sr.Attached = func(a eventlog.Attachment) {
		md := metadata.Pairs(HeaderSubscriptionCreated, strconv.FormatBool(a.Created))
		if a.Created {
			md.Set(HeaderReplayEvents, strconv.FormatUint(a.Pending, 10))
		}
		if err := stream.SendHeader(md); err != nil {
			cancel() // the client is gone; Stream returns
		}
	}
	send := func(e eventlog.Event) error {
		return stream.Send(&sidecarv1.StreamEventsResponse{Event: toEvent(e)})
	}
	if s.tracer != nil {
		send = s.tracedSend(ctx, sr.Subscription, stream)
	}
	err = s.log.Stream(ctx, sr, send)
	if err != nil && s.streamsCtx.Err() != nil && stream.Context().Err() == nil {
		return errShuttingDown()
	}
	if cerr := stream.Context().Err(); err != nil && cerr != nil {
		// The caller's own deadline or cancellation ended the stream: say
		// so (toStatus reads a bare DeadlineExceeded as the store's time
		// limit, UNAVAILABLE).
		return status.FromContextError(cerr).Err()
	}
	return s.toStatus(err)
}

func streamRequest(req *sidecarv1.StreamEventsRequest) (eventlog.StreamRequest, error) {
	sr := eventlog.StreamRequest{
		Subscription: req.GetSubscription(),
		Types:        req.GetEventTypes(),
		MaxInFlight:  int(min(req.GetMaxInFlight(), 1<<20)),
		MaxEvents:    int(min(req.GetMaxEvents(), 1<<30)),
	}
	switch req.GetStartPosition() {
	case sidecarv1.StartPosition_START_POSITION_UNSPECIFIED, sidecarv1.StartPosition_START_POSITION_OLDEST:
		sr.Start = eventlog.StartOldest
		if req.GetStartTime() != nil {
			return sr, invalid("start_time", "only allowed with start_position START_POSITION_TIME")
		}
	case sidecarv1.StartPosition_START_POSITION_NOW:
		sr.Start = eventlog.StartNow
		if req.GetStartTime() != nil {
			return sr, invalid("start_time", "only allowed with start_position START_POSITION_TIME")
		}
	case sidecarv1.StartPosition_START_POSITION_TIME:
		sr.Start = eventlog.StartTime
		if req.GetStartTime() == nil {
			return sr, invalid("start_time", "required with start_position START_POSITION_TIME")
		}
		if err := req.GetStartTime().CheckValid(); err != nil {
			return sr, invalid("start_time", err.Error())
		}
		sr.StartTime = req.GetStartTime().AsTime()
	default:
		return sr, invalid("start_position", "unknown value "+strconv.Itoa(int(req.GetStartPosition())))
	}
	return sr, nil
}

func toEvent(e eventlog.Event) *sidecarv1.Event {
	return &sidecarv1.Event{
		Id:          e.ID,
		Type:        e.Type,
		Payload:     e.Payload,
		SignedAt:    timestamppb.New(e.SignedAt),
		ReceivedAt:  timestamppb.New(e.ReceivedAt),
		Attempt:     uint32(e.Attempt),
		Sequence:    e.Sequence,
		Traceparent: e.TraceParent,
		Tracestate:  e.TraceState,
		Replay:      e.Replay,
	}
}

// tracedSend returns the send function of a stream on subscription with
// tracing on: each event is sent inside its "receive" span, and carries that
// span's trace context to the app.
func (s *Service) tracedSend(ctx context.Context, subscription string, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) func(eventlog.Event) error {
	if subscription == "" {
		subscription = eventlog.DefaultSubscription
	}
	return func(e eventlog.Event) error {
		sctx, span := s.tracer.StartReceive(ctx, subscription, e.ID, e.Type, e.Attempt, e.TraceParent, e.TraceState)
		ev := toEvent(e)
		ev.Traceparent, ev.Tracestate = s.tracer.TraceContext(sctx)
		err := stream.Send(&sidecarv1.StreamEventsResponse{Event: ev})
		tracing.End(span, err)
		return err
	}
}

// AckEvents implements sidecarv1.EventServiceServer.
func (s *Service) AckEvents(ctx context.Context, req *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error) {
	ids := req.GetEventIds()
	switch {
	case len(ids) == 0:
		return nil, s.toStatus(invalid("event_ids", "at least one event id is required"))
	case len(ids) > maxAckIDs:
		return nil, s.toStatus(invalid("event_ids", "at most "+strconv.Itoa(maxAckIDs)+" event ids per call"))
	}
	var delay time.Duration
	if d := req.GetRedeliverDelay(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, s.toStatus(invalid("redeliver_delay", err.Error()))
		}
		delay = d.AsDuration()
		switch {
		case !req.GetReject():
			return nil, s.toStatus(invalid("redeliver_delay", "only allowed with reject"))
		case delay < 0 || delay > maxRedeliverDelay:
			return nil, s.toStatus(invalid("redeliver_delay", "must be between 0s and "+maxRedeliverDelay.String()))
		}
	}
	done, unknown, err := s.log.Settle(ctx, eventlog.Settlement{
		Subscription: req.GetSubscription(),
		IDs:          ids,
		Reject:       req.GetReject(),
		Delay:        delay,
	})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.AckEventsResponse{EventIds: done, UnknownEventIds: unknown}, nil
}

// SendEvent implements sidecarv1.EventServiceServer.
func (s *Service) SendEvent(ctx context.Context, req *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
	if err := checkKey(req.GetIdempotencyKey()); err != nil {
		return nil, s.toStatus(err)
	}
	if err := s.check.Check(req.GetType(), req.GetPayload()); err != nil {
		return nil, s.toStatus(err)
	}
	var (
		rec outbox.Record
		err error
	)
	if req.GetAsync() {
		rec, err = s.out.Enqueue(ctx, req.GetType(), req.GetPayload(), req.GetIdempotencyKey())
	} else {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.sendTimeout)
			defer cancel()
		}
		rec, err = s.out.Send(ctx, req.GetType(), req.GetPayload(), req.GetIdempotencyKey())
	}
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.SendEventResponse{
		EventId:        rec.EventID,
		State:          toState(rec.State),
		IdempotencyKey: rec.Key,
	}, nil
}

// checkKey enforces what sidecar.proto documents for an idempotency key: up
// to 128 printable ASCII characters (space to tilde).
func checkKey(key string) error {
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return invalid("idempotency_key", "must be printable ASCII (space to ~)")
		}
	}
	if len(key) > maxIdempotencyKey {
		return invalid("idempotency_key", "at most "+strconv.Itoa(maxIdempotencyKey)+" characters")
	}
	return nil
}

func toState(st outbox.State) sidecarv1.SentEventState {
	switch st {
	case outbox.Queued:
		return sidecarv1.SentEventState_SENT_EVENT_STATE_QUEUED
	case outbox.Accepted:
		return sidecarv1.SentEventState_SENT_EVENT_STATE_ACCEPTED
	case outbox.Failed:
		return sidecarv1.SentEventState_SENT_EVENT_STATE_FAILED
	}
	return sidecarv1.SentEventState_SENT_EVENT_STATE_UNSPECIFIED
}

// GetSentEvent implements sidecarv1.EventServiceServer.
func (s *Service) GetSentEvent(ctx context.Context, req *sidecarv1.GetSentEventRequest) (*sidecarv1.GetSentEventResponse, error) {
	key := req.GetIdempotencyKey()
	if key == "" {
		return nil, s.toStatus(invalid("idempotency_key", "required"))
	}
	if err := checkKey(key); err != nil {
		return nil, s.toStatus(err)
	}
	rec, err := s.out.Get(ctx, key)
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.GetSentEventResponse{SentEvent: &sidecarv1.SentEvent{
		IdempotencyKey: rec.Key,
		Type:           rec.Type,
		State:          toState(rec.State),
		EventId:        rec.EventID,
		Attempts:       uint32(rec.Attempts),
		Error:          rec.Error,
		CreatedAt:      timestamppb.New(rec.CreatedAt),
		UpdatedAt:      timestamppb.New(rec.UpdatedAt),
	}}, nil
}

// ListDeadLetters implements sidecarv1.EventServiceServer.
func (s *Service) ListDeadLetters(ctx context.Context, req *sidecarv1.ListDeadLettersRequest) (*sidecarv1.ListDeadLettersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size < 0 || size > maxPageSize:
		return nil, s.toStatus(invalid("page_size", "must be between 0 and "+strconv.Itoa(maxPageSize)))
	}
	var from uint64
	if tok := req.GetPageToken(); tok != "" {
		var err error
		if from, err = strconv.ParseUint(tok, 10, 64); err != nil || from == 0 {
			return nil, s.toStatus(invalid("page_token", "not a token returned by ListDeadLetters"))
		}
	}
	dead, next, err := s.log.ListDeadLetters(ctx, req.GetSubscription(), from, size)
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp := &sidecarv1.ListDeadLettersResponse{}
	for _, d := range dead {
		resp.DeadLetters = append(resp.DeadLetters, &sidecarv1.DeadLetter{Event: toEvent(d.Event), DeadAt: timestamppb.New(d.DeadAt), Reason: d.Reason, Detail: d.Detail})
	}
	if next != 0 {
		resp.NextPageToken = strconv.FormatUint(next, 10)
	}
	return resp, nil
}

// ReplayDeadLetters implements sidecarv1.EventServiceServer.
func (s *Service) ReplayDeadLetters(ctx context.Context, req *sidecarv1.ReplayDeadLettersRequest) (*sidecarv1.ReplayDeadLettersResponse, error) {
	switch {
	case req.GetAll() && len(req.GetEventIds()) > 0:
		return nil, s.toStatus(invalid("event_ids", "give event ids or all, not both"))
	case !req.GetAll() && len(req.GetEventIds()) == 0:
		return nil, s.toStatus(invalid("event_ids", "give event ids, or all to replay every dead letter"))
	case len(req.GetEventIds()) > maxAckIDs:
		return nil, s.toStatus(invalid("event_ids", "at most "+strconv.Itoa(maxAckIDs)+" event ids per call"))
	}
	replayed, unknown, err := s.log.ReplayDeadLetters(ctx, req.GetSubscription(), req.GetEventIds(), req.GetAll())
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.ReplayDeadLettersResponse{EventIds: replayed, UnknownEventIds: unknown}, nil
}

// subscription describes sub, with its push state.
func (s *Service) subscription(sub eventlog.Subscription) *sidecarv1.Subscription {
	out := toSubscription(sub)
	if s.pushState != nil {
		out.Push = s.pushState(sub.Name)
	}
	return out
}

func toSubscription(sub eventlog.Subscription) *sidecarv1.Subscription {
	out := &sidecarv1.Subscription{
		Name:            sub.Name,
		EventTypes:      sub.Types,
		AckedSequence:   sub.AckFloor,
		PendingCount:    sub.Pending,
		UnackedCount:    uint64(max(sub.Unacked, 0)),
		OpenStreams:     uint32(max(sub.OpenStreams, 0)),
		DeadLetterCount: sub.DeadLetters,
		CreateTime:      timestamppb.New(sub.Created),
	}
	if !sub.OldestUnacked.IsZero() {
		out.OldestUnackedTime = timestamppb.New(sub.OldestUnacked)
	}
	return out
}

// ListSubscriptions implements sidecarv1.EventServiceServer.
func (s *Service) ListSubscriptions(ctx context.Context, _ *sidecarv1.ListSubscriptionsRequest) (*sidecarv1.ListSubscriptionsResponse, error) {
	subs, err := s.log.ListSubscriptions(ctx)
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp := &sidecarv1.ListSubscriptionsResponse{}
	for _, sub := range subs {
		resp.Subscriptions = append(resp.Subscriptions, s.subscription(sub))
	}
	return resp, nil
}

// GetSubscription implements sidecarv1.EventServiceServer.
func (s *Service) GetSubscription(ctx context.Context, req *sidecarv1.GetSubscriptionRequest) (*sidecarv1.GetSubscriptionResponse, error) {
	sub, err := s.log.GetSubscription(ctx, req.GetSubscription())
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.GetSubscriptionResponse{Subscription: s.subscription(sub)}, nil
}

// UpdateSubscription implements sidecarv1.EventServiceServer.
func (s *Service) UpdateSubscription(ctx context.Context, req *sidecarv1.UpdateSubscriptionRequest) (*sidecarv1.UpdateSubscriptionResponse, error) {
	sub, moved, err := s.log.UpdateSubscription(ctx, req.GetSubscription(), req.GetEventTypes())
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.UpdateSubscriptionResponse{Subscription: s.subscription(sub), DeadLetteredCount: uint64(max(moved, 0))}, nil
}

// DeleteSubscription implements sidecarv1.EventServiceServer.
func (s *Service) DeleteSubscription(ctx context.Context, req *sidecarv1.DeleteSubscriptionRequest) (*sidecarv1.DeleteSubscriptionResponse, error) {
	if err := s.log.DeleteSubscription(ctx, req.GetSubscription()); err != nil {
		return nil, s.toStatus(err)
	}
	return &sidecarv1.DeleteSubscriptionResponse{}, nil
}
