package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/gateway"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// Timeouts of the webhook listener, against slow clients. ChronosHub's
// payloads are small; a request that takes longer than this is hostile or
// broken.
const (
	webhookReadHeaderTimeout = 5 * time.Second
	webhookReadTimeout       = 30 * time.Second
	webhookWriteTimeout      = 30 * time.Second
	webhookIdleTimeout       = 120 * time.Second
	webhookMaxHeaderBytes    = 32 << 10
	httpShutdownTimeout      = 5 * time.Second
	grpcStopTimeout          = 5 * time.Second
	// storeFailureLimit is how long appends may fail without a success
	// before /healthz reports the sidecar dead (see storeHealth).
	storeFailureLimit = 30 * time.Second
	// markFileName, in the data dir, holds the event log's mark;
	// markInterval is how often it is written.
	markFileName = "eventlog-mark.json"
	markInterval = time.Second
)

// sidecar is one running sidecar: its store, services and listeners. It is
// built by startSidecar and runs until serve's context ends.
type sidecar struct {
	cfg    *config.Config
	logger *slog.Logger
	reg    *prometheus.Registry
	met    *metrics.Metrics

	nc       *nats.Conn
	closeNC  func()
	embedded *natsconn.Embedded // nil with an external NATS
	markFile string             // the event log's mark (see eventlog.Verify); "" with an external NATS
	log      *eventlog.Log
	out      *outbox.Outbox
	hook     *webhook.Server
	svc      *grpcapi.Service
	health   *health.Server
	grpcSrv  *grpc.Server
	watcher  *credentials.Watcher
	cert     *credentials.Certificate
	draining atomic.Bool
	up       atomic.Bool
	store    storeHealth

	webhookLis, grpcLis, httpLis, adminLis net.Listener
}

// Addrs are the addresses the sidecar listens on, as bound (":0" resolved).
type Addrs struct {
	Webhook, GRPC, HTTP, Admin string
}

// startSidecar opens the store and binds every listener; nothing is served
// until serve. On error, everything opened is closed again.
func startSidecar(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *sidecar, err error) {
	s := &sidecar{cfg: cfg, logger: logger, reg: prometheus.NewRegistry()}
	s.met = metrics.New(s.reg)
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	if cfg.NATSURL == "" {
		if err := checkWritable(cfg.DataDir); err != nil {
			return nil, err
		}
		emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{
			Dir:  cfg.DataDir,
			Sync: natsconn.Sync{Always: cfg.SyncAlways, Interval: cfg.SyncInterval},
		})
		if err != nil {
			return nil, err
		}
		s.nc, s.closeNC, s.embedded = emb.Conn(), emb.Close, emb
	} else {
		nc, _, err := natsconn.ConnectExternal(ctx, natsconn.ExternalOptions{URL: cfg.NATSURL, CredsFile: cfg.NATSCredsFile})
		if err != nil {
			return nil, err
		}
		s.nc, s.closeNC = nc, nc.Close
	}
	s.log, err = eventlog.Open(ctx, s.nc, eventlog.Options{
		Retention:       cfg.Retention,
		DuplicateWindow: cfg.DuplicateWindow,
		AckWait:         cfg.AckWait,
		MaxAttempts:     cfg.MaxAttempts,
		MaxAckPending:   cfg.MaxAckPending,
		MaxInFlight:     cfg.MaxInFlight,
		Logger:          logger.With("component", "eventlog"),
		Observer:        s.met,
	})
	if err != nil {
		return nil, err
	}
	metrics.RegisterDepth(s.reg, s.log.Depth, logger)
	if s.embedded != nil {
		s.markFile = filepath.Join(cfg.DataDir, markFileName)
		lost, err := s.log.Verify(ctx, s.markFile)
		if err != nil {
			return nil, err
		}
		if lost > 0 {
			s.met.StoreLost(lost)
			logger.Error("event store damaged: JetStream repaired its files at start by dropping events; they cannot be delivered (ChronosHub does not resend events it got a 2xx for)",
				"events_lost", lost, "data_dir", cfg.DataDir)
		}
	}

	s.watcher = credentials.NewWatcher(credentials.WatcherOptions{
		Interval:      cfg.CredentialsPollInterval,
		RotationGrace: cfg.SecretRotationGrace,
		Logger:        logger,
		OnReload:      s.met.CredentialReload,
	})
	s.watcher.Add(cfg.APIKey, cfg.WebhookSecrets, cfg.APIToken)
	client, err := chronoshub.NewClient(cfg.BaseURL, cfg.APIKey.Reveal, chronoshub.Options{
		MaxAttempts: cfg.SendMaxAttempts,
		OnRetry:     s.met.ChronosHubRetry,
	})
	if err != nil {
		return nil, err
	}
	s.out, err = outbox.Open(ctx, s.log.JetStream(), client, outbox.Options{
		IdempotencyWindow: cfg.IdempotencyWindow,
		FailAfter:         cfg.AsyncFailAfter,
		Logger:            logger,
		OnOutcome:         func(st outbox.State) { s.met.Sent(st.String()) },
	})
	if err != nil {
		return nil, err
	}
	check, err := eventcheck.New(eventcheck.Options{
		AllowedTypes:    cfg.AllowedEventTypes,
		SchemaDir:       cfg.SchemaDir,
		MaxPayloadBytes: int(cfg.MaxPayloadBytes),
	})
	if err != nil {
		return nil, err
	}

	s.hook = webhook.New(timedStore{s.log, s.met, &s.store}, cfg.WebhookSecrets.Secrets, webhook.Options{
		Path:         cfg.WebhookPath,
		MaxBodyBytes: cfg.WebhookMaxBodyBytes,
		Tolerance:    cfg.WebhookTolerance,
		Logger:       logger,
		Observer:     s.met,
	})
	s.svc = grpcapi.New(s.log, s.out, check, grpcapi.Options{
		SendTimeout: cfg.SendTimeout,
		Logger:      logger.With("component", "grpcapi"),
	})
	unary := []grpc.UnaryServerInterceptor{s.met.UnaryInterceptor()}
	stream := []grpc.StreamServerInterceptor{s.met.StreamInterceptor()}
	if cfg.APIToken != nil {
		u, st := grpcapi.BearerAuth(cfg.APIToken.Reveal)
		unary, stream = append(unary, u), append(stream, st)
	}
	s.grpcSrv = grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	sidecarv1.RegisterEventServiceServer(s.grpcSrv, s.svc)
	s.health = health.NewServer()
	grpc_health_v1.RegisterHealthServer(s.grpcSrv, s.health)
	reflection.Register(s.grpcSrv)

	if s.cert = cfg.TLSCertificate; s.cert != nil {
		s.watcher.AddCertificate(s.cert)
	}
	if s.webhookLis, err = net.Listen("tcp", cfg.WebhookAddr); err != nil {
		return nil, fmt.Errorf("webhook listener: %w", err)
	}
	if cfg.WebhookMaxConns > 0 {
		s.webhookLis = netutil.LimitListener(s.webhookLis, cfg.WebhookMaxConns)
	}
	if s.grpcLis, err = listenAPI(cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if s.httpLis, err = listenAPI(cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("REST listener: %w", err)
	}
	if s.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return s, nil
}

