package tracing_test

import (
	"bytes"
	"context"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/gateway"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing/tracingtest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

var update = flag.Bool("update", false, "rewrite docs/trace-example.txt from this run")

const (
	traceExample  = "../../../docs/trace-example.txt"
	webhookSecret = "whsec-e2e-trace"
	apiKey        = "sk_live_trace_e2e_0123456789"
	// ChronosHub's own trace, as it would send it with a webhook.
	chronosTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	chronosSpanID  = "00f067aa0ba902b7"
)

// logStore is the webhook's store over the event log, as the composition
// wires it: the trace context goes along with the event.
type logStore struct{ log *eventlog.Log }

func (s logStore) Append(ctx context.Context, e webhook.Event) (bool, error) {
	return s.log.Append(ctx, eventlog.Event{
		ID: e.ID, Type: e.Type, Payload: e.Payload, SignedAt: e.SignedAt, ReceivedAt: e.ReceivedAt,
		TraceParent: e.TraceParent, TraceState: e.TraceState,
	})
}

// hubRecorder stands in for ChronosHub's inbound API (the emulator) and
// remembers the traceparent header of each request.
type hubRecorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []string
}

func (h *hubRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Get("Traceparent"))
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

func (h *hubRecorder) traceparents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// sidecar is the sidecar's pieces, wired as the composition wires them
// with tracing on: the webhook handler over TLS, the event log on embedded
// NATS, the gRPC service with otelgrpc, the REST gateway over a real client
// connection to it, and the ChronosHub client to the emulator.
type sidecar struct {
	log      *eventlog.Log
	hook     *httptest.Server
	grpcAddr string
	restURL  string
	hub      *hubRecorder
	// stop ends the streams and stops the servers, waiting for the
	// handlers, so that every span they started has ended (a client can
	// have its answer before the server's span ends). It may be called
	// more than once.
	stop func()
}

