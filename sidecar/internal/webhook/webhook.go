// Package webhook is the sidecar's webhook listener: the http.Handler that
// receives ChronosHub's outbound events.
//
// A request is checked in a fixed order, cheapest and least trusting first:
// path, method, content type and size; then the syntax of the ChronosHub
// headers; then the signature over the raw body bytes, before anything is
// parsed; then the freshness of X-Timestamp; then that the body is JSON.
// Only then is the event appended to the [Store], and the handler answers
// 2xx only once the store has it, so that ChronosHub retries anything that
// was not stored. A repeated event id answers 2xx and stores nothing new;
// event ids compare case-insensitively, as UUIDs do (RFC 9562).
//
// Nothing unauthenticated may hold much: the bodies being read share one
// byte budget ([Options.MaxInFlightBodyBytes]), beyond which requests are
// answered 503 without their body being read; every refused request closes
// its connection; and [Server.HTTPServer] builds the listener's
// http.Server, whose connection cap makes room by closing idle keep-alive
// connections rather than turning new clients away.
//
// No response body or log line contains a secret, a received or expected
// signature, or any header value of unbounded length.
package webhook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// Defaults for the zero values of [Options].
const (
	DefaultPath         = "/webhook"
	DefaultMaxBodyBytes = 1 << 20
	DefaultTolerance    = 5 * time.Minute
	// DefaultMaxInFlightBodyBytes keeps the bodies being read well inside
	// the 256 MiB memory limit of the Kubernetes example, next to the
	// sidecar's own 31-67 MiB.
	DefaultMaxInFlightBodyBytes = 64 << 20
	DefaultAppendTimeout        = 5 * time.Second
)

// Retry-After values, in seconds: retryAfter with every 503, retryAfterFull
// when the store is full, which takes the app or retention to resolve.
const (
	retryAfter     = "5"
	retryAfterFull = "30"
)

// ErrFull is what a [Store] returns, wrapped or not, when it refuses events
// because it is full. The handler answers 503 with a longer Retry-After and
// the reason "store_full".
var ErrFull = errors.New("event store full")

// Event is a verified webhook, ready to store.
type Event struct {
	// ID is ChronosHub's event id, the X-Event-Id header exactly as sent
	// (a UUID in the 8-4-4-4-12 form, in either case: it is what the
	// signature covered), to be delivered as is.
	ID string
	// DedupKey is ID in lower case, the canonical form of the UUID (RFC
	// 9562: UUIDs compare case-insensitively). A Store de-duplicates on
	// DedupKey, so that a retry whose id differs only in case is a
	// duplicate.
	DedupKey string
	// Type is the X-Event-Type header, e.g. "manuscript.submitted".
	Type string
	// Payload is the request body, byte for byte as signed.
	Payload []byte
	// SignedAt is the X-Timestamp header, in UTC.
	SignedAt time.Time
	// ReceivedAt is when the handler finished reading the body.
	ReceivedAt time.Time
	// TraceParent and TraceState are the W3C trace context of the request's
	// server span, to store with the event so that its delivery joins the
	// trace; empty when tracing is off.
	TraceParent, TraceState string
}

// Store is what the handler needs from the event log.
type Store interface {
	// Append stores e durably. It reports duplicate when an event with the
	// same DedupKey is already stored, in which case it stores nothing new.
	// An error means e may not be stored; the handler then answers 503 so
	// that ChronosHub retries (see [ErrFull]). Append is called
	// concurrently.
	//
	// ctx is detached from the request: a client hanging up does not cancel
	// it, only [Options.AppendTimeout] ends it. So an error from Append is
	// always the store's own (or its slowness), never the client's, and may
	// be counted as a store failure.
	Append(ctx context.Context, e Event) (duplicate bool, err error)
}

// Outcomes reported to an [Observer].
const (
	OutcomeStored      = "stored"      // OutcomeStored: the event was appended.
	OutcomeDuplicate   = "duplicate"   // OutcomeDuplicate: the event id was already stored.
	OutcomeRejected    = "rejected"    // OutcomeRejected: the request was answered 4xx.
	OutcomeUnavailable = "unavailable" // OutcomeUnavailable: the handler answered 503 (store error or full, body budget spent, or draining).
)

// Observer is told the outcome of every request, e.g. to count webhooks in
// a metric.
type Observer interface {
	// Webhook reports one request: outcome is one of the Outcome constants;
	// reason is "" for stored and duplicate events, otherwise a short fixed
	// label such as "bad_signature", "stale_timestamp" or "too_large" (never
	// derived from the request, so it is safe as a metric label); d is the
	// time the handler took. Webhook is called concurrently and should not
	// block.
	Webhook(outcome, reason string, d time.Duration)
}

