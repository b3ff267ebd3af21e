package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing/tracingtest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// BenchmarkHandlerTracing measures the handler (as BenchmarkHandler, plus a
// traceparent header from ChronosHub) with tracing off (no Tracer), with a
// Tracer over OpenTelemetry's no-op provider, with the SDK batching spans to
// an exporter that drops them (the sidecar's own cost of a recorded span),
// and on: the SDK exporting over OTLP to a receiver in the same process (so
// "on" also pays the receiver's decoding, on the same cores).
func BenchmarkHandlerTracing(b *testing.B) {
	for _, bc := range tracingtest.Modes(b) {
		b.Run(bc.Name, func(b *testing.B) {
			body := []byte(`{"title":"` + strings.Repeat("a", 1024-len(`{"title":""}`)) + `"}`)
			keys := [][]byte{[]byte(secret)}
			srv := webhook.New(discardStore{}, func() [][]byte { return keys }, webhook.Options{Now: now, Tracer: bc.Tracer})
			ts := strconv.Itoa(nowUnix)
			header := http.Header{
				"Content-Type":            {"application/json"},
				"Traceparent":             {chronosParent},
				signature.HeaderEventType: {eventType},
				signature.HeaderEventID:   {eventID},
				signature.HeaderTimestamp: {ts},
				signature.HeaderSignature: {signature.Sign([]byte(secret), body, eventType, eventID, ts)},
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			report := tracingtest.CPUPerOp(b)
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
				r.Header = header
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("POST = %d, want %d", w.Code, http.StatusOK)
				}
			}
			report()
		})
	}
}
