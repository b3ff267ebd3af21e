package sidecar

import (
	"context"
	"log/slog"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

// testEnv is the environment of a sidecar in this package's tests: every
// listener on a loopback port of its own, plaintext webhooks, a ChronosHub
// that cannot be reached, and a data directory of the test's. extra are
// name, value pairs added to it or replacing its settings; a value "" drops
// the setting.
func testEnv(t *testing.T, extra ...string) func(string) string {
	t.Helper()
	m := map[string]string{
		"CHRONOSHUB_BASE_URL":          "https://chronoshub.invalid",
		"CHRONOSHUB_API_KEY":           "test-api-key",
		"CHRONOSHUB_WEBHOOK_SECRET":    "test-webhook-secret",
		"CHRONOSHUB_WEBHOOK_PLAINTEXT": "true",
		"CHRONOSHUB_WEBHOOK_ADDR":      "127.0.0.1:0",
		"CHRONOSHUB_GRPC_ADDR":         "127.0.0.1:0",
		"CHRONOSHUB_HTTP_ADDR":         "127.0.0.1:0",
		"CHRONOSHUB_ADMIN_ADDR":        "127.0.0.1:0",
		"CHRONOSHUB_DATA_DIR":          t.TempDir(),
		"CHRONOSHUB_SHUTDOWN_GRACE":    "1s",
	}
	if len(extra)%2 != 0 {
		t.Fatalf("testEnv: odd number of name, value arguments %q", extra)
	}
	for i := 0; i < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(m, extra[i])
			continue
		}
		m[extra[i]] = extra[i+1]
	}
	return func(k string) string { return m[k] }
}

// runSidecar starts a sidecar configured by env, logging to logger (nil:
// nowhere), and runs it until the test ends, when it must stop cleanly. It
// returns the sidecar and its configuration.
func runSidecar(t *testing.T, env func(string) string, logger *slog.Logger) (*Sidecar, *config.Config) {
	t.Helper()
	cfg, err := config.Parse(nil, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, cfg, Options{Logger: logger})
	if err != nil {
		cancel()
		t.Fatalf("Start = %v", err)
	}
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, cfg
}
