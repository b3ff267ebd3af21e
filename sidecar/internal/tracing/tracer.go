package tracing

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// instrumentationName names the sidecar's own tracer.
const instrumentationName = "github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"

// MessagingSystem is the messaging.system of the spans of events handed to
// the app: the sidecar's own event API.
const MessagingSystem = "chronoshub"

// Tracer starts the sidecar's spans and carries W3C Trace Context across
// its edges. A nil *Tracer is tracing off: every method then does nothing
// and the wrappers return what they are given. A Tracer from [Propagating]
// records nothing and only carries the trace context. It is safe for
// concurrent use.
type Tracer struct {
	provider trace.TracerProvider // nil: propagation only
	tracer   trace.Tracer         // nil: propagation only
	prop     propagation.TraceContext
}

// New returns a Tracer that starts its spans with provider, e.g. an SDK
// TracerProvider, or a no-op one to measure the instrumentation alone.
func New(provider trace.TracerProvider) *Tracer {
	return &Tracer{provider: provider, tracer: provider.Tracer(instrumentationName)}
}

// Propagating returns a Tracer that starts no span and carries W3C Trace
// Context across the sidecar as a service mesh does: a webhook's
// traceparent and tracestate are stored with its event and handed to the
// app with it; an app's (gRPC metadata, or the REST header) reach
// ChronosHub on the SendEvent it makes, synchronous or async. It is what
// [Setup] returns when no exporter is configured.
func Propagating() *Tracer { return &Tracer{} }

// recording reports whether t starts spans.
func (t *Tracer) recording() bool { return t != nil && t.tracer != nil }

// TracerProvider returns the provider t was made with, or nil.
func (t *Tracer) TracerProvider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Headers names of W3C Trace Context.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// StartWebhook starts the server span of webhook request r. route is the
// handler's path; it names the span ("POST /webhook") when r asked for it.
// End the span with [EndHTTPServer].
//
// The webhook listener is public and the request not yet authenticated, so
// the span is the root of a new trace, linked to the trace of r's
// traceparent header when it has a valid one, never its child (as
// OpenTelemetry advises for public endpoints): an unauthenticated caller
// cannot attach the sidecar's spans to a trace of its choosing. A
// propagating Tracer starts no span: it returns r's context with the trace
// context of r's headers, which is then stored with the event.
func (t *Tracer) StartWebhook(r *http.Request, route string) (context.Context, trace.Span) {
	ctx := r.Context()
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	remote := ctx
	if r.Header.Get(HeaderTraceParent) != "" {
		remote = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	if !t.recording() {
		return remote, trace.SpanFromContext(remote)
	}
	method := requestMethod(r.Method)
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		attribute.String("http.request.method", method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("url.scheme", scheme(r)),
	)
	name := method
	if method == "_OTHER" {
		name = "HTTP"
		attrs = append(attrs, attribute.String("http.request.method_original", r.Method))
	}
	if r.URL.Path == route {
		name += " " + route
		attrs = append(attrs, attribute.String("http.route", route))
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, attribute.String("client.address", host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, attribute.String("user_agent.original", ua))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...), trace.WithNewRoot()}
	if sc := trace.SpanContextFromContext(remote); sc.IsRemote() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return t.tracer.Start(ctx, name, opts...)
}

// EndHTTPServer records status on a span from StartWebhook and ends it;
// status 0 (nothing written) means 200. A 5xx marks the span as failed (a
// 4xx is the client's error, not the server's, in OpenTelemetry's HTTP
// conventions).
func EndHTTPServer(span trace.Span, status int) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// End ends span, marking it failed with err's text when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// StartReceive starts the span of one event handed to the app on a
// subscription: a consumer span "receive <subscription>" whose parent is the
// trace context stored with the event (traceparent and tracestate, W3C
// format). An event without one starts a new trace, linked to the span
// already in ctx (the stream's), if any. End the span when the event has
// been sent; its context, from [Tracer.TraceContext], goes to the app.
//
// A propagating Tracer starts no span: the context it returns carries the
// stored trace context as it is, or none.
func (t *Tracer) StartReceive(ctx context.Context, subscription, eventID, eventType string, attempt int, traceparent, tracestate string) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	if !t.recording() {
		stored := t.ContextWithTraceContext(ctx, traceparent, tracestate)
		if !trace.SpanContextFromContext(stored).IsRemote() {
			// Not the stream's own context: the event had none.
			stored = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
		}
		return stored, trace.SpanFromContext(stored)
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", MessagingSystem),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("messaging.operation.name", "receive"),
			attribute.String("messaging.destination.name", subscription),
			attribute.String("messaging.message.id", eventID),
			attribute.String("chronoshub.event.type", eventType),
			attribute.Int("chronoshub.event.attempt", attempt),
		),
	}
	parent := t.ContextWithTraceContext(ctx, traceparent, tracestate)
	if !trace.SpanContextFromContext(parent).IsRemote() {
		opts = append(opts, trace.WithNewRoot())
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	return t.tracer.Start(parent, "receive "+subscription, opts...)
}

// ContextWithTraceContext returns ctx with the remote span context that
// traceparent and tracestate (W3C header values, e.g. an event's stored
// fields) describe, or ctx unchanged when traceparent is empty or invalid.
func (t *Tracer) ContextWithTraceContext(ctx context.Context, traceparent, tracestate string) context.Context {
	if t == nil || traceparent == "" {
		return ctx
	}
	return t.prop.Extract(ctx, &pair{parent: traceparent, state: tracestate})
}