// checkWritable makes sure dir exists and takes writes, so that a read-only
// or unusable data dir is refused at once with its reason (the embedded
// server would otherwise wait for its start timeout).
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	err = errors.Join(f.Sync(), f.Close(), os.Remove(name))
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	return nil
}

// listenAPI listens on an app-facing address: host:port, or unix:///path
// for a socket only its owner may use.
func listenAPI(addr string) (net.Listener, error) {
	network, address, err := config.ParseListenAddr(addr)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		return net.Listen(network, address)
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(address); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	lis, err := net.Listen("unix", address)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(address, 0o600); err != nil {
		lis.Close()
		return nil, err
	}
	return lis, nil
}

// addrs returns the bound addresses.
func (s *sidecar) addrs() Addrs {
	return Addrs{
		Webhook: s.webhookLis.Addr().String(),
		GRPC:    apiAddr(s.grpcLis),
		HTTP:    apiAddr(s.httpLis),
		Admin:   s.adminLis.Addr().String(),
	}
}

func apiAddr(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix://" + l.Addr().String()
	}
	return l.Addr().String()
}

// ready reports whether the sidecar can take events: listeners up, store
// answering, not draining.
func (s *sidecar) ready(ctx context.Context) error {
	switch {
	case s.draining.Load():
		return errors.New("draining for shutdown")
	case !s.up.Load():
		return errors.New("starting")
	}
	if err := s.store.check(time.Now(), 0); err != nil {
		return err
	}
	return s.log.Ping(ctx)
}

// alive reports whether the process is worth keeping: not when appends have
// failed for storeFailureLimit without a success.
func (s *sidecar) alive(context.Context) error {
	return s.store.check(time.Now(), storeFailureLimit)
}

// storeHealth follows the outcome of appends. JetStream's file store stops
// taking writes after a write error such as a full disk, and stays so after
// space returns until the process restarts (measured: every append then
// times out). A run of failures is reported by /readyz at once and, once it
// has lasted storeFailureLimit, by /healthz, so that the orchestrator
// restarts the sidecar; the restart recovers the store like any crash.
type storeHealth struct {
	mu           sync.Mutex
	failingSince time.Time // zero while the last append succeeded
	lastErr      error
}

func (h *storeHealth) record(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.failingSince, h.lastErr = time.Time{}, nil
	case h.failingSince.IsZero():
		h.failingSince, h.lastErr = now, err
	default:
		h.lastErr = err
	}
}

// check returns an error when appends have been failing for longer than limit.
func (h *storeHealth) check(now time.Time, limit time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failingSince.IsZero() || now.Sub(h.failingSince) < limit {
		return nil
	}
	return fmt.Errorf("event store failing since %s: %v", h.failingSince.UTC().Format(time.RFC3339), h.lastErr)
}

