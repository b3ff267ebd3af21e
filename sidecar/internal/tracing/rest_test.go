package tracing_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing/tracingtest"
)

// TestRESTCarriesTheTrace: over REST the streamed event carries its
// traceparent too, and a SendEvent whose traceparent header continues it
// joins the same trace through the gateway's gRPC connection.
func TestRESTCarriesTheTrace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	recv := tracingtest.Start(t)
	tr, shutdown, err := tracing.Setup(ctx, func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": recv.Endpoint()}[k]
	})
	if err != nil || tr == nil {
		t.Fatalf("Setup = %v, %v; want a tracer", tr, err)
	}
	sc := startSidecar(t, tr)
	// An event stored by a traced webhook.
	_, err = sc.log.Append(ctx, eventlog.Event{
		ID: "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", Type: "manuscript.submitted", Payload: []byte(`{"manuscriptId":"MS-1"}`),
		SignedAt: time.Now(), TraceParent: "00-" + chronosTraceID + "-" + chronosSpanID + "-01",
	})
	if err != nil {
		t.Fatal(err)
	}

	streamCtx, endStream := context.WithCancel(ctx)
	defer endStream()
	req, err := http.NewRequestWithContext(streamCtx, http.MethodGet, sc.restURL+"/v1/events:stream?subscription=rest", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatalf("GET /v1/events:stream = %d, read: %v", resp.StatusCode, err)
	}
	var got struct {
		Result struct {
			Event struct{ ID, Traceparent string }
		}
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("stream line %q: %v", line, err)
	}
	parent := got.Result.Event.Traceparent
	if !strings.HasPrefix(parent, "00-"+chronosTraceID+"-") || strings.Contains(parent, chronosSpanID) {
		t.Fatalf("REST event traceparent = %q, want the receive span's, in trace %s (line %s)", parent, chronosTraceID, line)
	}

	// The app passes the traceparent on as the header of its SendEvent.
	send, err := http.NewRequestWithContext(ctx, http.MethodPost, sc.restURL+"/v1/events:send",
		strings.NewReader(`{"type":"manuscript.status.updated","payload":{"manuscriptId":"MS-1","status":"accepted"}}`))
	if err != nil {
		t.Fatal(err)
	}
	send.Header.Set("Content-Type", "application/json")
	send.Header.Set("Traceparent", parent)
	sresp, err := http.DefaultClient.Do(send)
	if err != nil {
		t.Fatal(err)
	}
	sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/events:send = %d, want 200", sresp.StatusCode)
	}
	endStream()
	sc.stop()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	spans := recv.Wait(t, 10*time.Second, func(s []tracingtest.Span) bool { return len(inTrace(s, chronosTraceID)) >= 4 })
	trc := inTrace(spans, chronosTraceID)
	rendered := tracingtest.Render(trc, false)
	want := "receive rest  CONSUMER  chronoshub-sidecar\n" +
		"└─ chronoshub.sidecar.v1.EventService/SendEvent  CLIENT  chronoshub-sidecar\n" +
		"   └─ chronoshub.sidecar.v1.EventService/SendEvent  SERVER  chronoshub-sidecar\n" +
		"      └─ POST  CLIENT  chronoshub-sidecar\n"
	if rendered != want {
		t.Errorf("trace:\n%s\nwant:\n%s", rendered, want)
	}
	for _, s := range trc {
		if s.Name == "receive rest" && (s.ParentSpanID != chronosSpanID || !strings.Contains(parent, s.SpanID)) {
			t.Errorf("receive span %s has parent %s; want parent %s and to be the event's traceparent %s", s.SpanID, s.ParentSpanID, chronosSpanID, parent)
		}
	}
	if tps := sc.hub.traceparents(); len(tps) != 1 || !strings.HasPrefix(tps[0], "00-"+chronosTraceID+"-") {
		t.Errorf("ChronosHub received traceparent %q, want one in trace %s", tps, chronosTraceID)
	}
}
