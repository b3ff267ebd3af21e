// Package sidecar assembles chronoshub-sidecar from a validated
// configuration: the event store (embedded JetStream or an external
// cluster), the event log, the outbox, the webhook, the gRPC API and its
// REST gateway, the admin listener, the background tasks and their
// supervision, store health and the shutdown order. It is the one copy of
// that wiring: `serve`, `dev`, the benchmark and the end-to-end tests all
// run the sidecar through it.
//
// The life of a sidecar: Start opens the store and binds every listener
// (nothing is served yet, so a caller can print the addresses); Run serves
// until its context ends, then drains and stops in order; Close releases
// what Start opened when Run is never called.
package sidecar

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/console"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/datadir"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/gateway"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// Timeouts of the app-facing and admin listeners and of shutdown. The
// webhook listener's are package webhook's, with the settings of config.
const (
	apiHeaderTimeout    = 10 * time.Second
	httpShutdownTimeout = 5 * time.Second
	grpcStopTimeout     = 5 * time.Second
	// healthInterval is how often gRPC health follows readiness.
	healthInterval = time.Second
	// markFileName, in the data dir, holds the event log's mark;
	// markInterval is how often it is written.
	markFileName = "eventlog-mark.json"
	markInterval = time.Second
	// messageOverhead is what a stored event or an API message carries
	// besides its payload (headers, ids, field tags), in bytes.
	messageOverhead = 64 << 10
)

// Options are the sidecar's dependencies that are not configuration.
type Options struct {
	// Logger receives the sidecar's logs. Nil discards them.
	Logger *slog.Logger
	// Registry receives the sidecar's metrics. Nil means a new registry.
	Registry *prometheus.Registry
	// Getenv reads the OpenTelemetry variables (OTEL_*) that turn tracing
	// on. Nil means tracing is off.
	Getenv func(string) string
}

// Addrs are the addresses the sidecar listens on, as bound (":0" resolved;
// unix sockets as unix:///path).
type Addrs struct {
	Webhook, GRPC, HTTP, Admin string
}

// Sidecar is one sidecar, from Start to the end of Run.
type Sidecar struct {
	cfg    *config.Config
	logger *slog.Logger
	reg    *prometheus.Registry
	met    *metrics.Metrics

	lock        *datadir.Lock // nil with an external NATS
	nc          *nats.Conn
	js          jetstream.JetStream // with the domain applied, for the log and the outbox
	closeNC     func()
	markFile    string // the event log's mark (see eventlog.Verify); "" with an external NATS
	log         *eventlog.Log
	out         *outbox.Outbox
	hook        *webhook.Server
	svc         *grpcapi.Service
	health      *health.Server
	grpcSrv     *grpc.Server
	watcher     *credentials.Watcher
	cert        *credentials.Certificate
	sup         *supervisor
	pushers     map[string]*push.Pusher // by subscription
	tracer      *tracing.Tracer         // Setup's: recording, propagating only, or nil
	stopTracing func(context.Context) error
	draining    atomic.Bool
	up          atomic.Bool
	store       storeHealth
	closeOne    sync.Once
	commit      func(context.Context) error // embedded store's group commit (CHRONOSHUB_SYNC=always), else nil

	webhookLis, grpcLis, httpLis, adminLis net.Listener
}

// Start opens the store and binds every listener; nothing is served until
// Run. Listeners that cannot be bound are reported together, each naming
// its setting. On error, everything opened is closed again.
func Start(ctx context.Context, cfg *config.Config, opts Options) (_ *Sidecar, err error) {
	s := &Sidecar{
		cfg:    cfg,
		logger: cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		reg:    cmp.Or(opts.Registry, prometheus.NewRegistry()),
	}
	s.met = metrics.New(s.reg)
	s.sup = newSupervisor(s.logger, time.Now)
	s.sup.observe = metrics.NewTasks(s.reg)
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.Getenv != nil {
		if s.tracer, s.stopTracing, err = tracing.Setup(ctx, opts.Getenv); err != nil {
			return nil, err
		}
		if s.tracer.TracerProvider() != nil {
			// The SDK's errors (a collector that cannot be reached) go
			// to the sidecar's log, in its format, not to stderr as
			// plain text. The handler is the process's: one sidecar per
			// process.
			tracing.LogErrors(s.logger)
		}
	}
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	if err := s.verifyMark(ctx); err != nil {
		return nil, err
	}
	if err := s.declare(ctx); err != nil {
		return nil, err
	}
	if err := s.buildServices(ctx); err != nil {
		return nil, err
	}
	if err := s.bind(); err != nil {
		return nil, err
	}
	return s, nil
}

