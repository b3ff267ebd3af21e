package grpcapi

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
)

// Domain is the ErrorInfo domain of the service's errors.
const Domain = "chronoshub-sidecar"

// ErrorInfo reasons, stable for apps to branch on.
const (
	ReasonCredentialsRejected = "CHRONOSHUB_CREDENTIALS_REJECTED"
	ReasonAccountInactive     = "CHRONOSHUB_ACCOUNT_INACTIVE"
	ReasonEventRejected       = "CHRONOSHUB_EVENT_REJECTED"
	ReasonUnavailable         = "CHRONOSHUB_UNAVAILABLE"
	ReasonInvalidResponse     = "CHRONOSHUB_INVALID_RESPONSE"
	ReasonKeyConflict         = "IDEMPOTENCY_KEY_CONFLICT"
	// ReasonShuttingDown is the UNAVAILABLE of a call or stream that the
	// sidecar ended because it is shutting down: reconnect (to it once it
	// is back, or to another replica). The REST gateway logs it at Info, as
	// an expected event.
	ReasonShuttingDown = "SIDECAR_SHUTTING_DOWN"
)

// errShuttingDown is the status of a call the sidecar's shutdown ended.
func errShuttingDown() error {
	return withDetails(codes.Unavailable, "sidecar is shutting down; reconnect",
		&errdetails.ErrorInfo{Reason: ReasonShuttingDown, Domain: Domain})
}

// fieldError is a request field that failed validation.
type fieldError struct{ field, description string }

func (e *fieldError) Error() string { return e.field + ": " + e.description }

func invalid(field, description string) error { return &fieldError{field, description} }

// toStatus translates an error of the layers below into the RPC's status;
// every RPC returns through it. Internal errors are logged and reported
// without their text.
func (s *Service) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		fe  *fieldError
		ce  *eventcheck.Error
		che *chronoshub.Error
	)
	switch {
	case errors.As(err, &fe):
		return withDetails(codes.InvalidArgument, "invalid request: "+fe.Error(),
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.field, Description: fe.description}}})
	case errors.As(err, &ce):
		br := &errdetails.BadRequest{}
		for _, v := range ce.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		}
		return withDetails(codes.InvalidArgument, err.Error(), br)
	case errors.As(err, &che):
		return chronoshubStatus(che)
	case errors.Is(err, outbox.ErrKeyConflict):
		return withDetails(codes.AlreadyExists, "idempotency key already used for a different event",
			&errdetails.ErrorInfo{Reason: ReasonKeyConflict, Domain: Domain})
	case errors.Is(err, outbox.ErrNotFound):
		return status.Error(codes.NotFound, "no event sent with this idempotency key within the idempotency window")
	case errors.Is(err, eventlog.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, eventlog.ErrFilterMismatch):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, eventlog.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, eventlog.ErrLimit):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, eventlog.ErrClosed):
		return errShuttingDown()
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded), storeUnavailable(err):
		// The store's own time limits (a cluster electing a leader, a node
		// that does not answer) end as DeadlineExceeded although the caller
		// may have set none: UNAVAILABLE tells the app to retry. A caller
		// whose own deadline passed sees DEADLINE_EXCEEDED from its gRPC
		// library either way.
		s.logger.Warn("event store unavailable", "err", err)
		return status.Error(codes.Unavailable, "the event store is unavailable or did not answer in time; retry")
	}
	s.logger.Error("internal error", "err", err)
	return status.Error(codes.Internal, "internal error; see the sidecar's log")
}

// storeUnavailable reports whether err says that the NATS JetStream store
// could not be reached or could not serve the request for now: no
// responders, a timeout, a lost connection, or a server-side (5xx) answer,
// from the event log or a key-value bucket alike.
func storeUnavailable(err error) bool {
	for _, e := range []error{
		nats.ErrNoResponders, nats.ErrTimeout, nats.ErrConnectionClosed, nats.ErrConnectionDraining,
		nats.ErrDisconnected, nats.ErrConnectionReconnecting, nats.ErrNoServers, nats.ErrStaleConnection,
		jetstream.ErrNoStreamResponse, jetstream.ErrJetStreamNotEnabled, jetstream.ErrJetStreamNotEnabledForAccount,
		jetstream.ErrServerShutdown,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code >= 500
}

// chronoshubStatus maps ChronosHub's answer to a status carrying its Problem
// Details: the field errors as BadRequest, the rest in ErrorInfo metadata.
// The error text never holds the API key (chronoshub redacts it).
func chronoshubStatus(e *chronoshub.Error) error {
	info := &errdetails.ErrorInfo{Domain: Domain, Metadata: map[string]string{}}
	if e.StatusCode != 0 {
		info.Metadata["http_status"] = strconv.Itoa(e.StatusCode)
	}
	info.Metadata["attempts"] = strconv.Itoa(e.Attempts)
	var br *errdetails.BadRequest
	if p := e.Problem; p != nil {
		for k, v := range map[string]string{"problem_type": p.Type, "problem_title": p.Title, "problem_detail": p.Detail, "problem": string(p.Raw)} {
			if v != "" {
				info.Metadata[k] = v
			}
		}
		if p.Status != 0 {
			info.Metadata["problem_status"] = strconv.Itoa(p.Status)
		}
		if len(p.Errors) > 0 {
			br = &errdetails.BadRequest{}
			for _, field := range slices.Sorted(maps.Keys(p.Errors)) {
				for _, m := range p.Errors[field] {
					br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: field, Description: m})
				}
			}
		}
	}
	var code codes.Code
	msg := e.Error()
	switch {
	case errors.Is(e, chronoshub.ErrUnauthorized):
		code, info.Reason = codes.FailedPrecondition, ReasonCredentialsRejected
		msg = "ChronosHub rejected the sidecar's credentials (its API key); the operator must fix CHRONOSHUB_API_KEY or CHRONOSHUB_API_KEY_FILE: " + msg
	case errors.Is(e, chronoshub.ErrInactiveAccount):
		code, info.Reason = codes.FailedPrecondition, ReasonAccountInactive
	case errors.Is(e, chronoshub.ErrRejected):
		code, info.Reason = codes.InvalidArgument, ReasonEventRejected
	case errors.Is(e, chronoshub.ErrInvalidResponse):
		// ChronosHub may have accepted the event: retrying could duplicate it.
		code, info.Reason = codes.Unknown, ReasonInvalidResponse
	default:
		code, info.Reason = codes.Unavailable, ReasonUnavailable
	}
	if br != nil {
		return withDetails(code, msg, info, br)
	}
	return withDetails(code, msg, info)
}

func withDetails(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	if withD, err := st.WithDetails(details...); err == nil {
		st = withD
	}
	return st.Err()
}