// TraceContext returns the W3C traceparent and tracestate values of the span
// in ctx, or "" when there is none (or t is nil).
func (t *Tracer) TraceContext(ctx context.Context) (traceparent, tracestate string) {
	if t == nil {
		return "", ""
	}
	var p pair
	t.prop.Inject(ctx, &p)
	return p.parent, p.state
}

// ContinueHTTP returns h with the trace context of each request's
// traceparent header put in the request's context, so that a gRPC client
// call made from it (the REST gateway's, over a connection dialled with
// [Tracer.GRPCDialOptions]) continues the caller's trace. It starts no span.
// With a nil t it returns h.
func (t *Tracer) ContinueHTTP(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderTraceParent) != "" {
			r = r.WithContext(t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		h.ServeHTTP(w, r)
	})
}

// GRPCServerOptions returns the options that give a gRPC server otelgrpc's
// server spans (rpc.system.name "grpc", rpc.method), continuing the trace of
// each call's traceparent metadata. Health checks are not traced. A
// propagating Tracer's options put the metadata's trace context in each
// call's context and start no span. With a nil t it returns nil.
func (t *Tracer) GRPCServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	if !t.recording() {
		return []grpc.ServerOption{
			grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				return handler(t.fromMetadata(ctx), req)
			}),
			grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
				return handler(srv, &contextStream{ServerStream: ss, ctx: t.fromMetadata(ss.Context())})
			}),
		}
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(t.prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(notHealth),
	))}
}

// GRPCDialOptions returns the options that give a gRPC client connection
// otelgrpc's client spans and send the caller's traceparent as metadata
// (the REST gateway's connection to the sidecar's own gRPC listener). A
// propagating Tracer's options send the metadata and start no span. With a
// nil t it returns nil.
func (t *Tracer) GRPCDialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	if !t.recording() {
		return []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(t.toMetadata(ctx), method, req, reply, cc, opts...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(t.toMetadata(ctx), desc, cc, method, opts...)
			}),
		}
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(t.prop),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(notHealth),
	))}
}

// WrapTransport returns rt with otelhttp's client spans ("POST", with
// http.request.method, url.full, server.address, http.response.status_code)
// that inject the traceparent header into each request. A propagating
// Tracer's transport sets the traceparent and tracestate headers of the
// request's context, if any, and starts no span. With a nil t it returns
// rt.
func (t *Tracer) WrapTransport(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	if !t.recording() {
		return &injectTransport{t: t, rt: rt}
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return requestMethod(r.Method) }),
	)
}

// fromMetadata returns ctx with the trace context of its incoming gRPC
// metadata, or ctx when there is none.
func (t *Tracer) fromMetadata(ctx context.Context) context.Context {
	// Two keys' values, not a copy of the whole metadata
	// (FromIncomingContext's), on every call.
	parent := metadata.ValueFromIncomingContext(ctx, HeaderTraceParent)
	if len(parent) == 0 {
		return ctx
	}
	state := metadata.ValueFromIncomingContext(ctx, HeaderTraceState)
	return t.ContextWithTraceContext(ctx, parent[0], strings.Join(state, ","))
}

// toMetadata returns ctx with the trace context of its span in the
// outgoing gRPC metadata, or ctx when there is none.
func (t *Tracer) toMetadata(ctx context.Context) context.Context {
	parent, state := t.TraceContext(ctx)
	switch {
	case parent == "":
		return ctx
	case state == "":
		return metadata.AppendToOutgoingContext(ctx, HeaderTraceParent, parent)
	}
	return metadata.AppendToOutgoingContext(ctx, HeaderTraceParent, parent, HeaderTraceState, state)
}

// contextStream is a grpc.ServerStream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// injectTransport sets the trace context of each request's context as its
// traceparent and tracestate headers.
type injectTransport struct {
	t  *Tracer
	rt http.RoundTripper
}

func (it *injectTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	parent, state := it.t.TraceContext(r.Context())
	if parent == "" {
		return it.rt.RoundTrip(r)
	}
	// A RoundTripper must not change the caller's request.
	r = r.Clone(r.Context())
	r.Header.Set(HeaderTraceParent, parent)
	if state != "" {
		r.Header.Set(HeaderTraceState, state)
	} else {
		r.Header.Del(HeaderTraceState)
	}
	return it.rt.RoundTrip(r)
}

// notHealth keeps gRPC health checks, polled by orchestrators every few
// seconds, out of the traces.
func notHealth(info *stats.RPCTagInfo) bool {
	return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/")
}

// requestMethod is the http.request.method of a method: a known one, or
// "_OTHER", so that a client cannot create unbounded span names.
func requestMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// pair is a TextMapCarrier of the two W3C Trace Context values, without the
// map a propagation.MapCarrier would allocate.
type pair struct{ parent, state string }

func (p *pair) Get(key string) string {
	switch key {
	case HeaderTraceParent:
		return p.parent
	case HeaderTraceState:
		return p.state
	}
	return ""
}

func (p *pair) Set(key, value string) {
	switch key {
	case HeaderTraceParent:
		p.parent = value
	case HeaderTraceState:
		p.state = value
	}
}

func (p *pair) Keys() []string { return []string{HeaderTraceParent, HeaderTraceState} }