// storeMaxMessage is the largest message the store must take: the largest
// webhook or SendEvent payload and its headers.
func (s *Sidecar) storeMaxMessage() int64 {
	return max(s.cfg.WebhookMaxBodyBytes, s.cfg.MaxPayloadBytes) + messageOverhead
}

// fitBodyLimits makes the body limits fit an external NATS server that
// takes messages of at most maxPayload bytes (its max_payload, 1 MiB unless
// configured): a limit the operator left at its default is lowered to
// maxPayload less the headers' room, and logged; one set explicitly that
// does not fit is refused, naming it and both figures. The caller's Config
// is never changed: s gets a copy.
func (s *Sidecar) fitBodyLimits(maxPayload int64) error {
	if s.storeMaxMessage() <= maxPayload {
		return nil
	}
	cfg := *s.cfg
	room := maxPayload - messageOverhead
	var refused []string
	for _, l := range []struct {
		env   string
		value *int64
		dflt  bool
	}{
		{"CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", &cfg.WebhookMaxBodyBytes, cfg.WebhookMaxBodyBytesDefault},
		{"CHRONOSHUB_MAX_PAYLOAD_BYTES", &cfg.MaxPayloadBytes, cfg.MaxPayloadBytesDefault},
	} {
		switch {
		case *l.value <= room:
		case l.dflt && room > 0:
			s.logger.Info("body limit lowered to fit the NATS server's max_payload",
				"setting", l.env, "default", *l.value, "limit", room, "max_payload", maxPayload)
			*l.value = room
		default:
			refused = append(refused, fmt.Sprintf("%s=%d", l.env, *l.value))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("the NATS server takes messages of at most %d bytes (its max_payload), so bodies can be at most %d bytes with %d for headers, but %s: raise the server's max_payload or lower the setting",
			maxPayload, max(room, 0), messageOverhead, strings.Join(refused, " and "))
	}
	s.cfg = &cfg
	return nil
}

// openStore connects to the store and opens the event log on it.
func (s *Sidecar) openStore(ctx context.Context) error {
	cfg := s.cfg
	if cfg.NATSURL == "" {
		lock, err := datadir.Acquire(cfg.DataDir)
		if err != nil {
			return err
		}
		s.lock = lock
		if err := checkWritable(cfg.DataDir); err != nil {
			return err
		}
		emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{
			Dir:        cfg.DataDir,
			Sync:       natsconn.Sync{Always: cfg.SyncAlways, Interval: cfg.SyncInterval},
			MaxPayload: int32(s.storeMaxMessage()),
		})
		if err != nil {
			return err
		}
		s.nc, s.js, s.closeNC = emb.Conn(), emb.JetStream(), emb.Close
		if cfg.SyncAlways {
			s.commit = emb.Commit
		}
	} else {
		nc, js, err := natsconn.ConnectExternal(ctx, natsconn.ExternalOptions{
			URL:         cfg.NATSURL,
			CredsFile:   cfg.NATSCredsFile,
			TLSCAFile:   cfg.NATSTLSCAFile,
			TLSCertFile: cfg.NATSTLSCertFile,
			TLSKeyFile:  cfg.NATSTLSKeyFile,
			Domain:      cfg.NATSDomain,
			Logger:      s.logger.With("component", "nats"),
		})
		if err != nil {
			return err
		}
		s.nc, s.js, s.closeNC = nc, js, nc.Close
		if err := s.fitBodyLimits(nc.MaxPayload()); err != nil {
			return err
		}
	}
	return s.startRetry(ctx, "event log", func() (err error) {
		s.log, err = eventlog.Open(ctx, s.nc, eventlog.Options{
			Retention:                 cfg.Retention,
			DuplicateWindow:           cfg.DuplicateWindow,
			AckWait:                   cfg.AckWait,
			MaxAttempts:               cfg.MaxAttempts,
			MaxAckPending:             cfg.MaxAckPending,
			MaxInFlight:               cfg.MaxInFlight,
			Replicas:                  cfg.NATSReplicas,
			Domain:                    cfg.NATSDomain,
			CheckExisting:             cfg.NATSURL != "",
			MaxBytes:                  s.logMaxBytes(),
			MaxSubscriptions:          cfg.MaxSubscriptions,
			MaxFiltersPerSubscription: cfg.MaxFilters,
			SubscriptionIdleExpiry:    cfg.SubscriptionIdleExpiry,
			Commit:                    s.commit,
			Logger:                    s.logger.With("component", "eventlog"),
			Observer:                  s.met,
		})
		return err
	})
}

