package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
// traceparent of the same trace. The receiver gets the sidecar's spans of
// that trace.
func TestServeTracesOneChain(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.Start(t)
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = rcv.Endpoint()
	env["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
	env["OTEL_SERVICE_NAME"] = "sidecar-under-test"
	a := start(t, []string{"serve"}, env).ready(t)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := emulator.NewWebhookRequest(t.Context(), "https://"+a.Webhook+"/webhook", []byte(testSecret), "manuscript.submitted", []byte(`{"m":1}`), uuid.NewString(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
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
	if !strings.Contains(e.GetTraceparent(), traceID) {
		t.Fatalf("event traceparent = %q, want trace %s", e.GetTraceparent(), traceID)
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
	rcv.Wait(t, 30*time.Second, func(spans []tracingtest.Span) bool {
		names := map[string]bool{}
		for _, s := range spans {
			if s.TraceID == traceID && s.Service == "sidecar-under-test" {
				names[s.Name] = true
			}
		}
		return names["POST /webhook"] && names["receive traced"] && len(names) >= 4
	})
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
