package tracing_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing/tracingtest"
)

// BenchmarkSendEvent measures one synchronous SendEvent (no idempotency key)
// from a gRPC client on loopback, through the service and the ChronosHub
// client to an HTTP server on loopback that answers 202, with tracing off
// (no Tracer), with a Tracer over OpenTelemetry's no-op provider, with the
// SDK batching spans to an exporter that drops them, and on (the SDK
// exporting over OTLP to a receiver in the same process). The caller sends a
// traceparent in every case.
func BenchmarkSendEvent(b *testing.B) {
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emb.Close)
	log, err := eventlog.Open(b.Context(), emb.Conn(), eventlog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(log.Close)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"eventId":"0b7e2b8e-5a43-4a8e-9d3e-2f0f2d7c1a11","status":"Accepted"}`)
	}))
	b.Cleanup(hub.Close)
	check, err := eventcheck.New(eventcheck.Options{AllowedTypes: []string{"manuscript.status.updated"}})
	if err != nil {
		b.Fatal(err)
	}

	for _, bc := range tracingtest.Modes(b) {
		b.Run(bc.Name, func(b *testing.B) {
			client, err := chronoshub.NewClient(hub.URL, func() string { return apiKey }, chronoshub.Options{WrapTransport: bc.Tracer.WrapTransport})
			if err != nil {
				b.Fatal(err)
			}
			out, err := outbox.Open(b.Context(), log.JetStream(), client, outbox.Options{})
			if err != nil {
				b.Fatal(err)
			}
			svc := grpcapi.New(log, out, check, grpcapi.Options{Tracer: bc.Tracer})
			srv := grpc.NewServer(bc.Tracer.GRPCServerOptions()...)
			sidecarv1.RegisterEventServiceServer(srv, svc)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan struct{})
			go func() {
				defer close(served)
				srv.Serve(lis)
			}()
			defer func() {
				srv.Stop()
				<-served
			}()
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			api := sidecarv1.NewEventServiceClient(conn)
			ctx := metadata.AppendToOutgoingContext(b.Context(), "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			req := &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"manuscriptId":"MS-2026-042","status":"under_review"}`)}
			if _, err := api.SendEvent(ctx, req); err != nil { // connect first
				b.Fatal(err)
			}
			b.ReportAllocs()
			report := tracingtest.CPUPerOp(b)
			for b.Loop() {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := api.SendEvent(rctx, req)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
			}
			report()
		})
	}
}