// serve serves every listener until ctx ends, then shuts down in order:
// readiness and health go false and the webhook answers 503; streams get
// the grace period to settle what they hold; then the listeners close
// (SendEvent works until here), the forwarder stops, and the store closes
// last.
func (s *sidecar) serve(ctx context.Context) error {
	defer s.close()
	cfg := s.cfg
	g, gctx := errgroup.WithContext(ctx)

	webhookSrv := &http.Server{
		Handler:           s.hook,
		ReadHeaderTimeout: webhookReadHeaderTimeout,
		ReadTimeout:       webhookReadTimeout,
		WriteTimeout:      webhookWriteTimeout,
		IdleTimeout:       webhookIdleTimeout,
		MaxHeaderBytes:    webhookMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	if s.cert != nil {
		webhookSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.cert.GetCertificate}
	}
	conn, err := grpc.NewClient(grpcTarget(s.grpcLis), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("gateway connection: %w", err)
	}
	defer conn.Close()
	gw, err := gateway.New(ctx, conn, gateway.Options{Logger: s.logger, LoopbackHostOnly: !cfg.AllowRemoteAPI})
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.logger.With("component", "gateway").Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{Handler: adminHandler(s.reg, s.alive, s.ready), ReadHeaderTimeout: 10 * time.Second}

	serveHTTP := func(srv *http.Server, lis net.Listener, tlsOn bool) func() error {
		return func() error {
			var err error
			if tlsOn {
				err = srv.ServeTLS(lis, "", "")
			} else {
				err = srv.Serve(lis)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		}
	}
	g.Go(serveHTTP(webhookSrv, s.webhookLis, s.cert != nil))
	g.Go(serveHTTP(httpSrv, s.httpLis, false))
	g.Go(serveHTTP(adminSrv, s.adminLis, false))
	g.Go(func() error { return s.grpcSrv.Serve(s.grpcLis) })
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var bg errgroup.Group
	bg.Go(func() error { return s.watcher.Run(bgCtx) })
	bg.Go(func() error { return s.out.Run(bgCtx) })
	if s.markFile != "" {
		bg.Go(func() error {
			t := time.NewTicker(markInterval)
			defer t.Stop()
			for {
				select {
				case <-bgCtx.Done():
					return nil
				case <-t.C:
					if err := s.log.Mark(bgCtx, s.markFile); err != nil && bgCtx.Err() == nil {
						s.logger.Warn("write the event log's mark", "err", err)
					}
				}
			}
		})
	}

	s.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(sidecarv1.EventService_ServiceDesc.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	s.up.Store(true)
	a := s.addrs()
	s.logger.Info("ready", "webhook_addr", a.Webhook, "webhook_tls", s.cert != nil, "grpc_addr", a.GRPC, "http_addr", a.HTTP, "admin_addr", a.Admin)

	<-gctx.Done()
	s.logger.Info("shutting down", "grace", cfg.ShutdownGrace)
	s.draining.Store(true)
	s.health.Shutdown()
	s.hook.Drain()
	s.log.Quiesce()
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	if err := s.svc.WaitStreams(graceCtx); err != nil {
		s.logger.Warn("grace period over; ending open streams", "streams", s.svc.OpenStreams())
	}
	cancel()
	s.svc.CancelStreams()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
	defer cancel()
	_ = webhookSrv.Shutdown(sctx)
	_ = httpSrv.Shutdown(sctx)
	stopped := make(chan struct{})
	go func() { s.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grpcStopTimeout):
		s.grpcSrv.Stop()
		<-stopped
	}
	_ = adminSrv.Shutdown(sctx)
	stopBackground()
	bgErr := bg.Wait()
	if s.markFile != "" {
		if err := s.log.Mark(context.WithoutCancel(ctx), s.markFile); err != nil {
			s.logger.Warn("write the event log's mark", "err", err)
		}
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	s.logger.Info("stopped")
	return errors.Join(err, ignoreCanceled(bgErr))
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// grpcTarget is the address the gateway dials to reach our own gRPC listener.
func grpcTarget(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix://" + l.Addr().String()
	}
	return "passthrough:///" + l.Addr().String()
}

// close releases what startSidecar opened, store last.
func (s *sidecar) close() {
	for _, l := range []net.Listener{s.webhookLis, s.grpcLis, s.httpLis, s.adminLis} {
		if l != nil {
			l.Close()
		}
	}
	if s.log != nil {
		s.log.Close()
	}
	if s.closeNC != nil {
		s.closeNC()
	}
}

// timedStore appends webhook events to the log, times each append and
// tells the store's health.
type timedStore struct {
	log    *eventlog.Log
	met    *metrics.Metrics
	health *storeHealth
}

func (t timedStore) Append(ctx context.Context, e webhook.Event) (bool, error) {
	start := time.Now()
	dup, err := t.log.Append(ctx, eventlog.Event{ID: e.ID, Type: e.Type, Payload: e.Payload, SignedAt: e.SignedAt, ReceivedAt: e.ReceivedAt})
	t.met.StoreWrite(time.Since(start), err)
	t.health.record(err, time.Now())
	return dup, err
}
