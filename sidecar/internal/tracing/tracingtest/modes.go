package tracingtest

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// Mode is one way of tracing a benchmark compares.
type Mode struct {
	Name   string
	Tracer *tracing.Tracer
}

// Modes returns the tracing modes the benchmarks compare: "off" (no
// Tracer: OTEL_PROPAGATORS=none), "propagate" (tracing.Propagating: what
// Setup returns without an exporter, carrying the trace context and
// recording nothing), "noop" (a Tracer over OpenTelemetry's no-op provider), "sdk"
// (the SDK batching spans to an exporter that drops them: the sidecar's own
// cost of a recorded span) and "on" (tracing.Setup exporting over OTLP to a
// receiver in this process, so "on" also pays the receiver's decoding). All
// are shut down when b ends.
func Modes(b *testing.B) []Mode {
	recv := Start(b)
	on, shutdown, err := tracing.Setup(b.Context(), func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return recv.Endpoint()
		}
		return ""
	})
	if err != nil || on == nil {
		b.Fatalf("Setup = %v, %v", on, err)
	}
	b.Cleanup(func() { shutdown(context.Background()) })
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { sdk.Shutdown(context.Background()) })
	return []Mode{
		{"off", nil},
		{"propagate", tracing.Propagating()},
		{"noop", tracing.New(noop.NewTracerProvider())},
		{"sdk", tracing.New(sdk)},
		{"on", on},
	}
}
