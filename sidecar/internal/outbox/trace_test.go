package outbox

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// TestEnqueueContinuesTrace: an event queued inside a span is posted to
// ChronosHub later by the forwarder, in a client span of the same trace
// whose parent is that span; without a Tracer the post starts no trace.
func TestEnqueueContinuesTrace(t *testing.T) {
	t.Parallel()
	for _, traced := range []bool{true, false} {
		t.Run(map[bool]string{true: "tracer", false: "no tracer"}[traced], func(t *testing.T) {
			t.Parallel()
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { tp.Shutdown(context.Background()) })
			tr := tracing.New(tp)
			var outboxTracer *tracing.Tracer
			if traced {
				outboxTracer = tr
			}
			hub := newChronosHub(t)
			client, err := chronoshub.NewClient(hub.srv.URL, func() string { return testKey }, chronoshub.Options{MaxAttempts: 1, WrapTransport: tr.WrapTransport})
			if err != nil {
				t.Fatal(err)
			}
			_, js := connect(t, startNATS(t, t.TempDir()))
			oc := make(outcomes, 1)
			o := openOutbox(t, store{js: js}, client, Options{OnOutcome: oc.hook, Tracer: outboxTracer})

			ctx, caller := tp.Tracer("app").Start(t.Context(), "SendEvent async")
			if _, err := o.Enqueue(ctx, "t", []byte(`{"n":1}`), "k"); err != nil {
				t.Fatalf("Enqueue = %v", err)
			}
			caller.End()
			run(t, o)
			if got := oc.wait(t, 1); got[0] != Accepted {
				t.Fatalf("outcome %v, want Accepted", got[0])
			}
			// The client closes the response body, which ends the span,
			// before the outcome is recorded.
			var post sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.SpanKind() == trace.SpanKindClient {
					post = s
				}
			}
			if post == nil {
				t.Fatal("no client span for the POST to ChronosHub")
			}
			want := trace.SpanContext{}
			if traced {
				want = caller.SpanContext()
			}
			if got := post.Parent(); got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() {
				t.Errorf("POST span parent = %s/%s, want %s/%s", got.TraceID(), got.SpanID(), want.TraceID(), want.SpanID())
			}
		})
	}
}
