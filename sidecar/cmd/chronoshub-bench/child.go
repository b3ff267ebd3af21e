package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"google.golang.org/grpc"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// The harness's child modes: the first argument selects one. A child prints
// "addr host:port" on stdout once it listens, and stops when its stdin
// closes (the harness closes it, or dies).
const (
	childBaseline = "_baseline-server"
	childInproc   = "_inproc-sidecar"
)

// The webhook listener's server settings, copied from
// sidecar/cmd/chronoshub-sidecar so that the baseline pays the same costs.
const (
	webhookReadHeaderTimeout = 5 * time.Second
	webhookReadTimeout       = 30 * time.Second
	webhookWriteTimeout      = 30 * time.Second
	webhookIdleTimeout       = 120 * time.Second
	webhookMaxHeaderBytes    = 32 << 10
)

func newWebhookServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: webhookReadHeaderTimeout,
		ReadTimeout:       webhookReadTimeout,
		WriteTimeout:      webhookWriteTimeout,
		IdleTimeout:       webhookIdleTimeout,
		MaxHeaderBytes:    webhookMaxHeaderBytes,
	}
}

// baselineHandler reads the body and answers 200 with a body of the
// sidecar's size and headers: the least an HTTPS webhook receiver does.
func baselineHandler() http.Handler {
	const body = `{"status":"stored"}` + "\n"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, body)
	})
}

// runBaselineChild serves the bare HTTPS baseline until stdin closes.
func runBaselineChild(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(childBaseline, flag.ContinueOnError)
	certFile := fs.String("cert", "", "certificate")
	keyFile := fs.String("key", "", "key")
	profile := fs.String("cpuprofile", "", "write a CPU profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serveChild(ctx, stdin, stdout, *certFile, *keyFile, *profile, baselineHandler())
}

// runInprocChild serves the sidecar's ingest path in this process, composed
// as sidecar/cmd/chronoshub-sidecar composes it (webhook handler, event log
// on embedded JetStream, same TLS and server settings, minus metrics), so
// that runtime/pprof can profile it.
func runInprocChild(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(childInproc, flag.ContinueOnError)
	certFile := fs.String("cert", "", "certificate")
	keyFile := fs.String("key", "", "key")
	profile := fs.String("cpuprofile", "", "write a CPU profile here")
	dir := fs.String("dir", "", "data directory")
	syncAlways := fs.Bool("sync-always", false, "fsync every event")
	secret := fs.String("secret", "", "webhook secret (a benchmark value)")
	baseURL := fs.String("base-url", "", "ChronosHub (the emulator) for SendEvent")
	if err := fs.Parse(args); err != nil {
		return err
	}
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{
		Dir:  *dir,
		Sync: natsconn.Sync{Always: *syncAlways, Interval: time.Second},
	})
	if err != nil {
		return err
	}
	defer emb.Close()
	log, err := eventlog.Open(ctx, emb.Conn(), eventlog.Options{})
	if err != nil {
		return err
	}
	defer log.Close()
	secrets := [][]byte{[]byte(*secret)}
	hook := webhook.New(logStore{log}, func() [][]byte { return secrets }, webhook.Options{})

	// SendEvent: the gRPC service over the outbox and the ChronosHub client,
	// as the sidecar wires them (without its metrics interceptors).
	client, err := chronoshub.NewClient(*baseURL, func() string { return benchAPIKey }, chronoshub.Options{})
	if err != nil {
		return err
	}
	out, err := outbox.Open(ctx, log.JetStream(), client, outbox.Options{})
	if err != nil {
		return err
	}
	check, err := eventcheck.New(eventcheck.Options{})
	if err != nil {
		return err
	}
	grpcSrv := grpc.NewServer()
	sidecarv1.RegisterEventServiceServer(grpcSrv, grpcapi.New(log, out, check, grpcapi.Options{}))
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = grpcSrv.Serve(grpcLis) }()
	defer grpcSrv.Stop()
	fmt.Fprintf(stdout, "grpc %s\n", grpcLis.Addr())
	return serveChild(ctx, stdin, stdout, *certFile, *keyFile, *profile, hook)
}

// logStore adapts the event log to the webhook handler, as the sidecar's
// timedStore does.
type logStore struct{ log *eventlog.Log }

func (s logStore) Append(ctx context.Context, e webhook.Event) (bool, error) {
	return s.log.Append(ctx, eventlog.Event{ID: e.ID, Type: e.Type, Payload: e.Payload, SignedAt: e.SignedAt, ReceivedAt: e.ReceivedAt})
}

// serveChild serves h over HTTPS on a loopback port, profiling the CPU
// while it serves if profile is set, until stdin closes or ctx ends.
func serveChild(ctx context.Context, stdin io.Reader, stdout io.Writer, certFile, keyFile, profile string, h http.Handler) error {
	tlsCfg, err := serverTLSConfig(certFile, keyFile)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := newWebhookServer(h)
	srv.TLSConfig = tlsCfg
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(lis, "", "") }()
	fmt.Fprintf(stdout, "addr %s\n", lis.Addr())
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(stdinClosed)
	}()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
