package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing/tracingtest"
)

// TestServeTracesOneChain runs serve with an OTLP endpoint (a real OTLP
// receiver) and follows one chain as a partner's app would: ChronosHub's
// webhook with a traceparent, the event streamed to the app with its trace
// context, the app's SendEvent continuing it, and ChronosHub receiving a
// traceparent of the same trace. The trace is the sidecar's own, its root
// the webhook's span linked to ChronosHub's traceparent (the webhook is not
// authenticated when the span starts). The receiver gets the sidecar's spans
// of that trace.
func TestServeTracesOneChain(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.Start(t)
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = rcv.Endpoint()
	env["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
	env["OTEL_SERVICE_NAME"] = "sidecar-under-test"
	a := start(t, []string{"serve"}, env).ready(t)

	const chronosTraceID, chronosSpanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := emulator.NewWebhookRequest(t.Context(), "https://"+a.Webhook+"/webhook", []byte(testSecret), "manuscript.submitted", []byte(`{"m":1}`), uuid.NewString(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", "00-"+chronosTraceID+"-"+chronosSpanID+"-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook = %d", resp.StatusCode)
	}

	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "traced"})
	if err != nil {
		t.Fatal(err)
	}
	e := recvEvent(t, stream)
	traceID, _, _ := strings.Cut(strings.TrimPrefix(e.GetTraceparent(), "00-"), "-")
	if len(traceID) != 32 || traceID == chronosTraceID {
		t.Fatalf("event traceparent = %q, want one of a new trace, not ChronosHub's", e.GetTraceparent())
	}
	// The app continues the trace: it passes the event's traceparent on.
	sctx := metadata.AppendToOutgoingContext(ctx, "traceparent", e.GetTraceparent())
	if _, err := grpcc.SendEvent(sctx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"m":2}`)}); err != nil {
		t.Fatal(err)
	}
	in := emu.Inbound()
	if len(in) != 1 || !strings.Contains(in[0].Header.Get("Traceparent"), traceID) {
		t.Fatalf("ChronosHub received traceparent %q, want trace %s", in[0].Header.Get("Traceparent"), traceID)
	}
	spans := rcv.Wait(t, 30*time.Second, func(spans []tracingtest.Span) bool {
		names := map[string]bool{}
		for _, s := range spans {
			if s.TraceID == traceID && s.Service == "sidecar-under-test" {
				names[s.Name] = true
			}
		}
		return names["POST /webhook"] && names["receive traced"] && len(names) >= 4
	})
	for _, s := range spans {
		if s.TraceID == traceID && s.Name == "POST /webhook" {
			if s.ParentSpanID != "" || len(s.Links) != 1 || s.Links[0] != (tracingtest.Link{TraceID: chronosTraceID, SpanID: chronosSpanID}) {
				t.Errorf("webhook span: parent %q, links %v; want a root linked to ChronosHub's span", s.ParentSpanID, s.Links)
			}
		}
		if s.TraceID == chronosTraceID {
			t.Errorf("span %q is in ChronosHub's trace, want none", s.Name)
		}
	}
}

// TestServePropagatesWithoutExporter runs serve with no OTEL_* variable:
// it exports nothing, but carries W3C Trace Context as a service mesh does.
// ChronosHub's traceparent and tracestate reach the app with the event (gRPC
// and REST streams), and the app's traceparent reaches ChronosHub on a
// SendEvent over gRPC, over REST, and async through the outbox. Before,
// nothing was carried unless an exporter was configured.
func TestServePropagatesWithoutExporter(t *testing.T) {
	t.Parallel()
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	a := start(t, []string{"serve"}, env).ready(t)

	const chronos, state = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "chronoshub=opaque"
	req, err := emulator.NewWebhookRequest(t.Context(), "https://"+a.Webhook+"/webhook", []byte(testSecret), "manuscript.submitted", []byte(`{"m":1}`), uuid.NewString(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", chronos)
	req.Header.Set("Tracestate", state)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook = %d", resp.StatusCode)
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, stream); e.GetTraceparent() != chronos || e.GetTracestate() != state {
		t.Errorf("gRPC event trace context = %q, %q; want ChronosHub's %q, %q", e.GetTraceparent(), e.GetTracestate(), chronos, state)
	}
	restReq, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTP+"/v1/events:stream?subscription=rest-app", nil)
	restResp, err := http.DefaultClient.Do(restReq)
	if err != nil {
		t.Fatal(err)
	}
	defer restResp.Body.Close()
	lines := make(chan map[string]any, 10)
	go ndjson(restResp.Body, lines)
	select {
	case l := <-lines:
		ev, _ := l["result"].(map[string]any)["event"].(map[string]any)
		if ev["traceparent"] != chronos || ev["tracestate"] != state {
			t.Errorf("REST event = %v, want ChronosHub's trace context", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no event on the REST stream within 30s")
	}

	const (
		viaGRPC  = "00-11111111111111111111111111111111-1111111111111111-01"
		viaREST  = "00-22222222222222222222222222222222-2222222222222222-01"
		viaAsync = "00-33333333333333333333333333333333-3333333333333333-00"
	)
	gctx := metadata.AppendToOutgoingContext(ctx, "traceparent", viaGRPC, "tracestate", "app=1")
	if _, err := grpcc.SendEvent(gctx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"via":"grpc"}`)}); err != nil {
		t.Fatal(err)
	}
	sendReq, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.HTTP+"/v1/events:send", strings.NewReader(`{"type":"manuscript.status.updated","payload":{"via":"rest"}}`))
	sendReq.Header.Set("Content-Type", "application/json")
	sendReq.Header.Set("Traceparent", viaREST)
	if resp, err := http.DefaultClient.Do(sendReq); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Fatalf("REST SendEvent = %d", resp.StatusCode)
	}
	actx := metadata.AppendToOutgoingContext(ctx, "traceparent", viaAsync)
	if _, err := grpcc.SendEvent(actx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"via":"async"}`), Async: true, IdempotencyKey: "async-1"}); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{`{"via":"grpc"}`: {viaGRPC, "app=1"}, `{"via":"rest"}`: {viaREST, ""}, `{"via":"async"}`: {viaAsync, ""}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string][2]string{}
		for _, in := range emu.Inbound() {
			got[string(in.Payload)] = [2]string{in.Header.Get("Traceparent"), in.Header.Get("Tracestate")}
		}
		if len(got) == len(want) || time.Now().After(deadline) {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("trace context ChronosHub received, by payload (-want +got):\n%s", diff)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeLogsTracingErrors runs the binary with a collector that cannot
// be reached: the OpenTelemetry SDK's export errors reach the sidecar's log
// as its own JSON lines (before, the SDK printed them as plain text through
// the standard library's log package), and every line on its output is JSON.
func TestServeLogsTracingErrors(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://" + closed
	env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
	env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "200"
	env["OTEL_BSP_SCHEDULE_DELAY"] = "50"
	p := startProcess(t, env)
	a := p.ready(t)
	if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"m":1}`, uuid.NewString()); st != http.StatusOK {
		t.Fatalf("webhook = %d", st)
	}
	l := p.stderr.waitLine(t, "tracing")
	if l["level"] != "WARN" || l["err"] == nil {
		t.Errorf("tracing error line = %v, want level WARN with err", l)
	}
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a line of the sidecar's output is not JSON: %q", line)
		}
	}
}