// Options are the optional settings of [New].
type Options struct {
	// Path is the only path served; "" means [DefaultPath].
	Path string
	// MaxBodyBytes limits the request body; 0 or less means
	// [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// Tolerance is how far X-Timestamp may be from now, in either
	// direction; 0 or less means [DefaultTolerance].
	Tolerance time.Duration
	// MaxInFlightBodyBytes bounds the memory that all request bodies being
	// read and stored may hold together. A request with a Content-Length
	// reserves it before reading; a chunked one reserves as its buffer
	// grows. A request that does not fit is answered 503 with Retry-After,
	// its body unread. 0 or less means [DefaultMaxInFlightBodyBytes]; less
	// than MaxBodyBytes+1 means MaxBodyBytes+1, so that one largest body
	// always fits.
	MaxInFlightBodyBytes int64
	// AppendTimeout bounds [Store.Append], which runs detached from the
	// request so that a client hanging up does not interrupt it; 0 or less
	// means [DefaultAppendTimeout].
	AppendTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives Warn lines for rejected requests and Error lines for
	// store failures; nil discards them.
	Logger *slog.Logger
	// Observer is told the outcome of every request; nil means none.
	Observer Observer
	// Tracer starts a server span for every request, continuing the trace
	// of a traceparent header, and its context is stored with the event;
	// nil means no tracing.
	Tracer *tracing.Tracer
	// Recent keeps the outcome of every request for the console; nil
	// means none is kept.
	Recent *Recent
}

// Server is the webhook listener's http.Handler. It is safe for concurrent
// use.
type Server struct {
	store     Store
	secrets   func() [][]byte
	path      string
	maxBody   int64
	tolerance time.Duration
	budget    budget
	appendTO  time.Duration
	now       func() time.Time
	log       *slog.Logger
	obs       Observer
	tracer    *tracing.Tracer
	recent    *Recent
	draining  atomic.Bool
}

// New returns the webhook handler. Events that pass every check are
// appended to store. secrets is called once per request and returns the
// secrets currently accepted (the current one, plus the previous one during
// a rotation), so that reloaded secrets take effect without a restart. store
// and secrets must not be nil.
func New(store Store, secrets func() [][]byte, opts Options) *Server {
	if store == nil || secrets == nil {
		panic("webhook: New with nil store or secrets")
	}
	s := &Server{
		store:     store,
		secrets:   secrets,
		path:      opts.Path,
		maxBody:   opts.MaxBodyBytes,
		tolerance: opts.Tolerance,
		now:       opts.Now,
		log:       opts.Logger,
		obs:       opts.Observer,
		tracer:    opts.Tracer,
		recent:    opts.Recent,
	}
	if s.path == "" {
		s.path = DefaultPath
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.tolerance <= 0 {
		s.tolerance = DefaultTolerance
	}
	s.budget.max = opts.MaxInFlightBodyBytes
	if s.budget.max <= 0 {
		s.budget.max = DefaultMaxInFlightBodyBytes
	}
	s.budget.max = max(s.budget.max, s.maxBody+1)
	s.appendTO = positive(opts.AppendTimeout, DefaultAppendTimeout)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "webhook")
	return s
}

// BodyBytesInFlight returns the bytes of request bodies currently reserved
// against [Options.MaxInFlightBodyBytes], e.g. for a gauge.
func (s *Server) BodyBytesInFlight() int64 {
	return s.budget.used.Load()
}

// Drain makes the handler answer every later request with 503 and a
// Retry-After header, so that ChronosHub retries after a graceful shutdown.
// Requests already past this check finish normally. Drain cannot be undone.
func (s *Server) Drain() {
	s.draining.Store(true)
}

// failure is a fixed answer to a request the handler does not store. Its
// fields never contain request data.
type failure struct {
	status  int
	reason  string // Observer label and log attribute
	message string // the response's {"error": ...}
}

