package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// chronosParent is a traceparent ChronosHub might send.
const (
	chronosTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	chronosSpanID  = "00f067aa0ba902b7"
	chronosParent  = "00-" + chronosTraceID + "-" + chronosSpanID + "-01"
)

// tracedFixture is a handler whose spans go to an in-memory recorder of the
// OpenTelemetry SDK.
func tracedFixture(t *testing.T) (*fixture, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	return newFixture(t, webhook.Options{Tracer: tracing.New(tp)}, nil), rec
}

func onlySpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("recorded %d spans, want 1", len(spans))
	}
	return spans[0]
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// TestTraceLinksChronosHubTrace: the webhook's span is the root of a new
// trace linked to the traceparent the request carries, not its child (the
// listener is public and the request not yet authenticated when the span
// starts); the event stores the new trace's context. Before, the span was a
// child of whatever traceparent any caller sent.
func TestTraceLinksChronosHubTrace(t *testing.T) {
	t.Parallel()
	f, rec := tracedFixture(t)
	w := f.do(post{after: func(r *http.Request) {
		r.Header.Set("Traceparent", chronosParent)
		r.Header.Set("Tracestate", "chronoshub=opaque")
	}}.request())
	if w.Code != http.StatusOK {
		t.Fatalf("POST = %d, want 200", w.Code)
	}
	span := onlySpan(t, rec)
	sc := span.SpanContext()
	if got := sc.TraceID().String(); got == chronosTraceID {
		t.Errorf("span trace id = %s, ChronosHub's: want a new trace", got)
	}
	if span.Parent().IsValid() {
		t.Errorf("span parent = %v, want none (a new root)", span.Parent())
	}
	links := span.Links()
	if len(links) != 1 || links[0].SpanContext.TraceID().String() != chronosTraceID || links[0].SpanContext.SpanID().String() != chronosSpanID ||
		links[0].SpanContext.TraceState().String() != "chronoshub=opaque" {
		t.Errorf("span links = %+v, want one to ChronosHub's span %s of trace %s", links, chronosSpanID, chronosTraceID)
	}
	if span.Name() != "POST /webhook" || span.SpanKind() != trace.SpanKindServer {
		t.Errorf("span = %q %v, want \"POST /webhook\" server", span.Name(), span.SpanKind())
	}
	attrs := attrMap(span.Attributes())
	for k, want := range map[string]string{
		"http.request.method":       "POST",
		"http.route":                "/webhook",
		"url.path":                  "/webhook",
		"url.scheme":                "http",
		"http.response.status_code": "200",
	} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
		}
	}
	stored := f.store.stored()
	if len(stored) != 1 {
		t.Fatalf("stored %d events, want 1", len(stored))
	}
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if stored[0].TraceParent != want || stored[0].TraceState != "" {
		t.Errorf("stored trace context = %q, %q; want the webhook span's %q and no tracestate (ChronosHub's belongs to its trace)", stored[0].TraceParent, stored[0].TraceState, want)
	}
}

// TestTracePropagatesWithoutExporter: with a propagating Tracer (tracing
// without an exporter), the webhook's traceparent and tracestate are stored
// with the event as they came, as a service mesh carries them; a request
// without one, or with an invalid one, stores none. Before, nothing was
// carried unless spans were exported.
func TestTracePropagatesWithoutExporter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, parent, state, wantParent, wantState string }{
		{"carried", chronosParent, "chronoshub=opaque", chronosParent, "chronoshub=opaque"},
		{"without tracestate", chronosParent, "", chronosParent, ""},
		{"none", "", "", "", ""},
		{"malformed", "00-xyz-00f067aa0ba902b7-01", "a=b", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, webhook.Options{Tracer: tracing.Propagating()}, nil)
			w := f.do(post{after: func(r *http.Request) {
				if tc.parent != "" {
					r.Header.Set("Traceparent", tc.parent)
				}
				if tc.state != "" {
					r.Header.Set("Tracestate", tc.state)
				}
			}}.request())
			if w.Code != http.StatusOK {
				t.Fatalf("POST = %d, want 200", w.Code)
			}
			got := f.store.stored()[0]
			if diff := cmp.Diff([2]string{tc.wantParent, tc.wantState}, [2]string{got.TraceParent, got.TraceState}); diff != "" {
				t.Errorf("stored trace context (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTraceStartsNewTraceWithoutOrWithBadTraceparent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, header string }{
		{"none", ""},
		{"malformed", "00-xyz-00f067aa0ba902b7-01"},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{"too long", "00-" + chronosTraceID + "-" + chronosSpanID + "-01" + strings.Repeat("0", 600)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, rec := tracedFixture(t)
			p := post{}
			if tc.header != "" {
				p.after = setAfter("Traceparent", tc.header)
			}
			if w := f.do(p.request()); w.Code != http.StatusOK {
				t.Fatalf("POST = %d, want 200", w.Code)
			}
			span := onlySpan(t, rec)
			if span.Parent().IsValid() {
				t.Errorf("span parent = %v, want a new trace", span.Parent())
			}
			want := "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
			if got := f.store.stored()[0].TraceParent; got != want {
				t.Errorf("stored traceparent = %q, want %q", got, want)
			}
		})
	}
}

func TestTraceRecordsStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		post      post
		storeErr  error
		status    int
		wantError bool
		spanName  string
	}{
		{name: "bad signature", post: post{sign: signWith("wrong")}, status: http.StatusUnauthorized, spanName: "POST /webhook"},
		{name: "store failure", storeErr: errors.New("jetstream: no responders"), status: http.StatusServiceUnavailable, wantError: true, spanName: "POST /webhook"},
		{name: "other path", post: post{path: "/hooks"}, status: http.StatusNotFound, spanName: "POST"},
		{name: "odd method", post: post{method: "BREW"}, status: http.StatusMethodNotAllowed, spanName: "HTTP /webhook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, rec := tracedFixture(t)
			f.store.err = tc.storeErr
			if w := f.do(tc.post.request()); w.Code != tc.status {
				t.Fatalf("POST = %d, want %d", w.Code, tc.status)
			}
			span := onlySpan(t, rec)
			if span.Name() != tc.spanName {
				t.Errorf("span name = %q, want %q", span.Name(), tc.spanName)
			}
			if got := attrMap(span.Attributes())["http.response.status_code"]; got != strconv.Itoa(tc.status) {
				t.Errorf("http.response.status_code = %q, want %d", got, tc.status)
			}
			if gotErr := span.Status().Code == codes.Error; gotErr != tc.wantError {
				t.Errorf("span status = %v, want error %v", span.Status(), tc.wantError)
			}
		})
	}
}

// TestTraceOff: without a Tracer the handler stores no trace context, even
// when ChronosHub sends one.
func TestTraceOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, webhook.Options{}, nil)
	if w := f.do(post{after: setAfter("Traceparent", chronosParent)}.request()); w.Code != http.StatusOK {
		t.Fatalf("POST = %d, want 200", w.Code)
	}
	got := f.store.stored()[0]
	if diff := cmp.Diff([2]string{}, [2]string{got.TraceParent, got.TraceState}); diff != "" {
		t.Errorf("stored trace context (-want +got):\n%s", diff)
	}
}
