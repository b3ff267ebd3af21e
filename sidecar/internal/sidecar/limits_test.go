package sidecar

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/logtest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

// TestBodyLimitsFitNATSMaxPayload starts the sidecar against a real
// nats-server with its default max_payload (1 MiB). With the body limits
// left at their defaults (1 MiB each, which with 64 KiB of headers do not
// fit), it starts, logs that it lowered both, stores a webhook of the
// lowered limit and refuses one byte more with 413; before, it refused to
// start. A limit set explicitly that cannot fit is still refused, naming
// it and both figures, while the one left at its default is fitted.
func TestBodyLimitsFitNATSMaxPayload(t *testing.T) {
	t.Parallel()
	c := natstest.Start(t, natstest.Options{Nodes: 1})
	const secret = "test-webhook-secret"
	env := func(extra ...string) func(string) string {
		return testEnv(t, append([]string{"CHRONOSHUB_NATS_URL", c.URLs(), "CHRONOSHUB_NATS_REPLICAS", "1", "CHRONOSHUB_DATA_DIR", ""}, extra...)...)
	}
	const room = 1<<20 - messageOverhead

	t.Run("defaults fitted", func(t *testing.T) {
		var logs logtest.Buffer
		s, cfg := runSidecar(t, env(), slog.New(slog.NewJSONHandler(&logs, nil)))
		if cfg.WebhookMaxBodyBytes != 1<<20 || cfg.MaxPayloadBytes != 1<<20 {
			t.Errorf("Start changed the caller's Config: %d, %d", cfg.WebhookMaxBodyBytes, cfg.MaxPayloadBytes)
		}
		for _, setting := range []string{"CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", "CHRONOSHUB_MAX_PAYLOAD_BYTES"} {
			if !strings.Contains(logs.String(), `"msg":"body limit lowered to fit the NATS server's max_payload","setting":"`+setting+`","default":1048576,"limit":983040,"max_payload":1048576`) {
				t.Errorf("no log line lowering %s; log:\n%s", setting, logs.String())
			}
		}
		waitReady(t, s)
		url := "http://" + s.Addrs().Webhook + "/webhook"
		for _, tc := range []struct {
			size int
			want int
		}{{room, http.StatusOK}, {room + 1, http.StatusRequestEntityTooLarge}} {
			payload := `"` + strings.Repeat("a", tc.size-2) + `"`
			st, body, err := emulator.SendWebhook(t.Context(), &http.Client{Timeout: 30 * time.Second}, url, []byte(secret), "manuscript.submitted", []byte(payload), uuid.NewString(), time.Now())
			if err != nil || st != tc.want {
				t.Errorf("webhook of %d bytes = %d %s, %v; want %d", tc.size, st, body, err, tc.want)
			}
		}
	})

	t.Run("explicit limit refused", func(t *testing.T) {
		cfg, err := config.Parse(nil, env("CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", "1048576"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Start(t.Context(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			t.Fatal("Start with an explicit limit the server cannot take succeeded")
		}
		for _, want := range []string{"at most 1048576 bytes", "983040", "CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES=1048576"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Start = %q, want it to contain %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "CHRONOSHUB_MAX_PAYLOAD_BYTES") {
			t.Errorf("Start = %q names CHRONOSHUB_MAX_PAYLOAD_BYTES, which was left at its default and fits once lowered", err)
		}
	})
}

// waitReady waits at most 30s for s to be ready.
func waitReady(t *testing.T, s *Sidecar) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Ready(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