// clusterStartPatience bounds how long a start on a cluster retries what
// fails, as it does while the cluster elects a leader after a node restart.
const clusterStartPatience = time.Minute

// startRetry calls open until it succeeds. With the embedded store it calls
// it once. On a cluster it retries for clusterStartPatience, with a growing
// delay, every failure but a settings mismatch (which waiting cannot mend),
// so that a replica started during a leader election does not crash-loop.
func (s *Sidecar) startRetry(ctx context.Context, what string, open func() error) error {
	err := open()
	if s.cfg.NATSURL == "" {
		return err
	}
	deadline := time.Now().Add(clusterStartPatience)
	for wait := 500 * time.Millisecond; err != nil; wait = min(2*wait, 5*time.Second) {
		var mismatch *natsconn.MismatchError
		if errors.As(err, &mismatch) || time.Now().After(deadline) {
			return err
		}
		s.logger.Warn("open "+what+" on the cluster failed; retrying", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		err = open()
	}
	return nil
}

// verifyMark reports, with the embedded store, events JetStream dropped
// while repairing damaged files at start.
func (s *Sidecar) verifyMark(ctx context.Context) error {
	cfg := s.cfg
	if cfg.NATSURL == "" {
		s.markFile = filepath.Join(cfg.DataDir, markFileName)
		lost, err := s.log.Verify(ctx, s.markFile)
		if err != nil {
			return err
		}
		if lost > 0 {
			s.met.StoreLost(lost)
			s.logger.Error("event store damaged: JetStream repaired its files at start by dropping events; they cannot be delivered (ChronosHub does not resend events it got a 2xx for)",
				"events_lost", lost, "data_dir", cfg.DataDir)
		}
	}
	return nil
}

// buildServices builds the outbox, the webhook, the gRPC service and the
// credential watcher over the open store.
func (s *Sidecar) buildServices(ctx context.Context) error {
	cfg := s.cfg
	s.watcher = credentials.NewWatcher(credentials.WatcherOptions{
		Interval:      cfg.CredentialsPollInterval,
		RotationGrace: cfg.SecretRotationGrace,
		Logger:        s.logger,
		OnReload:      s.met.CredentialReload,
	})
	s.watcher.Add(cfg.APIKey, cfg.WebhookSecrets, cfg.APIToken)
	if s.cert = cfg.TLSCertificate; s.cert != nil {
		s.watcher.AddCertificate(s.cert)
	}
	client, err := chronoshub.NewClient(cfg.BaseURL, cfg.APIKey.Reveal, chronoshub.Options{
		MaxAttempts:   cfg.SendMaxAttempts,
		OnRetry:       s.met.ChronosHubRetry,
		WrapTransport: s.tracer.WrapTransport,
	})
	if err != nil {
		return err
	}
	err = s.startRetry(ctx, "outbox", func() (err error) {
		s.out, err = outbox.Open(ctx, s.js, client, outbox.Options{
			Replicas:          cfg.NATSReplicas,
			Tracer:            s.tracer,
			IdempotencyWindow: cfg.IdempotencyWindow,
			FailAfter:         cfg.AsyncFailAfter,
			Concurrency:       cfg.AsyncConcurrency,
			OrderByType:       cfg.AsyncOrderByType,
			Logger:            s.logger,
			OnOutcome:         func(st outbox.State) { s.met.Sent(st.String()) },
		})
		return err
	})
	if err != nil {
		return err
	}
	check, err := eventcheck.New(eventcheck.Options{
		AllowedTypes:    cfg.AllowedEventTypes,
		SchemaDir:       cfg.SchemaDir,
		MaxPayloadBytes: int(cfg.MaxPayloadBytes),
	})
	if err != nil {
		return err
	}
	recent := webhook.NewRecent(0) // the console's list of recent webhooks
	s.hook = webhook.New(timedStore{s.log, s.commit, s.met, &s.store}, cfg.WebhookSecrets.Secrets, webhook.Options{
		Path:                 cfg.WebhookPath,
		MaxBodyBytes:         cfg.WebhookMaxBodyBytes,
		MaxInFlightBodyBytes: cfg.WebhookMaxBodyMemory,
		AppendTimeout:        cfg.WebhookStoreTimeout,
		Tolerance:            cfg.WebhookTolerance,
		Logger:               s.logger,
		Observer:             s.met,
		Tracer:               s.tracer,
		Recent:               recent,
	})
	metrics.RegisterStats(s.reg, s.subscriptionStats, s.out.Pending, s.logger)
	metrics.RegisterHealth(s.reg, s.Ready, s.out.Oldest, s.logger)

	var out grpcapi.Outbox = s.out
	if s.commit != nil {
		out = committedOutbox{s.out, s.commit}
	}
	s.svc = grpcapi.New(s.log, out, check, grpcapi.Options{
		SendTimeout: cfg.SendTimeout,
		Logger:      s.logger.With("component", "grpcapi"),
		Tracer:      s.tracer,
		PushState:   s.pushStateProto,
		Webhooks:    recent,
	})
	unary := []grpc.UnaryServerInterceptor{s.met.UnaryInterceptor()}
	stream := []grpc.StreamServerInterceptor{s.met.StreamInterceptor()}
	if cfg.APIToken != nil {
		u, st := grpcapi.BearerAuth(cfg.APIToken.Reveal)
		unary, stream = append(unary, u), append(stream, st)
	}
	// Keepalive: idle streams survive clients that ping (see
	// grpcapi.DefaultKeepalive, docs/api.md).
	opts := append(grpcapi.DefaultKeepalive().ServerOptions(), s.tracer.GRPCServerOptions()...)
	s.grpcSrv = grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		// A SendEvent carries a payload up to MaxPayloadBytes; gRPC's
		// default 4 MiB stays the floor for long lists of ids. What the
		// server sends (events up to the webhook's body limit, pages of
		// dead letters) is not capped: grpc-go's default.
		grpc.MaxRecvMsgSize(max(4<<20, int(cfg.MaxPayloadBytes)+messageOverhead)),
		// Each RPC on a goroutine of a pool keeps the stack it grew:
		// a new goroutine per call (gRPC's default) grows and copies its
		// stack on every SendEvent and AckEvents. A stream holds its
		// worker while open; with all busy, gRPC falls back to a goroutine
		// per call.
		grpc.NumStreamWorkers(grpcWorkers),
	}, opts...)...)
	sidecarv1.RegisterEventServiceServer(s.grpcSrv, s.svc)
	s.health = health.NewServer()
	s.setHealth(grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	grpc_health_v1.RegisterHealthServer(s.grpcSrv, s.health)
	reflection.Register(s.grpcSrv)
	return nil
}