var (
	failDraining       = failure{http.StatusServiceUnavailable, "draining", "shutting down, retry later"}
	failStore          = failure{http.StatusServiceUnavailable, "store_error", "event could not be stored, retry later"}
	failStoreFull      = failure{http.StatusServiceUnavailable, "store_full", "event store is full, retry later"}
	failBusy           = failure{http.StatusServiceUnavailable, "busy", "too many requests in progress, retry later"}
	failNotFound       = failure{http.StatusNotFound, "not_found", "not found"}
	failMethod         = failure{http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed, use POST"}
	failContentType    = failure{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"}
	failTooLarge       = failure{http.StatusRequestEntityTooLarge, "too_large", "request body too large"}
	failRead           = failure{http.StatusBadRequest, "read_error", "could not read request body"}
	failRepeatedHeader = failure{http.StatusBadRequest, "repeated_header", "each of X-Event-Type, X-Event-Id, X-Timestamp and X-Hub-Signature-256 must appear exactly once"}
	failEventType      = failure{http.StatusBadRequest, "bad_event_type", "X-Event-Type is missing or not a valid event type"}
	failEventID        = failure{http.StatusBadRequest, "bad_event_id", "X-Event-Id is missing or not a UUID"}
	failTimestamp      = failure{http.StatusBadRequest, "bad_timestamp", "X-Timestamp is missing or not Unix seconds"}
	failMissingSig     = failure{http.StatusUnauthorized, "missing_signature", "missing X-Hub-Signature-256"}
	failMalformedSig   = failure{http.StatusUnauthorized, "malformed_signature", `malformed X-Hub-Signature-256, want "sha256=" and 64 lowercase hex digits`}
	failBadSig         = failure{http.StatusUnauthorized, "bad_signature", "signature does not match"}
	failInvalidUTF8    = failure{http.StatusBadRequest, "invalid_utf8", "body is not valid UTF-8"}
	failStaleTimestamp = failure{http.StatusUnauthorized, "stale_timestamp", "timestamp outside tolerance"}
	failInvalidJSON    = failure{http.StatusBadRequest, "invalid_json", "body is not valid JSON"}
)

// Success bodies.
const (
	bodyStored    = `{"status":"stored"}` + "\n"
	bodyDuplicate = `{"status":"duplicate"}` + "\n"
)

// ServeHTTP handles one webhook request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.tracer != nil {
		ctx, span := s.tracer.StartWebhook(r, s.path)
		sw := &statusWriter{ResponseWriter: w}
		defer func() { tracing.EndHTTPServer(span, sw.status) }()
		w, r = sw, r.WithContext(ctx)
	}
	var sw *statusWriter
	if s.recent != nil {
		sw = &statusWriter{ResponseWriter: w}
		w = sw
	}
	outcome, reason := s.serve(w, r)
	if s.obs != nil {
		s.obs.Webhook(outcome, reason, time.Since(start))
	}
	if s.recent != nil {
		s.recent.record(r, start, outcome, reason, cmp.Or(sw.status, http.StatusOK))
	}
}

// serve answers r and returns the outcome and reason for the Observer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) (outcome, reason string) {
	if len(r.TransferEncoding) > 0 {
		// net/http drops a Content-Length sent along with Transfer-Encoding
		// before the handler runs, so a smuggling attempt (RFC 9112 §6.1,
		// §11.2) looks like any chunked request here. Close the connection
		// after every chunked request, as §6.1 requires for that case: no
		// request hidden behind a chunked body is ever read.
		w.Header().Set("Connection", "close")
	}
	if s.draining.Load() {
		return s.fail(w, r, failDraining)
	}
	if r.URL.Path != s.path {
		return s.fail(w, r, failNotFound)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return s.fail(w, r, failMethod)
	}
	if !isJSON(r.Header) {
		return s.fail(w, r, failContentType)
	}
	if r.ContentLength > s.maxBody {
		return s.fail(w, r, failTooLarge)
	}
	body, held, err := s.readBody(w, r)
	defer s.budget.release(held)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return s.fail(w, r, failTooLarge)
		}
		if errors.Is(err, errBudget) {
			return s.fail(w, r, failBusy)
		}
		// The client went away or was too slow; the error says which and
		// holds no request data.
		return s.fail(w, r, failRead, slog.Any("err", err))
	}
	receivedAt := s.now()

	for _, h := range [...]string{signature.HeaderEventType, signature.HeaderEventID, signature.HeaderTimestamp, signature.HeaderSignature} {
		if len(r.Header[h]) > 1 {
			return s.fail(w, r, failRepeatedHeader)
		}
	}
	eventType := r.Header.Get(signature.HeaderEventType)
	if eventtype.Validate(eventType) != nil {
		return s.fail(w, r, failEventType)
	}
	eventID := r.Header.Get(signature.HeaderEventID)
	if !isUUID(eventID) {
		return s.fail(w, r, failEventID)
	}
	// From here on the type and id are known to be short and safe to log.
	event := []any{slog.String("event_id", eventID), slog.String("event_type", eventType)}
	timestamp := r.Header.Get(signature.HeaderTimestamp)
	signedAt, ok := parseTimestamp(timestamp)
	if !ok {
		return s.fail(w, r, failTimestamp, event...)
	}

	err = signature.Verify(s.secrets(), body, eventType, eventID, timestamp, r.Header.Get(signature.HeaderSignature))
	if err != nil {
		return s.fail(w, r, signatureFailure(err), event...)
	}
	if !s.fresh(signedAt, receivedAt) {
		return s.fail(w, r, failStaleTimestamp, append(event, slog.Int64("timestamp", signedAt.Unix()))...)
	}
	if !json.Valid(body) {
		return s.fail(w, r, failInvalidJSON, event...)
	}

	// The append is not the client's to interrupt: one that hangs up must
	// neither leave an event half stored nor count as a store failure.
	traceParent, traceState := s.tracer.TraceContext(r.Context())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.appendTO)
	defer cancel()
	duplicate, err := s.store.Append(ctx, Event{
		ID:          eventID,
		DedupKey:    strings.ToLower(eventID),
		Type:        eventType,
		Payload:     body,
		SignedAt:    signedAt,
		ReceivedAt:  receivedAt,
		TraceParent: traceParent,
		TraceState:  traceState,
	})
	if err != nil {
		f := failStore
		if errors.Is(err, ErrFull) {
			f = failStoreFull
		}
		// The operator must act on this one; ChronosHub retries meanwhile.
		s.log.ErrorContext(r.Context(), "store webhook event", append(event, slog.Any("err", err))...)
		writeError(w, f)
		return OutcomeUnavailable, f.reason
	}
	if duplicate {
		writeJSON(w, http.StatusOK, []byte(bodyDuplicate))
		return OutcomeDuplicate, ""
	}
	writeJSON(w, http.StatusOK, []byte(bodyStored))
	return OutcomeStored, ""
}

