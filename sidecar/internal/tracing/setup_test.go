package tracing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing/tracingtest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestSetupOff: without an exporter, Setup records nothing but returns a
// Tracer that carries the trace context (before, it returned nil and the
// context was dropped); with OTEL_PROPAGATORS=none it returns nil, and every
// method works on the nil Tracer.
func TestSetupOff(t *testing.T) {
	t.Parallel()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name      string
		env       map[string]string
		propagate bool
	}{
		{"nothing set", nil, true},
		{"only a service name", map[string]string{"OTEL_SERVICE_NAME": "x"}, true},
		{"SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}, true},
		{"SDK disabled, upper case", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "TRUE"}, true},
		{"traces exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}, true},
		{"propagators named", map[string]string{"OTEL_PROPAGATORS": "tracecontext,baggage"}, true},
		{"propagators none", map[string]string{"OTEL_PROPAGATORS": "none"}, false},
		{"propagators none, exporter none", map[string]string{"OTEL_PROPAGATORS": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, shutdown, err := tracing.Setup(t.Context(), env(tc.env))
			if err != nil || (tr != nil) != tc.propagate || tr.TracerProvider() != nil {
				t.Fatalf("Setup = %v, %v; want a Tracer that records nothing (%v), nil", tr, err, tc.propagate)
			}
			if err := shutdown(t.Context()); err != nil {
				t.Fatalf("shutdown = %v", err)
			}
			ctx := tr.ContextWithTraceContext(t.Context(), parent, "k=v")
			p, s := tr.TraceContext(ctx)
			switch {
			case tc.propagate && (p != parent || s != "k=v"):
				t.Errorf("TraceContext = %q, %q; want %q, %q carried", p, s, parent, "k=v")
			case !tc.propagate && (p != "" || s != ""):
				t.Errorf("TraceContext = %q, %q; want empty", p, s)
			}
			if !tc.propagate && (tr.GRPCServerOptions() != nil || tr.GRPCDialOptions() != nil) {
				t.Error("a nil Tracer returned options")
			}
		})
	}
}

func TestSetupRejectsBadValues(t *testing.T) {
	t.Parallel()
	const endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // each in the error
	}{
		{"SDK disabled not a bool", map[string]string{"OTEL_SDK_DISABLED": "yes"}, []string{"OTEL_SDK_DISABLED"}},
		{"unsupported propagator", map[string]string{"OTEL_PROPAGATORS": "tracecontext,b3"}, []string{"OTEL_PROPAGATORS"}},
		{"none with another propagator", map[string]string{"OTEL_PROPAGATORS": "none,tracecontext"}, []string{"none goes alone"}},
		{"no propagation with an exporter", map[string]string{"OTEL_PROPAGATORS": "none", endpoint: "http://127.0.0.1:4317"}, []string{"OTEL_PROPAGATORS=none with OTEL_EXPORTER_OTLP_ENDPOINT"}},
		{"bad propagator with the SDK disabled", map[string]string{"OTEL_PROPAGATORS": "jaeger", "OTEL_SDK_DISABLED": "true"}, []string{"OTEL_PROPAGATORS"}},
		{"unsupported exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", endpoint: "http://127.0.0.1:4317"}, []string{"OTEL_TRACES_EXPORTER"}},
		{"endpoint without scheme", map[string]string{endpoint: "collector:4317"}, []string{endpoint}},
		{"traces endpoint not a URL", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://"}, []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}},
		{"endpoint with credentials, invalid", map[string]string{endpoint: "ftp://user:hunter2@collector"}, []string{endpoint}},
		{"protocol", map[string]string{endpoint: "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, []string{"OTEL_EXPORTER_OTLP_PROTOCOL"}},
		{"headers", map[string]string{endpoint: "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_HEADERS": "api-key"}, []string{"OTEL_EXPORTER_OTLP_HEADERS"}},
		{"timeout", map[string]string{endpoint: "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "10s"}, []string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"}},
		{"sampler", map[string]string{endpoint: "http://127.0.0.1:4317", "OTEL_TRACES_SAMPLER": "sometimes"}, []string{"OTEL_TRACES_SAMPLER"}},
		{"sampler ratio", map[string]string{endpoint: "http://127.0.0.1:4317", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, []string{"OTEL_TRACES_SAMPLER_ARG"}},
		{"all at once", map[string]string{endpoint: "collector", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift", "OTEL_TRACES_SAMPLER": "x"},
			[]string{endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, _, err := tracing.Setup(t.Context(), env(tc.env))
			if err == nil || tr != nil {
				t.Fatalf("Setup = %v, %v; want an error", tr, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Setup error %q does not name %s", err, w)
				}
			}
			if cerr := tracing.CheckEnv(env(tc.env)); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("CheckEnv = %v, want Setup's error %q", cerr, err)
			}
		})
	}
	// A header value or an endpoint may hold a secret: it never appears in an error.
	_, _, err := tracing.Setup(t.Context(), env(map[string]string{endpoint: "ftp://user:hunter2@collector"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Setup error = %v; want an error without the endpoint's credentials", err)
	}
	_, _, err = tracing.Setup(t.Context(), env(map[string]string{endpoint: "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=%zzsecret-value"}))
	if err == nil || strings.Contains(err.Error(), "secret-value") {
		t.Errorf("Setup error = %v; want an error without the header value", err)
	}
}

// TestSetupExports: with an endpoint (general or traces-specific, gRPC or
// HTTP), the spans reach an OTLP receiver with the configured service name
// and headers are sent.
func TestSetupExports(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     func(endpoint string) map[string]string
		service string
		header  string // a header every export carries, "name: value"
		http    bool   // an OTLP/HTTP receiver
	}{
		{"general endpoint", func(e string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": e}
		}, tracing.DefaultServiceName, "", false},
		{"traces endpoint, service name", func(e string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": e, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SERVICE_NAME": "sidecar-eu", "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=a%20b", "OTEL_EXPORTER_OTLP_TIMEOUT": "5000"}
		}, "sidecar-eu", "x-tenant: a b", false},
		{"resource attributes", func(e string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": e, "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment.name=test", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
		}, "from-attrs", "", false},
		{"http/protobuf", func(e string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": e + "/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=b"}
		}, tracing.DefaultServiceName, "x-tenant: b", true},
		{"http/protobuf, general endpoint", func(e string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": e, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
		}, tracing.DefaultServiceName, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := tracingtest.Start
			if tc.http {
				start = tracingtest.StartHTTP
			}
			recv := start(t)
			tr, shutdown, err := tracing.Setup(t.Context(), env(tc.env(recv.Endpoint())))
			if err != nil || tr == nil {
				t.Fatalf("Setup = %v, %v; want a tracer", tr, err)
			}
			_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "probe")
			span.End()
			if err := shutdown(t.Context()); err != nil {
				t.Fatalf("shutdown = %v", err)
			}
			spans := recv.Wait(t, 10*time.Second, func(s []tracingtest.Span) bool { return len(s) > 0 })
			if len(spans) != 1 || spans[0].Name != "probe" || spans[0].Service != tc.service {
				t.Fatalf("received %+v, want one span \"probe\" of %s", spans, tc.service)
			}
			if name, value, ok := strings.Cut(tc.header, ": "); ok {
				for _, md := range recv.Metadata() {
					if got := md.Get(name); len(got) != 1 || got[0] != value {
						t.Errorf("export metadata %s = %q, want %q", name, got, value)
					}
				}
			}
		})
	}
}
