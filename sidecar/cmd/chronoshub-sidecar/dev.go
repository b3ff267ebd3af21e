package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/datadir"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

const devUsage = `Usage: chronoshub-sidecar dev [flags] [-- app command...]

The playground: the sidecar and an in-process ChronosHub emulator wired
together, with no configuration. It generates a self-signed certificate, a
dev API key and a webhook secret the first time and keeps them, with its
data, under --dir for the next runs (--regenerate makes new ones); it prints
how to receive events and how to send one. One dev at a time per --dir.
Ctrl-C stops everything (so do SIGTERM and SIGHUP, as when the terminal
closes). Not for production: use "serve".

With "-- app command...", dev runs the app once the playground is ready,
with CHRONOSHUB_GRPC_ADDR, CHRONOSHUB_HTTP_ADDR, CHRONOSHUB_WEBHOOK_URL,
CHRONOSHUB_EMULATOR_URL, CHRONOSHUB_DEV_CERT_FILE (and CHRONOSHUB_API_TOKEN
when dev's environment sets one) added to its environment; a signal to dev
reaches the app as SIGTERM, and when either side ends, everything stops and
dev exits with the app's status.

With --forward-to URL, dev also pushes every event to that URL on loopback
(push delivery, docs/push.md): one POST per event on the subscription
"forward", signed in the Standard Webhooks format with a secret kept in
--dir (printed, and given to the app as CHRONOSHUB_PUSH_SECRET). Events wait
while nothing listens there, so the app may start after dev.

Flags:
`

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// A closed terminal (SIGHUP) stops the playground as Ctrl-C does, with
	// its app and its store closed, instead of killing it undrained.
	ctx, stopHUP := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stopHUP()
	fs := newFlagSet("dev")
	dir := fs.String("dir", ".chronoshub-dev", "where the playground keeps its data and certificate")
	webhookAddr := fs.String("webhook-addr", "127.0.0.1:8443", "webhook listener (HTTPS)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:50051", "app-facing gRPC listener")
	httpAddr := fs.String("http-addr", "127.0.0.1:50052", "app-facing REST listener")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "health and metrics listener")
	emulatorAddr := fs.String("emulator-addr", "127.0.0.1:8080", "the emulator's HTTP API (ChronosHub's inbound API and /_emulator/…)")
	retryBase := fs.Duration("emulator-retry-base", time.Second, "wait before the emulator's first webhook retry; doubles each retry")
	eventTypes := fs.String("event-types", strings.Join(emulator.DefaultEventTypes(), ","), eventTypesUsage)
	regenerate := fs.Bool("regenerate", false, "make a new API key, webhook secret and certificate instead of reusing those in --dir")
	forwardTo := fs.String("forward-to", "", "push every event to this loopback `URL` (one POST each, subscription \"forward\")")
	if err := parseFlags(fs, devUsage, args, stdout); err != nil {
		return err
	}
	// Everything after "--" is the app to run against the playground.
	var app []string
	if rest := fs.Args(); len(rest) > 0 {
		if i := slices.Index(args, "--"); i < 0 || len(args)-i-1 != len(rest) {
			return fmt.Errorf("dev: unexpected arguments %q (put the app's command after --)", rest)
		}
		app = rest
	}
	// JSON, as serve's default: scripts read dev's "ready" line.
	logger := newFormatLogger(stderr, config.LogJSON, slog.LevelInfo)
	routeGRPCLogs(ctx, logger)

	// The dev dir is one playground's: a second dev on it would share the
	// store and replace the certificate the first one serves.
	lock, err := datadir.Acquire(*dir)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer lock.Release()
	creds, err := devcert.LoadCredentials(*dir, *regenerate)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	certFile, keyFile := creds.CertFile, creds.KeyFile
	apiKey, secret := creds.APIKey, creds.WebhookSecret
	client, err := webhookClient(certFile, false)
	if err != nil {
		return err
	}
	types, err := authorisedTypes(*eventTypes)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	emu, err := emulator.New(emulator.Options{
		APIKey:        apiKey,
		WebhookSecret: []byte(secret),
		Logger:        logger,
		HTTPClient:    client,
		RetryBase:     *retryBase,
		EventTypes:    types,
	})
	if err != nil {
		return err
	}
	defer emu.Close()
	// A busy emulator address is reported together with the sidecar's
	// own listeners' problems.
	emuURL := "http://" + *emulatorAddr
	emuLis, emuErr := net.Listen("tcp", *emulatorAddr)
	if emuErr != nil {
		emuErr = fmt.Errorf("emulator listener: %w", config.ListenError("--emulator-addr", *emulatorAddr, emuErr))
	} else {
		defer emuLis.Close()
		emuURL = "http://" + emuLis.Addr().String()
	}

	env := map[string]string{
		"CHRONOSHUB_BASE_URL":       emuURL,
		"CHRONOSHUB_API_KEY":        apiKey,
		"CHRONOSHUB_WEBHOOK_SECRET": secret,
		"CHRONOSHUB_TLS_CERT_FILE":  certFile,
		"CHRONOSHUB_TLS_KEY_FILE":   keyFile,
		"CHRONOSHUB_WEBHOOK_ADDR":   *webhookAddr,
		"CHRONOSHUB_GRPC_ADDR":      *grpcAddr,
		"CHRONOSHUB_HTTP_ADDR":      *httpAddr,
		"CHRONOSHUB_ADMIN_ADDR":     *adminAddr,
		"CHRONOSHUB_DATA_DIR":       filepath.Join(*dir, "data"),
		"CHRONOSHUB_SHUTDOWN_GRACE": "2s",
		// A token in dev's environment protects its API too, and is
		// handed to the app.
		"CHRONOSHUB_API_TOKEN": getenv("CHRONOSHUB_API_TOKEN"),
	}
	pushSecret := ""
	if *forwardTo != "" {
		if err := push.CheckURL(*forwardTo, "", false); err != nil {
			return fmt.Errorf("dev: --forward-to: %w", err)
		}
		var file string
		if file, pushSecret, err = forwardSubscription(*dir, *forwardTo, *regenerate); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		env["CHRONOSHUB_SUBSCRIPTIONS_FILE"] = file
	}
	cfg, err := config.Parse(nil, func(k string) string { return env[k] }, stderr)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	s, err := startSidecar(ctx, cfg, logger, getenv)
	if err != nil || emuErr != nil {
		if s != nil {
			s.Close()
		}
		return fmt.Errorf("dev: %w", errors.Join(emuErr, err))
	}
	logger.Info("emulator listening", "emulator_addr", emuLis.Addr().String())
	printDevHelp(stdout, devInfo{
		addrs: s.Addrs(), emulator: emuLis.Addr().String(), dir: *dir, certFile: certFile,
		apiKey: apiKey, secret: secret, webhookPath: cfg.WebhookPath, created: creds.Created,
		self: selfCommand(), forwardTo: *forwardTo, pushSecret: pushSecret,
	})

	emuSrv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	// With an app, the playground lives as long as the app does.
	runCtx, stopPlayground := context.WithCancel(ctx)
	defer stopPlayground()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return s.Run(gctx) })
	g.Go(func() error {
		return serveUntilDone(gctx, emuSrv, emuLis, func(l net.Listener) error { return emuSrv.Serve(l) })
	})
	var appErr error
	if len(app) > 0 {
		a := s.Addrs()
		appEnv := map[string]string{
			"CHRONOSHUB_GRPC_ADDR":     a.GRPC,
			"CHRONOSHUB_HTTP_ADDR":     a.HTTP,
			"CHRONOSHUB_WEBHOOK_URL":   "https://" + a.Webhook + cfg.WebhookPath,
			"CHRONOSHUB_EMULATOR_URL":  "http://" + emuLis.Addr().String(),
			"CHRONOSHUB_DEV_CERT_FILE": certFile,
			"CHRONOSHUB_API_TOKEN":     env["CHRONOSHUB_API_TOKEN"],
			"CHRONOSHUB_PUSH_SECRET":   pushSecret,
		}
		g.Go(func() error {
			appErr = runApp(gctx, app, appEnv, stdout, stderr, logger)
			stopPlayground() // the app is done: so is the playground
			return nil
		})
	}
	err = g.Wait()
	return cmp.Or(appErr, err)
}