// grpcWorkers is the app-facing server's pool of goroutines for RPCs. In
// the bench's profile of 8 SendEvent callers, stack growth (runtime.newstack)
// fell from 12.7 % to 3.3 % of the sidecar's CPU with it; idle RSS grew by
// 0.4 MiB.
const grpcWorkers = 256

// bind binds every listener, reporting every one that fails.
func (s *Sidecar) bind() error {
	cfg := s.cfg
	var errs []error
	listen := func(name, setting, addr string, fn func(string) (net.Listener, error)) net.Listener {
		l, err := fn(addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s listener: %w", name, config.ListenError(setting, addr, err)))
		}
		return l
	}
	tcp := func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	s.webhookLis = listen("webhook", "CHRONOSHUB_WEBHOOK_ADDR", cfg.WebhookAddr, tcp)
	s.grpcLis = listen("gRPC", "CHRONOSHUB_GRPC_ADDR", cfg.GRPCAddr, listenAPI)
	s.httpLis = listen("REST", "CHRONOSHUB_HTTP_ADDR", cfg.HTTPAddr, listenAPI)
	s.adminLis = listen("admin", "CHRONOSHUB_ADMIN_ADDR", cfg.AdminAddr, tcp)
	return errors.Join(errs...)
}

// autoLogMaxBytes is the largest automatic cap of the embedded log.
const autoLogMaxBytes = 1 << 30

