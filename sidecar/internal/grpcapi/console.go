package grpcapi

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// RecentWebhooks is what ListRecentWebhooks needs: the webhook listener's
// ring of recent outcomes.
type RecentWebhooks interface {
	List() []webhook.RecentWebhook
}

// ReplayEvents implements sidecarv1.EventServiceServer.
func (s *Service) ReplayEvents(ctx context.Context, req *sidecarv1.ReplayEventsRequest) (*sidecarv1.ReplayEventsResponse, error) {
	r := eventlog.ReplayRequest{
		Subscription: req.GetSubscription(),
		IDs:          req.GetEventIds(),
		Types:        req.GetEventTypes(),
		Limit:        int(min(req.GetPageSize(), eventlog.MaxReplayPage+1)),
		Cursor:       req.GetPageToken(),
	}
	byTime := req.GetStartTime() != nil || req.GetEndTime() != nil || req.GetPageToken() != ""
	switch {
	case len(r.IDs) > 0 && byTime:
		return nil, s.toStatus(invalid("event_ids", "give event ids or a time range (start_time, end_time), not both"))
	case len(r.IDs) == 0 && !byTime:
		return nil, s.toStatus(invalid("event_ids", "give event ids, or start_time (and optionally end_time)"))
	case len(r.IDs) > eventlog.MaxReplayIDs:
		return nil, s.toStatus(invalid("event_ids", "at most "+strconv.Itoa(eventlog.MaxReplayIDs)+" event ids per call"))
	case len(r.IDs) > 0 && req.GetPageSize() != 0:
		return nil, s.toStatus(invalid("page_size", "only with a time range"))
	case byTime && req.GetStartTime() == nil:
		return nil, s.toStatus(invalid("start_time", "required with end_time or page_token"))
	case req.GetPageSize() > eventlog.MaxReplayPage:
		return nil, s.toStatus(invalid("page_size", "must be between 0 and "+strconv.Itoa(eventlog.MaxReplayPage)))
	}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, s.toStatus(invalid("start_time", err.Error()))
		}
		r.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, s.toStatus(invalid("end_time", err.Error()))
		}
		r.End = t.AsTime()
		if !r.End.After(r.Start) {
			return nil, s.toStatus(invalid("end_time", "must be after start_time"))
		}
	}
	res, err := s.log.ReplayEvents(ctx, r)
	if err != nil {
		return nil, s.toStatus(err)
	}
	out := &sidecarv1.ReplayEventsResponse{
		EventIds:        res.IDs,
		UnknownEventIds: res.Unknown,
		NextPageToken:   res.Next,
		StartExpired:    res.Expired,
	}
	if !res.OldestRetained.IsZero() {
		out.OldestRetainedTime = timestamppb.New(res.OldestRetained)
	}
	return out, nil
}

var deliveryStates = map[string]sidecarv1.DeliveryState{
	eventlog.DeliveryPending:       sidecarv1.DeliveryState_DELIVERY_STATE_PENDING,
	eventlog.DeliveryDelivered:     sidecarv1.DeliveryState_DELIVERY_STATE_DELIVERED,
	eventlog.DeliveryAcked:         sidecarv1.DeliveryState_DELIVERY_STATE_ACKED,
	eventlog.DeliveryDeadLettered:  sidecarv1.DeliveryState_DELIVERY_STATE_DEAD_LETTERED,
	eventlog.DeliveryNotSubscribed: sidecarv1.DeliveryState_DELIVERY_STATE_NOT_SUBSCRIBED,
}

// GetEvent implements sidecarv1.EventServiceServer.
func (s *Service) GetEvent(ctx context.Context, req *sidecarv1.GetEventRequest) (*sidecarv1.GetEventResponse, error) {
	if req.GetEventId() == "" {
		return nil, s.toStatus(invalid("event_id", "required"))
	}
	e, ds, err := s.log.GetEvent(ctx, req.GetEventId(), req.GetSequence())
	if errors.Is(err, eventlog.ErrEventNotFound) {
		return nil, status.Error(codes.NotFound, "event "+strconv.Quote(req.GetEventId())+" is not in the log: never received, or past the retention window")
	}
	if err != nil {
		return nil, s.toStatus(err)
	}
	out := &sidecarv1.GetEventResponse{Event: toEvent(e)}
	for _, d := range ds {
		ed := &sidecarv1.EventDelivery{
			Subscription:     d.Subscription,
			State:            deliveryStates[d.State],
			Attempts:         uint32(max(d.Attempts, 0)),
			DeadLetterReason: d.DeadReason,
		}
		if !d.DeadAt.IsZero() {
			ed.DeadAt = timestamppb.New(d.DeadAt)
		}
		out.Deliveries = append(out.Deliveries, ed)
	}
	return out, nil
}

// ListRecentWebhooks implements sidecarv1.EventServiceServer.
func (s *Service) ListRecentWebhooks(context.Context, *sidecarv1.ListRecentWebhooksRequest) (*sidecarv1.ListRecentWebhooksResponse, error) {
	out := &sidecarv1.ListRecentWebhooksResponse{}
	if s.webhooks == nil {
		return out, nil
	}
	for _, w := range s.webhooks.List() {
		out.Webhooks = append(out.Webhooks, &sidecarv1.RecentWebhook{
			ReceivedAt: timestamppb.New(w.ReceivedAt),
			EventId:    w.EventID,
			EventType:  w.EventType,
			Outcome:    w.Outcome,
			Reason:     w.Reason,
			HttpStatus: uint32(max(w.Status, 0)),
		})
	}
	return out, nil
}

// ListSentEvents implements sidecarv1.EventServiceServer.
func (s *Service) ListSentEvents(ctx context.Context, req *sidecarv1.ListSentEventsRequest) (*sidecarv1.ListSentEventsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		return nil, s.toStatus(invalid("page_size", "must be between 0 and "+strconv.Itoa(maxPageSize)))
	}
	recs, err := s.out.List(ctx, size)
	if err != nil {
		return nil, s.toStatus(err)
	}
	out := &sidecarv1.ListSentEventsResponse{}
	for _, rec := range recs {
		out.SentEvents = append(out.SentEvents, toSentEvent(rec))
	}
	return out, nil
}

func toSentEvent(rec outbox.Record) *sidecarv1.SentEvent {
	return &sidecarv1.SentEvent{
		IdempotencyKey: rec.Key,
		Type:           rec.Type,
		State:          toState(rec.State),
		EventId:        rec.EventID,
		Attempts:       uint32(max(rec.Attempts, 0)),
		Error:          rec.Error,
		CreatedAt:      timestamppb.New(rec.CreatedAt),
		UpdatedAt:      timestamppb.New(rec.UpdatedAt),
	}
}