// appStopGrace is how long the app gets to exit after SIGTERM before it is
// killed.
const appStopGrace = 10 * time.Second

// runApp runs the app's command with the playground's addresses added to
// this process's environment, until it exits. When ctx ends first (a signal,
// or the playground failed), the app gets SIGTERM and appStopGrace to exit.
// A non-zero exit becomes an exitCodeError with the app's status.
func runApp(ctx context.Context, argv []string, env map[string]string, stdout, stderr io.Writer, logger *slog.Logger) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if env[k] != "" {
			cmd.Env = append(cmd.Env, k+"="+env[k])
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dev: start the app: %w", err)
	}
	logger.Info("app started", "command", argv[0], "pid", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(appStopGrace):
			_ = cmd.Process.Kill()
			err = <-done
		}
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		logger.Info("app exited", "status", 0)
		return nil
	case errors.As(err, &exit):
		code := exit.ExitCode()
		if code < 0 { // killed by a signal
			code = 128 + int(exit.Sys().(syscall.WaitStatus).Signal())
		}
		logger.Info("app exited", "status", code)
		return exitCodeError(code)
	}
	return fmt.Errorf("dev: app: %w", err)
}

type devInfo struct {
	addrs                                                      sidecar.Addrs
	emulator, dir, certFile, apiKey, secret, webhookPath, self string
	forwardTo, pushSecret                                      string
	created                                                    bool
}