// logMaxBytes is the event log's size cap: the setting, or when it is 0, on
// the embedded store half the data dir's free space, at most
// autoLogMaxBytes (JetStream reserves a stream's cap on disk at creation
// and refuses one larger than the disk), and no cap on a cluster.
func (s *Sidecar) logMaxBytes() int64 {
	if s.cfg.LogMaxBytes > 0 || s.cfg.NATSURL != "" {
		return s.cfg.LogMaxBytes
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.DataDir, &st); err != nil {
		return autoLogMaxBytes
	}
	return min(autoLogMaxBytes, int64(st.Bavail)*int64(st.Bsize)/2) // Bsize is uint32 on darwin
}

// checkWritable makes sure dir exists and takes writes, so that a read-only
// or unusable data dir is refused at once with its reason (the embedded
// server would otherwise wait for its start timeout).
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	if err := errors.Join(f.Sync(), f.Close(), os.Remove(name)); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	return nil
}

// Addrs returns the bound addresses.
func (s *Sidecar) Addrs() Addrs {
	return Addrs{
		Webhook: s.webhookLis.Addr().String(),
		GRPC:    apiAddr(s.grpcLis),
		HTTP:    apiAddr(s.httpLis),
		Admin:   s.adminLis.Addr().String(),
	}
}

// ReloadCredentials re-reads the credential and certificate files at once,
// as the watcher does every CHRONOSHUB_CREDENTIALS_POLL_INTERVAL, and logs
// what changed or failed; serve calls it on SIGHUP. It may be called while
// Run runs.
func (s *Sidecar) ReloadCredentials() { s.watcher.Check() }

// WebhookTLS reports whether the webhook listener serves HTTPS.
func (s *Sidecar) WebhookTLS() bool { return s.cert != nil }

func apiAddr(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix://" + l.Addr().String()
	}
	return l.Addr().String()
}

// Ready reports whether the sidecar can take events: listeners up, store
// answering and not failing, background tasks running, not draining.
func (s *Sidecar) Ready(ctx context.Context) error {
	switch {
	case s.draining.Load():
		return errors.New("draining for shutdown")
	case !s.up.Load():
		return errors.New("starting")
	}
	if err := s.store.check(time.Now(), 0); err != nil {
		return err
	}
	if err := s.sup.check(); err != nil {
		return err
	}
	return s.log.Ping(ctx)
}

// Alive reports whether the process is worth keeping: not when appends have
// failed for the store failure limit without a success.
//
// Only the embedded store is judged so: its file store stays broken after
// a write error until the process restarts. An external cluster's outage
// is not mended by restarting its clients, so there readiness alone says
// it (and comes back by itself, see followHealth).
func (s *Sidecar) Alive(context.Context) error {
	if s.cfg.NATSURL != "" {
		return nil
	}
	return s.store.check(time.Now(), s.cfg.StoreFailureLimit)
}

func (s *Sidecar) setHealth(st grpc_health_v1.HealthCheckResponse_ServingStatus) {
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(sidecarv1.EventService_ServiceDesc.ServiceName, st)
}

// probeStore, while appends are failing, tries a write and clears the
// failure when it succeeds (see storeHealth).
func (s *Sidecar) probeStore(ctx context.Context) {
	if !s.store.failing() {
		return
	}
	if err := s.log.Probe(ctx); err == nil {
		s.store.record(nil, time.Now())
		s.logger.Info("event store takes writes again")
	}
}