// fail answers r with f, logs it at Warn with attrs, and returns the outcome
// for the Observer.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, f failure, attrs ...any) (outcome, reason string) {
	outcome = OutcomeRejected
	if f.status == http.StatusServiceUnavailable {
		outcome = OutcomeUnavailable
	}
	args := append([]any{slog.Int("status", f.status), slog.String("reason", f.reason), slog.String("remote", r.RemoteAddr)}, attrs...)
	s.log.WarnContext(r.Context(), "webhook rejected", args...)
	// Read nothing more: net/http would otherwise read up to 256 KiB of an
	// unread body after the answer, holding the connection for as long as
	// the client takes to send it. ErrNotSupported (a test recorder) is
	// fine to ignore.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	writeError(w, f)
	return outcome, f.reason
}

// writeError is the one place a failure becomes an HTTP response: its status
// and {"error": message}, plus Retry-After on a 503. The connection is
// closed after it: a client that was refused keeps no connection slot, and
// an unread body is never parsed as a next request.
func writeError(w http.ResponseWriter, f failure) {
	h := w.Header()
	h.Set("Connection", "close")
	switch {
	case f == failStoreFull:
		h.Set("Retry-After", retryAfterFull)
	case f.status == http.StatusServiceUnavailable:
		h.Set("Retry-After", retryAfter)
	}
	b, err := json.Marshal(struct {
		Error string `json:"error"`
	}{f.message})
	if err != nil {
		panic(err) // unreachable: a struct of one string always marshals
	}
	writeJSON(w, f.status, append(b, '\n'))
}

// writeJSON writes a JSON response body.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) // an error means the client is gone; nothing to do
}

// signatureFailure maps an error from signature.Verify to its answer.
func signatureFailure(err error) failure {
	switch {
	case errors.Is(err, signature.ErrMissing):
		return failMissingSig
	case errors.Is(err, signature.ErrMalformed):
		return failMalformedSig
	case errors.Is(err, signature.ErrInvalidUTF8):
		return failInvalidUTF8
	default: // signature.ErrMismatch, and anything Verify may add later
		return failBadSig
	}
}

// fresh reports whether signedAt is within the tolerance of now, in either
// direction.
func (s *Server) fresh(signedAt, now time.Time) bool {
	d := now.Sub(signedAt) // saturates rather than overflows
	return -s.tolerance <= d && d <= s.tolerance
}

// isJSON reports whether the request has exactly one Content-Type, and it
// is application/json, with or without parameters.
func isJSON(h http.Header) bool {
	v := h.Values("Content-Type")
	if len(v) != 1 {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(v[0])
	return err == nil && mediaType == "application/json"
}

// isUUID reports whether s is a UUID in the canonical 8-4-4-4-12 hex form,
// of any version and in either case.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// maxTimestampDigits keeps the parsed seconds clear of int64 overflow in
// time arithmetic (time.Unix adds about 6e10 seconds internally).
const maxTimestampDigits = 18

// parseTimestamp parses X-Timestamp: Unix seconds, ASCII digits only.
func parseTimestamp(s string) (time.Time, bool) {
	if s == "" || len(s) > maxTimestampDigits {
		return time.Time{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, false
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}

// statusWriter remembers the status written, for the request's span.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