func printDevHelp(w io.Writer, d devInfo) {
	webhookURL := "https://" + d.addrs.Webhook + d.webhookPath
	grpcHost := strings.TrimPrefix(d.addrs.GRPC, "unix://")
	kept := "kept from an earlier run in " + filepath.Join(d.dir, devcert.CredentialsFile) + "; --regenerate makes new ones"
	if d.created {
		kept = "generated, and kept in " + filepath.Join(d.dir, devcert.CredentialsFile) + " for the next runs"
	}
	fmt.Fprintf(w, `chronoshub-sidecar dev: the sidecar and a ChronosHub emulator, wired together.

  webhook   %[1]s   (self-signed certificate %[2]s)
  gRPC      %[3]s   (chronoshub.sidecar.v1.EventService; reflection and health on)
  REST      http://%[4]s
  console   http://%[4]s/console   (subscriptions, webhooks, events, dead letters, replay)
  admin     http://%[5]s/healthz  /readyz  /metrics
  emulator  http://%[6]s   (ChronosHub's inbound API and /_emulator/…)
  data      %[7]s

Dev credentials (%[10]s):
  API key         %[8]s
  webhook secret  %[9]s

Receive events (each subscription gets every event; streams on one subscription share them):
  %[11]s client stream --addr %[12]s --subscription dev --ack
  curl -N 'http://%[4]s/v1/events:stream?subscription=dev-rest'     (REST; or grpcurl on %[3]s)
Acknowledge, reject, replay dead letters: %[11]s client --help

Have ChronosHub send a webhook (signed, retried like ChronosHub):
  curl -X POST http://%[6]s/_emulator/deliveries -d '{"url":"%[1]s","event_type":"manuscript.submitted"}'
  CHRONOSHUB_WEBHOOK_SECRET=%[9]s %[11]s trigger --ca-file %[2]s %[1]s

Send an event to ChronosHub, then see what it received:
  %[11]s client send --addr %[12]s --type manuscript.submitted --payload '{"manuscriptId":"M-1"}'
  curl -H 'Content-Type: application/json' http://%[4]s/v1/events:send -d '{"type":"manuscript.submitted","payload":{"manuscriptId":"M-1"}}'
  curl http://%[6]s/_emulator/inbound

Run your app against this playground: %[11]s dev -- <command> (it gets CHRONOSHUB_GRPC_ADDR and the rest).
Apps in other languages: examples/ (each README says how to run it against dev).
Ctrl-C stops everything.
`, webhookURL, d.certFile, grpcHost, d.addrs.HTTP, d.addrs.Admin, d.emulator, filepath.Join(d.dir, "data"), d.apiKey, d.secret, kept, d.self, d.addrs.GRPC)
	if d.forwardTo != "" {
		fmt.Fprintf(w, `
Push delivery: every event is POSTed to %[1]s (subscription "forward"; waits while nothing listens there),
  signed in the Standard Webhooks format with %[2]s (the app gets it as CHRONOSHUB_PUSH_SECRET).
  %[3]s client subscriptions get --addr %[4]s --subscription forward     (its push state)
`, d.forwardTo, d.pushSecret, d.self, d.addrs.GRPC)
	}
}

// forwardSubscription writes the declaration of dev's push subscription
// "forward" to url into dir, with a Standard Webhooks signing secret kept
// there (a new one with regenerate), and returns the declaration's file and
// the secret.
func forwardSubscription(dir, url string, regenerate bool) (file, secret string, err error) {
	secretFile := filepath.Join(dir, "push-secret")
	b, err := os.ReadFile(secretFile)
	if err == nil && !regenerate {
		secret = strings.TrimSpace(string(b))
	} else {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		secret = "whsec_" + base64.StdEncoding.EncodeToString(key)
		if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
			return "", "", fmt.Errorf("keep the push signing secret: %w", err)
		}
	}
	decl, _ := json.Marshal(map[string]any{"subscriptions": []any{map[string]any{
		"name": "forward",
		"push": map[string]any{"url": url, "signing_secret_file": secretFile},
	}}})
	file = filepath.Join(dir, "forward-subscriptions.json")
	if err := os.WriteFile(file, decl, 0o600); err != nil {
		return "", "", fmt.Errorf("declare the forward subscription: %w", err)
	}
	return file, secret, nil
}