func startSidecar(t *testing.T, tr *tracing.Tracer) *sidecar {
	t.Helper()
	ctx := t.Context()
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	log, err := eventlog.Open(ctx, emb.Conn(), eventlog.Options{AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(log.Close)
	emu, err := emulator.New(emulator.Options{APIKey: apiKey, WebhookSecret: []byte(webhookSecret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	hub := &hubRecorder{next: emu.Handler()}
	hubSrv := httptest.NewServer(hub)
	t.Cleanup(hubSrv.Close)
	client, err := chronoshub.NewClient(hubSrv.URL, func() string { return apiKey }, chronoshub.Options{WrapTransport: tr.WrapTransport})
	if err != nil {
		t.Fatal(err)
	}
	out, err := outbox.Open(ctx, log.JetStream(), client, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check, err := eventcheck.New(eventcheck.Options{AllowedTypes: []string{"manuscript.submitted", "manuscript.status.updated"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := grpcapi.New(log, out, check, grpcapi.Options{Tracer: tr})
	gsrv := grpc.NewServer(tr.GRPCServerOptions()...)
	sidecarv1.RegisterEventServiceServer(gsrv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		gsrv.Serve(lis)
	}()
	hook := httptest.NewTLSServer(webhook.New(logStore{log}, func() [][]byte { return [][]byte{[]byte(webhookSecret)} }, webhook.Options{Tracer: tr}))
	t.Cleanup(hook.Close)

	conn, err := grpc.NewClient(lis.Addr().String(), append(tr.GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	gw, err := gateway.New(ctx, conn, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rest := httptest.NewServer(tr.ContinueHTTP(gw))
	stop := sync.OnceFunc(func() {
		svc.CancelStreams()
		rest.Close()
		hook.Close()
		gsrv.GracefulStop()
		<-served
	})
	t.Cleanup(stop)
	return &sidecar{log: log, hook: hook, grpcAddr: lis.Addr().String(), restURL: rest.URL, hub: hub, stop: stop}
}

// TestOneTraceFromChronosHubToTheAppAndBack drives real pieces on loopback:
// a webhook from "ChronosHub" carrying its traceparent, over TLS into the
// webhook handler, stored in the event log on embedded NATS, streamed to an
// app over gRPC; the app continues the trace from Event.traceparent with its
// own tracer, calls SendEvent and AckEvents, and the sidecar posts the event
// to ChronosHub. The sidecar's and the app's spans are exported over OTLP to
// a receiver, and must form one trace with the right parents: a new trace,
// whose root (the webhook's span) is linked to ChronosHub's, since the
// webhook listener is public and the traceparent unauthenticated.
func TestOneTraceFromChronosHubToTheAppAndBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	recv := tracingtest.Start(t)
	tr, shutdown, err := tracing.Setup(ctx, func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": recv.Endpoint()}[k]
	})
	if err != nil || tr == nil {
		t.Fatalf("Setup = %v, %v; want a tracer", tr, err)
	}

	sc := startSidecar(t, tr)

	// The app: its own tracer provider, exporting to the same receiver, and
	// otelgrpc on its client connection.
	appExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(recv.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	appTP := sdktrace.NewTracerProvider(sdktrace.WithBatcher(appExp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "example-app"))))
	conn, err := grpc.NewClient(sc.grpcAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(appTP), otelgrpc.WithPropagators(propagation.TraceContext{}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	api := sidecarv1.NewEventServiceClient(conn)
	streamCtx, endStream := context.WithCancel(ctx)
	defer endStream()
	stream, err := api.StreamEvents(streamCtx, &sidecarv1.StreamEventsRequest{Subscription: "editorial"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil { // the stream is open
		t.Fatal(err)
	}

	// ChronosHub sends a webhook, with its traceparent.
	const eventID = "6f1d2c3b-4a59-4e8f-9a7b-0c1d2e3f4a5b"
	body := []byte(`{"manuscriptId":"MS-2026-042","title":"Tracing"}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sc.hook.URL+"/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(signature.HeaderEventType, "manuscript.submitted")
	req.Header.Set(signature.HeaderEventID, eventID)
	req.Header.Set(signature.HeaderTimestamp, ts)
	req.Header.Set(signature.HeaderSignature, signature.Sign([]byte(webhookSecret), body, "manuscript.submitted", eventID, ts))
	req.Header.Set("Traceparent", "00-"+chronosTraceID+"-"+chronosSpanID+"-01")
	resp, err := sc.hook.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook POST = %d, want 200", resp.StatusCode)
	}

	// The app receives it and continues the trace from Event.traceparent.
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ev := got.GetEvent()
	if ev.GetId() != eventID {
		t.Fatalf("received event %q, want %q", ev.GetId(), eventID)
	}
	parent := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": ev.GetTraceparent(), "tracestate": ev.GetTracestate()})
	traceID := trace.SpanContextFromContext(parent).TraceID().String()
	if !trace.SpanContextFromContext(parent).IsValid() || traceID == chronosTraceID {
		t.Fatalf("Event.traceparent = %q, want one of a new trace, not ChronosHub's %s", ev.GetTraceparent(), chronosTraceID)
	}
	appCtx, appSpan := appTP.Tracer("example-app").Start(parent, "process manuscript.submitted", trace.WithSpanKind(trace.SpanKindConsumer))
	sent, err := api.SendEvent(appCtx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"manuscriptId":"MS-2026-042","status":"under_review"}`)})
	if err != nil {
		t.Fatalf("SendEvent = %v", err)
	}
	if sent.GetState() != sidecarv1.SentEventState_SENT_EVENT_STATE_ACCEPTED {
		t.Fatalf("SendEvent state = %v, want accepted", sent.GetState())
	}
	if _, err := api.AckEvents(appCtx, &sidecarv1.AckEventsRequest{Subscription: "editorial", EventIds: []string{eventID}}); err != nil {
		t.Fatalf("AckEvents = %v", err)
	}
	appSpan.End()
	endStream()
	sc.stop()

	// Flush both exporters, then read the trace back from the receiver.
	if err := appTP.Shutdown(ctx); err != nil {
		t.Fatalf("app tracer shutdown: %v", err)
	}
	if err := shutdown(ctx); err != nil {
		t.Fatalf("sidecar tracer shutdown: %v", err)
	}
	spans := recv.Wait(t, 10*time.Second, func(s []tracingtest.Span) bool { return len(inTrace(s, traceID)) >= 7 })
	trc := inTrace(spans, traceID)
	rendered := tracingtest.Render(trc, true)
	t.Logf("trace %s:\n%s", traceID, rendered)

	find := func(service, name string, kind string) tracingtest.Span {
		t.Helper()
		var found []tracingtest.Span
		for _, s := range trc {
			if s.Service == service && s.Name == name && s.Kind.String() == "SPAN_KIND_"+kind {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d spans %q %s of %s in the trace, want 1:\n%s", len(found), name, kind, service, rendered)
		}
		return found[0]
	}
	const side, app = tracing.DefaultServiceName, "example-app"
	hookSpan := find(side, "POST /webhook", "SERVER")
	recvSpan := find(side, "receive editorial", "CONSUMER")
	process := find(app, "process manuscript.submitted", "CONSUMER")
	appSend := find(app, "chronoshub.sidecar.v1.EventService/SendEvent", "CLIENT")
	send := find(side, "chronoshub.sidecar.v1.EventService/SendEvent", "SERVER")
	post := find(side, "POST", "CLIENT")
	appAck := find(app, "chronoshub.sidecar.v1.EventService/AckEvents", "CLIENT")
	ack := find(side, "chronoshub.sidecar.v1.EventService/AckEvents", "SERVER")
	for _, link := range []struct {
		child  tracingtest.Span
		parent string
	}{
		{hookSpan, ""},
		{recvSpan, hookSpan.SpanID},
		{process, recvSpan.SpanID},
		{appSend, process.SpanID},
		{send, appSend.SpanID},
		{post, send.SpanID},
		{appAck, process.SpanID},
		{ack, appAck.SpanID},
	} {
		if link.child.ParentSpanID != link.parent {
			t.Errorf("span %q (%s) has parent %s, want %s", link.child.Name, link.child.Service, link.child.ParentSpanID, link.parent)
		}
	}
	if want := []tracingtest.Link{{TraceID: chronosTraceID, SpanID: chronosSpanID}}; !slices.Equal(hookSpan.Links, want) {
		t.Errorf("webhook span links = %v, want %v (ChronosHub's span)", hookSpan.Links, want)
	}
	if n := len(inTrace(spans, chronosTraceID)); n != 0 {
		t.Errorf("%d spans in ChronosHub's trace, want 0: the webhook's traceparent is not authenticated", n)
	}
	for _, s := range []tracingtest.Span{hookSpan, recvSpan, send, post} {
		t.Logf("%s %s: %v", s.Name, s.Kind, s.Attributes)
	}
	if len(trc) != 8 {
		t.Errorf("the trace has %d spans, want 8:\n%s", len(trc), rendered)
	}
	if want := "00-" + traceID + "-" + recvSpan.SpanID + "-01"; ev.GetTraceparent() != want {
		t.Errorf("Event.traceparent = %q, want the receive span's %q", ev.GetTraceparent(), want)
	}
	if want := []string{"00-" + traceID + "-" + post.SpanID + "-01"}; !equal(sc.hub.traceparents(), want) {
		t.Errorf("ChronosHub received traceparent %q, want the POST span's %q", sc.hub.traceparents(), want)
	}
	wantAttrs := []struct {
		span  tracingtest.Span
		attrs map[string]string
	}{
		{hookSpan, map[string]string{"http.request.method": "POST", "url.path": "/webhook", "http.route": "/webhook", "url.scheme": "https", "http.response.status_code": "200"}},
		{recvSpan, map[string]string{"messaging.system": "chronoshub", "messaging.operation.type": "receive", "messaging.destination.name": "editorial", "messaging.message.id": eventID}},
		{send, map[string]string{"rpc.system.name": "grpc", "rpc.method": "chronoshub.sidecar.v1.EventService/SendEvent"}},
		{post, map[string]string{"http.request.method": "POST", "http.response.status_code": "202"}},
	}
	for _, w := range wantAttrs {
		for k, v := range w.attrs {
			if got := w.span.Attributes[k]; got != v {
				t.Errorf("span %q: %s = %q, want %q (all: %v)", w.span.Name, k, got, v, w.span.Attributes)
			}
		}
	}

	// The rendering in the README: rewritten with -update, else its shape
	// (everything but the durations) must still match.
	if *update {
		if err := os.WriteFile(traceExample, []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden, err := os.ReadFile(traceExample)
	if err != nil {
		t.Fatalf("%v (run go test -run TestOneTrace ./sidecar/internal/tracing -update)", err)
	}
	if shape(string(golden)) != tracingtest.Render(trc, false) {
		t.Errorf("the trace's shape differs from %s (rerun with -update if intended):\ngot:\n%s\nwant:\n%s", traceExample, tracingtest.Render(trc, false), shape(string(golden)))
	}
}

func inTrace(spans []tracingtest.Span, traceID string) []tracingtest.Span {
	var out []tracingtest.Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// durationField is the duration column of a rendering with durations.
var durationField = regexp.MustCompile(`  [0-9.]+(ns|µs|ms|s|m[0-9.]+s)  `)

// shape removes the durations of a rendering.
func shape(s string) string { return durationField.ReplaceAllString(s, "  ") }
