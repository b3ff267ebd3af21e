package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/datadir"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

const devUsage = `Usage: chronoshub-sidecar dev [flags]

The playground: the sidecar and an in-process ChronosHub emulator wired
together, with no configuration. It generates a self-signed certificate, a
dev API key and a webhook secret the first time and keeps them, with its
data, under --dir for the next runs (--regenerate makes new ones); it prints
how to receive events and how to send one. One dev at a time per --dir.
Ctrl-C stops everything. Not for production: use "serve".

Flags:
`

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, devUsage); fs.PrintDefaults() }
	dir := fs.String("dir", ".chronoshub-dev", "where the playground keeps its data and certificate")
	webhookAddr := fs.String("webhook-addr", "127.0.0.1:8443", "webhook listener (HTTPS)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:50051", "app-facing gRPC listener")
	httpAddr := fs.String("http-addr", "127.0.0.1:50052", "app-facing REST listener")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "health and metrics listener")
	emulatorAddr := fs.String("emulator-addr", "127.0.0.1:8080", "the emulator's HTTP API (ChronosHub's inbound API and /_emulator/…)")
	retryBase := fs.Duration("emulator-retry-base", time.Second, "wait before the emulator's first webhook retry; doubles each retry")
	regenerate := fs.Bool("regenerate", false, "make a new API key, webhook secret and certificate instead of reusing those in --dir")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dev: unexpected arguments %q", fs.Args())
	}
	logger := newLogger(stderr, slog.LevelInfo)

	// The dev dir is one playground's: a second dev on it would share the
	// store and replace the certificate the first one serves.
	lock, err := datadir.Acquire(*dir)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer lock.Release()
	creds, err := loadDevCredentials(*dir, *regenerate)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	certFile, keyFile := creds.certFile, creds.keyFile
	apiKey, secret := creds.APIKey, creds.WebhookSecret
	client, err := webhookClient(certFile, false)
	if err != nil {
		return err
	}
	emu, err := emulator.New(emulator.Options{
		APIKey:        apiKey,
		WebhookSecret: []byte(secret),
		Logger:        logger,
		HTTPClient:    client,
		RetryBase:     *retryBase,
	})
	if err != nil {
		return err
	}
	defer emu.Close()
	emuLis, err := net.Listen("tcp", *emulatorAddr)
	if err != nil {
		return fmt.Errorf("dev: the emulator cannot listen on %s: %w (choose another address with --emulator-addr)", *emulatorAddr, err)
	}
	defer emuLis.Close()

	env := map[string]string{
		"CHRONOSHUB_BASE_URL":       "http://" + emuLis.Addr().String(),
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
	}
	cfg, err := config.Parse(nil, func(k string) string { return env[k] }, stderr)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	logger.Info("starting", "config", cfg)
	s, err := sidecar.Start(ctx, cfg, sidecar.Options{Logger: logger})
	if err != nil {
		return err
	}
	logger.Info("emulator listening", "emulator_addr", emuLis.Addr().String())
	printDevHelp(stdout, devInfo{
		addrs: s.Addrs(), emulator: emuLis.Addr().String(), dir: *dir, certFile: certFile,
		apiKey: apiKey, secret: secret, webhookPath: cfg.WebhookPath, created: creds.created,
		self: selfCommand(),
	})

	emuSrv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(gctx) })
	g.Go(func() error {
		return serveUntilDone(gctx, emuSrv, emuLis, func(l net.Listener) error { return emuSrv.Serve(l) })
	})
	return g.Wait()
}

type devInfo struct {
	addrs                                                      sidecar.Addrs
	emulator, dir, certFile, apiKey, secret, webhookPath, self string
	created                                                    bool
}

func printDevHelp(w io.Writer, d devInfo) {
	webhookURL := "https://" + d.addrs.Webhook + d.webhookPath
	grpcHost := strings.TrimPrefix(d.addrs.GRPC, "unix://")
	kept := "kept from an earlier run in " + filepath.Join(d.dir, devCredentialsFile) + "; --regenerate makes new ones"
	if d.created {
		kept = "generated, and kept in " + filepath.Join(d.dir, devCredentialsFile) + " for the next runs"
	}
	fmt.Fprintf(w, `chronoshub-sidecar dev: the sidecar and a ChronosHub emulator, wired together.

  webhook   %[1]s   (self-signed certificate %[2]s)
  gRPC      %[3]s   (chronoshub.sidecar.v1.EventService; reflection and health on)
  REST      http://%[4]s
  admin     http://%[5]s/healthz  /readyz  /metrics
  emulator  http://%[6]s   (ChronosHub's inbound API and /_emulator/…)
  data      %[7]s

Dev credentials (%[10]s):
  API key         %[8]s
  webhook secret  %[9]s

Receive events (each subscription gets every event; streams on one subscription share them):
  grpcurl -plaintext -d '{"subscription":"dev-grpc"}' %[3]s chronoshub.sidecar.v1.EventService/StreamEvents
  curl -N 'http://%[4]s/v1/events:stream?subscription=dev-rest'
Acknowledge what you received:
  curl -H 'Content-Type: application/json' http://%[4]s/v1/events:ack -d '{"subscription":"dev-rest","eventIds":["<event id>"]}'

Have ChronosHub send a webhook (signed, retried like ChronosHub):
  curl -X POST http://%[6]s/_emulator/deliveries -d '{"url":"%[1]s","event_type":"manuscript.submitted"}'
  CHRONOSHUB_WEBHOOK_SECRET=%[9]s %[11]s trigger --ca-file %[2]s %[1]s

Send an event to ChronosHub, then see what it received:
  curl -H 'Content-Type: application/json' http://%[4]s/v1/events:send -d '{"type":"manuscript.submitted","payload":{"manuscriptId":"M-1"}}'
  curl http://%[6]s/_emulator/inbound

Apps in other languages: examples/ (each README says how to run it against dev).
Ctrl-C stops everything.
`, webhookURL, d.certFile, grpcHost, d.addrs.HTTP, d.addrs.Admin, d.emulator, filepath.Join(d.dir, "data"), d.apiKey, d.secret, kept, d.self)
}
