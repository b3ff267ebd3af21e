package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/crossorigin"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"

	// The error details the service attaches (google.rpc.BadRequest,
	// ErrorInfo, ...) reach the gateway as Any; protojson can only render them
	// if their types are linked into the binary, as this import does.
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Limits of New, see Options.
const (
	// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes
	// is zero: 4 MiB, room for a SendEvent of the sidecar's default 1 MiB
	// payload limit (CHRONOSHUB_MAX_PAYLOAD_BYTES) many times over.
	DefaultMaxBodyBytes = 4 << 20
	// BodyOverheadBytes is the room a SendEvent body needs beyond its
	// payload, which it carries byte for byte: the type, the idempotency key
	// (128 characters, at most 6 bytes each when \u-escaped), field names,
	// punctuation and whitespace. A MaxBodyBytes of the service's payload
	// limit plus BodyOverheadBytes lets through every event the service
	// accepts.
	BodyOverheadBytes = 64 << 10
	// DefaultMaxMessageBytes is the gRPC message limit when
	// Options.MaxMessageBytes is zero: gRPC's largest (2 GiB - 1), so that
	// the limits of the gRPC server behind conn (its MaxRecvMsgSize and
	// MaxSendMsgSize) are the only ones, and REST carries every message gRPC
	// does. grpc-go's client default of 4 MiB would make events larger than
	// that, which the sidecar stores (webhooks of up to
	// CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES, 64 MiB at most), undeliverable over
	// REST, and a ListDeadLetters page is up to 1000 of them.
	DefaultMaxMessageBytes = math.MaxInt32
)

// Options are the optional settings of New.
type Options struct {
	// MaxBodyBytes caps request bodies; larger ones get 413 with a JSON error
	// and nothing is forwarded. Zero means DefaultMaxBodyBytes (4 MiB);
	// negative is an error. Set it to the service's payload limit plus
	// BodyOverheadBytes.
	MaxBodyBytes int64
	// MaxMessageBytes caps each gRPC message the gateway sends over conn or
	// receives from it (grpc.MaxCallSendMsgSize and grpc.MaxCallRecvMsgSize
	// on every call); a larger response fails the call with
	// ResourceExhausted. Zero means DefaultMaxMessageBytes (2 GiB - 1, no
	// limit beyond the server's); negative is an error.
	MaxMessageBytes int
	// Logger receives the gateway's records, with "component"="gateway":
	// refused requests and failed calls at Warn, server-side failures (HTTP
	// 5xx) at Error, calls the client abandoned at Debug. Nil means discard.
	Logger *slog.Logger
	// LoopbackHostOnly refuses (403) requests whose Host header names
	// anything but a loopback address or "localhost", so that a web page
	// cannot reach the local API through DNS rebinding. Set it when the
	// listener is loopback-only.
	LoopbackHostOnly bool
	// HeartbeatInterval is how long GET /v1/events:stream may stay silent
	// before a heartbeat line {"result":{}} is written. Zero means
	// DefaultHeartbeatInterval (15s); negative is an error.
	HeartbeatInterval time.Duration
}

// New returns the REST handler serving the HTTP rules of sidecar_http.yaml,
// forwarding to conn.
//
// Every call goes over conn, a client connection to the sidecar's own gRPC
// listener, so that it passes the server's interceptors. The handler does not
// own conn: close it after the HTTP server using the handler has shut down.
// ctx is handed to grpc-gateway's registration and does not bound the
// handler's lifetime; each call is bound by its HTTP request's context. The
// handler is safe for concurrent use.
func New(ctx context.Context, conn *grpc.ClientConn, opts Options) (http.Handler, error) {
	if conn == nil {
		return nil, errors.New("gateway: nil gRPC client connection")
	}
	maxBody := opts.MaxBodyBytes
	switch {
	case maxBody == 0:
		maxBody = DefaultMaxBodyBytes
	case maxBody < 0:
		return nil, fmt.Errorf("gateway: negative MaxBodyBytes %d", maxBody)
	}
	maxMessage := opts.MaxMessageBytes
	switch {
	case maxMessage == 0:
		maxMessage = DefaultMaxMessageBytes
	case maxMessage < 0:
		return nil, fmt.Errorf("gateway: negative MaxMessageBytes %d", maxMessage)
	}
	heartbeat := opts.HeartbeatInterval
	switch {
	case heartbeat == 0:
		heartbeat = DefaultHeartbeatInterval
	case heartbeat < 0:
		return nil, fmt.Errorf("gateway: negative HeartbeatInterval %s", heartbeat)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &gateway{log: logger.With("component", "gateway"), maxBody: maxBody, loopbackHost: opts.LoopbackHostOnly, heartbeat: heartbeat}

	g.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newJSONMarshaler()),
		runtime.WithErrorHandler(g.handleError),
		runtime.WithStreamErrorHandler(g.streamError),
		runtime.WithRoutingErrorHandler(g.routingError),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithForwardResponseOption(openStream),
		// The API is exactly the rules of sidecar_http.yaml: a form POST is not
		// turned into a GET (which would let a plain HTML form open a stream).
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
	)
	client := sidecarv1.NewEventServiceClient(callOptions{conn, []grpc.CallOption{
		grpc.MaxCallRecvMsgSize(maxMessage),
		grpc.MaxCallSendMsgSize(maxMessage),
	}})
	if err := sidecarv1.RegisterEventServiceHandlerClient(ctx, g.mux, client); err != nil {
		return nil, fmt.Errorf("gateway: register EventService: %w", err)
	}
	return g, nil
}

// callOptions is a client connection that adds opts to every call, before
// the caller's own.
type callOptions struct {
	conn grpc.ClientConnInterface
	opts []grpc.CallOption
}