// followHealth keeps gRPC health equal to readiness (and probes a failing
// store) until ctx ends.
func (s *Sidecar) followHealth(ctx context.Context) error {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		st := grpc_health_v1.HealthCheckResponse_SERVING
		pctx, cancel := context.WithTimeout(ctx, healthInterval)
		s.probeStore(pctx)
		if s.Ready(pctx) != nil {
			st = grpc_health_v1.HealthCheckResponse_NOT_SERVING
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		s.setHealth(st)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// writeMarks writes the event log's mark every markInterval until ctx ends.
func (s *Sidecar) writeMarks(ctx context.Context) error {
	t := time.NewTicker(markInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.log.Mark(ctx, s.markFile); err != nil && ctx.Err() == nil {
				s.logger.Warn("write the event log's mark", "err", err)
			}
		}
	}
}

// Run serves every listener until ctx ends or a background task gives up,
// then shuts down in order: readiness and health go false and the webhook
// answers 503; streams get the grace period to settle what they hold; then
// the listeners close (SendEvent works until here), the background tasks
// stop, and the store closes last. Run closes the sidecar.
func (s *Sidecar) Run(ctx context.Context) error {
	defer s.Close()
	cfg := s.cfg
	g, gctx := errgroup.WithContext(ctx)

	hookOpts := webhook.ServerOptions{
		ReadHeaderTimeout: cfg.WebhookHeaderTimeout,
		MaxConns:          cfg.WebhookMaxConns,
		ErrorLog:          slog.NewLogLogger(s.logger.With("component", "webhook").Handler(), slog.LevelWarn),
	}
	if hookOpts.MaxConns == 0 {
		hookOpts.MaxConns = -1 // config: 0 is no cap
	}
	if s.cert != nil {
		hookOpts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.cert.GetCertificate}
	}
	webhookSrv, webhookLis := s.hook.HTTPServer(s.webhookLis, hookOpts)
	conn, err := grpc.NewClient(grpcTarget(s.grpcLis),
		append(s.tracer.GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return fmt.Errorf("gateway connection: %w", err)
	}
	defer conn.Close()
	gw, err := gateway.New(ctx, conn, gateway.Options{
		Logger:           s.logger,
		LoopbackHostOnly: !cfg.AllowRemoteAPI,
		MaxBodyBytes:     cfg.MaxPayloadBytes + gateway.BodyOverheadBytes,
	})
	if err != nil {
		return err
	}
	// The console at /console, beside the REST API it reads.
	api := console.Handler(gw, console.Options{LoopbackHostOnly: !cfg.AllowRemoteAPI})
	httpSrv := &http.Server{Handler: s.tracer.ContinueHTTP(api), ReadHeaderTimeout: apiHeaderTimeout,
		ErrorLog: slog.NewLogLogger(s.logger.With("component", "gateway").Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{Handler: adminHandler(s.reg, s.Alive, s.Ready, cfg.Pprof != config.PprofOff), ReadHeaderTimeout: apiHeaderTimeout}

	g.Go(serveHTTP(webhookSrv, webhookLis, s.cert != nil))
	g.Go(serveHTTP(httpSrv, s.httpLis, false))
	g.Go(serveHTTP(adminSrv, s.adminLis, false))
	g.Go(serveGRPC(s.grpcSrv, s.grpcLis))

	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	s.sup.Go(bgCtx, "credential watcher", s.watcher.Run)
	s.sup.Go(bgCtx, "async forwarder", s.out.Run)
	if s.markFile != "" {
		s.sup.Go(bgCtx, "mark writer", s.writeMarks)
	}

	pushCtx, stopPush := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPush()
	s.runPushers(pushCtx)

	s.up.Store(true)
	s.sup.Go(bgCtx, "health", s.followHealth)
	a := s.Addrs()
	s.logger.Info("ready", "webhook_addr", a.Webhook, "webhook_tls", s.cert != nil, "grpc_addr", a.GRPC, "http_addr", a.HTTP, "admin_addr", a.Admin)

	var fatal error
	select {
	case <-gctx.Done():
	case fatal = <-s.sup.Fatal():
	}
	// Not ready before the line that says so.
	s.draining.Store(true)
	s.logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	s.health.Shutdown()
	s.hook.Drain()
	s.log.Quiesce()
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	if n := s.svc.OpenStreams(); n > 0 {
		s.logger.Info("waiting for open streams to settle the events they hold",
			"streams", n, "unsettled_by_subscription", s.log.Holding(), "grace", cfg.ShutdownGrace.String())
	}
	if err := s.svc.WaitStreams(graceCtx); err != nil {
		s.logger.Warn("grace period over; ending open streams, their unsettled events are offered again",
			"streams", s.svc.OpenStreams(), "unsettled_by_subscription", s.log.Holding())
	}
	if err := s.waitPushers(graceCtx); err != nil {
		s.logger.Warn("grace period over; stopping push delivery, its unsettled events are offered again",
			"unsettled_by_subscription", s.log.Holding())
	}
	cancel()
	s.svc.CancelStreams()
	stopPush()

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
	s.sup.Wait()
	if s.markFile != "" {
		if err := s.log.Mark(context.WithoutCancel(ctx), s.markFile); err != nil {
			s.logger.Warn("write the event log's mark", "err", err)
		}
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if s.stopTracing != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
		if terr := s.stopTracing(tctx); terr != nil {
			s.logger.Warn("flush traces", "err", terr)
		}
		cancel()
	}
	s.logger.Info("stopped")
	return errors.Join(fatal, err)
}

// serveHTTP returns a function that serves srv on lis until it is shut down.
func serveHTTP(srv *http.Server, lis net.Listener, tlsOn bool) func() error {
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

// serveGRPC returns a function that serves srv on lis until it is stopped.
// A stop that comes before Serve runs (a shutdown right after the start)
// is no error: Serve then returns grpc.ErrServerStopped at once.
func serveGRPC(srv *grpc.Server, lis net.Listener) func() error {
	return func() error {
		if err := srv.Serve(lis); !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}
}

// grpcTarget is the address the gateway dials to reach our own gRPC listener.
func grpcTarget(l net.Listener) string {
	if l.Addr().Network() == "unix" {
		return "unix://" + l.Addr().String()
	}
	return "passthrough:///" + l.Addr().String()
}

// Close releases what Start opened, the store last and then the data
// directory's lock. Run calls it; call it only when Run is never called.
func (s *Sidecar) Close() { s.closeOne.Do(s.close) }

func (s *Sidecar) close() {
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
	if s.lock != nil {
		s.lock.Release()
	}
}

// subscriptionStats gives the metrics package the event log's figures.
func (s *Sidecar) subscriptionStats(ctx context.Context) ([]metrics.SubscriptionStat, error) {
	subs, err := s.log.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.SubscriptionStat, len(subs))
	names := make([]string, len(subs))
	for i, sub := range subs {
		out[i] = metrics.SubscriptionStat{Name: sub.Name, Pending: sub.Pending, Unacked: sub.Unacked, DeadLetters: sub.DeadLetters, OldestUnacked: sub.OldestUnacked}
		names[i] = sub.Name
	}
	// Series of subscriptions deleted or expired since the last scrape go.
	s.met.KeepSubscriptions(names)
	return out, nil
}

// timedStore appends webhook events to the log, waits for the store's
// group commit when there is one, times each append and tells the store's
// health.
type timedStore struct {
	log    *eventlog.Log
	commit func(context.Context) error // nil: appended is stored
	met    *metrics.Metrics
	health *storeHealth
}

func (t timedStore) Append(ctx context.Context, e webhook.Event) (bool, error) {
	start := time.Now()
	dup, err := t.log.Append(ctx, eventlog.Event{
		ID: e.ID, DedupKey: e.DedupKey, Type: e.Type, Payload: e.Payload, SignedAt: e.SignedAt, ReceivedAt: e.ReceivedAt,
		TraceParent: e.TraceParent, TraceState: e.TraceState,
	})
	if err == nil && t.commit != nil {
		// A duplicate waits too: the first copy may be a concurrent
		// webhook's, appended and not yet fsynced.
		err = t.commit(ctx)
	}
	t.met.StoreWrite(time.Since(start), err)
	if errors.Is(err, eventlog.ErrFull) {
		// A full log is the app falling behind, not a broken store: a
		// restart would not help, so health is not told.
		return false, fmt.Errorf("%w: %w", webhook.ErrFull, err)
	}
	t.health.record(err, time.Now())
	return dup, err
}

// committedOutbox makes an asynchronous SendEvent wait for the store's group
// commit: the event it queued is fsynced before the app is told it is
// queued, as CHRONOSHUB_SYNC=always promises.
type committedOutbox struct {
	*outbox.Outbox
	commit func(context.Context) error
}

func (o committedOutbox) Enqueue(ctx context.Context, eventType string, payload []byte, key string) (outbox.Record, error) {
	rec, err := o.Outbox.Enqueue(ctx, eventType, payload, key)
	if err != nil {
		return rec, err
	}
	if err := o.commit(ctx); err != nil {
		return outbox.Record{}, fmt.Errorf("queue event: %w", err)
	}
	return rec, nil
}
