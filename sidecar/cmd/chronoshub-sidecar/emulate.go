package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

const emulateUsage = `Usage: chronoshub-sidecar emulate [flags]

A standalone ChronosHub stand-in for tests. It serves ChronosHub's inbound
API (POST /inbound/{eventType}, X-Api-Key checked, 202 or Problem Details)
and delivers signed webhooks with ChronosHub's retries:

  POST   /inbound/{eventType}      ChronosHub's inbound API
  GET    /_emulator/inbound        the events received, as JSON
  DELETE /_emulator/inbound        forget them
  GET    /_emulator/faults         the fault-injection settings
  PUT    /_emulator/faults         change them: {"error_rate":0.5,"rate_limit_rate":0,
                                   "retry_after_seconds":1,"latency":"100ms","fail_next":0,
                                   "fail_next_status":500}
  POST   /_emulator/deliveries     deliver a webhook: {"url":"https://…/webhook",
                                   "event_type":"manuscript.submitted","payload":{…}}
  GET    /_emulator/deliveries[/{id}]  deliveries and their attempts

Inbound events of a type the partner is not authorised for (--event-types,
by default the catalogue of examples/events) get 400 Problem Details naming
eventType, as ChronosHub answers for a type not agreed at onboarding.

The API key comes from CHRONOSHUB_EMULATOR_API_KEY or --api-key-file, the
webhook secret from CHRONOSHUB_EMULATOR_WEBHOOK_SECRET or
--webhook-secret-file; either one, when not given, is generated and printed
once on stdout.

Flags:
`

// emulateFlags are the settings of the emulate subcommand.
type emulateFlags struct {
	addr, apiKeyFile, secretFile, caFile string
	insecure, inactive                   bool
	faults                               emulator.Faults
	maxRetries, maxHistory               int
	retryBase, retryMax                  time.Duration
	eventTypes                           string
}

func parseEmulate(args []string, stdout io.Writer) (*emulateFlags, error) {
	f := &emulateFlags{}
	fs := newFlagSet("emulate")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address of the emulator's HTTP API")
	fs.StringVar(&f.apiKeyFile, "api-key-file", "", "file holding the API key inbound requests must carry")
	fs.StringVar(&f.secretFile, "webhook-secret-file", "", "file holding the secret that signs outbound webhooks")
	fs.StringVar(&f.caFile, "webhook-ca-file", "", "PEM certificates to trust when delivering webhooks (e.g. a self-signed sidecar)")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "deliver webhooks without verifying the receiver's TLS certificate (tests only)")
	fs.BoolVar(&f.inactive, "inactive-account", false, "answer every authenticated inbound request 400, as for an inactive account")
	fs.Float64Var(&f.faults.ErrorRate, "error-rate", 0, "fraction (0-1) of inbound requests answered 500")
	fs.Float64Var(&f.faults.RateLimitRate, "rate-limit-rate", 0, "fraction (0-1) of inbound requests answered 429 with Retry-After")
	fs.IntVar(&f.faults.RetryAfterSeconds, "retry-after", 1, "Retry-After seconds of an injected 429")
	fs.DurationVar(&f.faults.Latency, "latency", 0, "latency added to every inbound request")
	fs.IntVar(&f.maxRetries, "max-retries", emulator.DefaultMaxRetries, "retries of a failed webhook delivery after the first attempt (negative: none)")
	fs.DurationVar(&f.retryBase, "retry-base", emulator.DefaultRetryBase, "wait before the first webhook retry; doubles each retry")
	fs.DurationVar(&f.retryMax, "retry-max", emulator.DefaultRetryMax, "longest wait between webhook retries")
	fs.StringVar(&f.eventTypes, "event-types", strings.Join(emulator.DefaultEventTypes(), ","), eventTypesUsage)
	fs.IntVar(&f.maxHistory, "max-history", emulator.DefaultMaxHistory, "how many received inbound events and finished deliveries are kept for listing (the oldest go first; negative: all)")
	if err := parseFlags(fs, emulateUsage, args, stdout); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("emulate: unexpected arguments %q", fs.Args())
	}
	return f, nil
}

func runEmulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseEmulate(args, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, slog.LevelInfo)
	apiKey, genKey, err1 := secretOrGenerate(getenv("CHRONOSHUB_EMULATOR_API_KEY"), f.apiKeyFile, "CHRONOSHUB_EMULATOR_API_KEY", "--api-key-file", "emu_key_")
	secret, genSecret, err2 := secretOrGenerate(getenv("CHRONOSHUB_EMULATOR_WEBHOOK_SECRET"), f.secretFile, "CHRONOSHUB_EMULATOR_WEBHOOK_SECRET", "--webhook-secret-file", "emu_whsec_")
	client, err3 := webhookClient(f.caFile, f.insecure)
	eventTypes, err4 := authorisedTypes(f.eventTypes)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	emu, err := emulator.New(emulator.Options{
		APIKey:          apiKey,
		WebhookSecret:   []byte(secret),
		Logger:          logger,
		HTTPClient:      client,
		MaxRetries:      f.maxRetries,
		RetryBase:       f.retryBase,
		RetryMax:        f.retryMax,
		MaxHistory:      f.maxHistory,
		InactiveAccount: f.inactive,
		Faults:          f.faults,
		EventTypes:      eventTypes,
	})
	if err != nil {
		return err
	}
	defer emu.Close()
	lis, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("emulate: %w", config.ListenError("--addr", f.addr, err))
	}
	if genKey {
		fmt.Fprintf(stdout, "generated API key:        %s\n", apiKey)
	}
	if genSecret {
		fmt.Fprintf(stdout, "generated webhook secret: %s\n", secret)
	}
	fmt.Fprintf(stdout, "ChronosHub emulator on http://%s (inbound API at /inbound/{eventType})\n", lis.Addr())
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	logger.Info("listening", "component", "emulator", "addr", lis.Addr().String())
	return serveUntilDone(ctx, srv, lis, func(l net.Listener) error { return srv.Serve(l) })
}

// serveUntilDone serves srv on lis until ctx is done, then shuts it down
// within 5 seconds.
func serveUntilDone(ctx context.Context, srv *http.Server, lis net.Listener, serve func(net.Listener) error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// secretOrGenerate returns the secret from an environment value or a file
// (not both), or a new random one with generated set when neither is given.
func secretOrGenerate(envValue, file, envName, flagName, prefix string) (secret string, generated bool, err error) {
	switch {
	case envValue != "" && file != "":
		return "", false, fmt.Errorf("%s and %s are both set; give one", envName, flagName)
	case envValue != "":
		return strings.TrimSpace(envValue), false, nil
	case file != "":
		src, err := credentials.NewFile(strings.TrimPrefix(flagName, "--"), file)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", flagName, err)
		}
		return src.Reveal(), false, nil
	}
	return prefix + randomHex(16), true, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails.
	return hex.EncodeToString(b)
}

// webhookClient returns the HTTP client that delivers webhooks, trusting
// caFile's certificates when given, or any certificate when insecure.
func webhookClient(caFile string, insecure bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case caFile != "" && insecure:
		return nil, errors.New("--webhook-ca-file and --insecure-skip-verify: give one")
	case caFile != "":
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--webhook-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--webhook-ca-file: no PEM certificate in %s", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	case insecure:
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// eventTypesUsage documents the --event-types flag of emulate and dev.
const eventTypesUsage = `event types the partner is authorised to send, comma-separated; patterns such as manuscript.* or ">" (any type) too; others get 400`

// authorisedTypes parses --event-types: at least one type or pattern.
func authorisedTypes(s string) ([]string, error) {
	types := splitList(s)
	if len(types) == 0 {
		return nil, errors.New(`--event-types is empty: give the authorised types, or ">" to accept any`)
	}
	return types, nil
}