func (c callOptions) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.conn.Invoke(ctx, method, args, reply, slices.Concat(c.opts, opts)...)
}

func (c callOptions) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.conn.NewStream(ctx, desc, method, slices.Concat(c.opts, opts)...)
}

// gateway is the handler New returns.
type gateway struct {
	mux          *runtime.ServeMux
	log          *slog.Logger
	maxBody      int64
	loopbackHost bool
	heartbeat    time.Duration
}

// ServeHTTP reads the whole request body, within the limit, before routing,
// so that an oversize body is refused on every route and never half-forwarded
// (grpc-gateway's generated handlers silently discard what they do not read).
//
// It also refuses what only a web browser would send to a local API, before
// anything is forwarded: with LoopbackHostOnly, a Host that is not loopback
// (DNS rebinding); any request another site or origin made (see
// crossorigin.Refusal), whatever its method, because a GET of the stream consumes
// events and an <img> or EventSource sends one without a CORS preflight; and
// a body that is not declared JSON (a form or text/plain POST).
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.loopbackHost && !crossorigin.LoopbackHost(r.Host) {
		g.writeError(w, r, &runtime.HTTPStatusError{
			HTTPStatus: http.StatusForbidden,
			Err:        status.Error(codes.PermissionDenied, "the API answers only requests for a loopback host (Host: 127.0.0.1, [::1] or localhost)"),
		})
		return
	}
	if why := crossorigin.Refusal(r); why != "" {
		g.writeError(w, r, &runtime.HTTPStatusError{
			HTTPStatus: http.StatusForbidden,
			Err:        status.Error(codes.PermissionDenied, "cross-origin requests are refused: "+why),
		})
		return
	}
	if r.ContentLength != 0 && r.Method != http.MethodGet && !isJSON(r.Header.Get("Content-Type")) {
		g.writeError(w, r, &runtime.HTTPStatusError{
			HTTPStatus: http.StatusUnsupportedMediaType,
			Err:        status.Error(codes.InvalidArgument, "Content-Type must be application/json"),
		})
		return
	}
	tooLarge := func() error {
		return &runtime.HTTPStatusError{
			HTTPStatus: http.StatusRequestEntityTooLarge,
			Err:        status.Errorf(codes.InvalidArgument, "request body larger than %d bytes", g.maxBody),
		}
	}
	if r.ContentLength > g.maxBody {
		g.writeError(w, r, tooLarge())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			g.writeError(w, r, tooLarge())
			return
		}
		g.writeError(w, r, status.Errorf(codes.InvalidArgument, "read request body: %v", err))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if isStream(r) {
		g.serveStream(w, r)
		return
	}
	g.mux.ServeHTTP(w, r)
}

// writeError answers r with err through the mux's error handler.
func (g *gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	_, outbound := runtime.MarshalerForRequest(g.mux, r)
	runtime.HTTPError(r.Context(), g.mux, outbound, w, r, err)
}

// handleError is the mux's error handler: every error response, whether from
// the gRPC call, request decoding or routing, is written here, as
// runtime.DefaultHTTPErrorHandler writes it (HTTP status per
// runtime.HTTPStatusFromCode unless err is a *runtime.HTTPStatusError, body
// the google.rpc.Status).
func (g *gateway) handleError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	httpStatus := 0
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		httpStatus = hse.HTTPStatus
	}
	st := status.Convert(err)
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	g.log.Log(ctx, logLevel(st, httpStatus), "REST call failed",
		"method", r.Method, "path", r.URL.Path, "status", httpStatus,
		"code", st.Code().String(), "error", st.Message())
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// streamError converts an error that ends a stream after its first message
// into the status of the final {"error":...} line.
func (g *gateway) streamError(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	method, _ := runtime.RPCMethod(ctx)
	g.log.Log(ctx, logLevel(st, runtime.HTTPStatusFromCode(st.Code())), "REST stream failed", "rpc", method, "code", st.Code().String(), "error", st.Message())
	return st
}

// shuttingDown is the ErrorInfo reason of the UNAVAILABLE that ends calls
// while the sidecar shuts down (grpcapi.ReasonShuttingDown; the gateway
// reaches the service only over gRPC).
const shuttingDown = "SIDECAR_SHUTTING_DOWN"

// logLevel is the level of a failed REST call's log line: Debug when the
// client went away, Info when the sidecar's shutdown ended it (the client
// reconnects: expected, not an error), Error for another 5xx, else Warn.
func logLevel(st *status.Status, httpStatus int) slog.Level {
	switch {
	case st.Code() == codes.Canceled:
		return slog.LevelDebug
	case st.Code() == codes.Unavailable && hasReason(st, shuttingDown):
		return slog.LevelInfo
	case httpStatus >= 500:
		return slog.LevelError
	}
	return slog.LevelWarn
}

// hasReason reports whether st carries an ErrorInfo with reason.
func hasReason(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == reason {
			return true
		}
	}
	return false
}

// routingError answers a request that matches no route: 404 for an unknown
// path, 405 (not grpc-gateway's default 501) for a known path with another
// method.
func (g *gateway) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch httpStatus {
	case http.StatusNotFound:
		err = status.Error(codes.NotFound, http.StatusText(httpStatus))
	case http.StatusMethodNotAllowed:
		err = &runtime.HTTPStatusError{
			HTTPStatus: httpStatus,
			Err:        status.Error(codes.Unimplemented, http.StatusText(httpStatus)),
		}
	case http.StatusBadRequest:
		err = status.Error(codes.InvalidArgument, http.StatusText(httpStatus))
	default:
		err = status.Error(codes.Internal, "unexpected routing error")
	}
	g.handleError(ctx, mux, m, w, r, err)
}

// isJSON reports whether a Content-Type is application/json (any
// parameters).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
