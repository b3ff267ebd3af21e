package push_test

import (
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// TestTraceContext: with tracing on, each POST is a client span, child of
// the event's stored trace context, and the app gets that span's
// traceparent; with tracing off, the app gets the stored one as it is.
func TestTraceContext(t *testing.T) {
	t.Parallel()
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent  = "00-" + traceID + "-00f067aa0ba902b7-01"
		state   = "vendor=opaque"
	)
	for _, on := range []bool{false, true} {
		l := openLog(t, eventlog.Options{})
		e := eventlog.Event{ID: "e1", Type: "manuscript.submitted", Payload: []byte(`{}`), TraceParent: parent, TraceState: state}
		if _, err := l.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		// settled waits for the acknowledgement floor to pass what was
		// appended: without this count it could return before the new
		// subscription counted its backlog, with nothing posted yet.
		n, _ := appended.LoadOrStore(l, new(atomic.Uint64))
		n.(*atomic.Uint64).Add(1)
		a := &app{}
		lis := listen(t)
		a.serve(t, lis)
		rec := tracetest.NewSpanRecorder()
		var tracer *tracing.Tracer
		if on {
			tracer = tracing.New(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
		}
		run(t, l, push.Target{Subscription: "p", URL: "http://" + lis.Addr().String()}, push.Options{Tracer: tracer})
		settled(t, l, "p")
		h := a.got()[0].header
		got := h.Get("Traceparent")
		if !on {
			if got != parent || h.Get("Tracestate") != state {
				t.Errorf("tracing off: traceparent %q, tracestate %q; want the stored %q, %q", got, h.Get("Tracestate"), parent, state)
			}
			continue
		}
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("tracing on: %d spans, want 1 client span", len(spans))
		}
		s := spans[0]
		if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %s kind %v parent %s trace %s; want a client span, child of the event's", s.Name(), s.SpanKind(), s.Parent().SpanID(), s.SpanContext().TraceID())
		}
		if want := s.SpanContext().SpanID().String(); !strings.HasPrefix(got, "00-"+traceID+"-"+want) {
			t.Errorf("tracing on: traceparent %q, want the client span's (%s)", got, want)
		}
	}
}
