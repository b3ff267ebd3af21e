package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
)

func TestObserversMoveMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Webhook("stored", "", time.Millisecond)
	m.Webhook("rejected", "bad_signature", time.Millisecond)
	m.Webhook("rejected", "too_large", time.Millisecond)
	m.StoreWrite(time.Millisecond, nil)
	m.StoreWrite(time.Millisecond, errors.New("disk full"))
	m.Delivered("app", 1)
	m.Delivered("app", 2)
	m.Acked("app", 30*time.Millisecond)
	m.DeadLettered("app")
	m.Sent("accepted")
	m.ChronosHubRetry(1, "status_503")
	m.CredentialReload("webhook_secret", "ok")
	metrics.RegisterDepth(reg, func(context.Context) (map[string]uint64, error) { return map[string]uint64{"app": 7}, nil }, nil)

	want := `
# HELP chronoshub_sidecar_webhook_verification_failures_total Webhooks refused by signature or freshness checks, by reason.
# TYPE chronoshub_sidecar_webhook_verification_failures_total counter
chronoshub_sidecar_webhook_verification_failures_total{reason="bad_signature"} 1
# HELP chronoshub_sidecar_event_redeliveries_total Events offered again (attempt > 1), by subscription.
# TYPE chronoshub_sidecar_event_redeliveries_total counter
chronoshub_sidecar_event_redeliveries_total{subscription="app"} 1
# HELP chronoshub_sidecar_events_waiting Events not yet delivered to the app, per subscription.
# TYPE chronoshub_sidecar_events_waiting gauge
chronoshub_sidecar_events_waiting{subscription="app"} 7
# HELP chronoshub_sidecar_dead_letters_total Events moved to a subscription's dead-letter set.
# TYPE chronoshub_sidecar_dead_letters_total counter
chronoshub_sidecar_dead_letters_total{subscription="app"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"chronoshub_sidecar_webhook_verification_failures_total",
		"chronoshub_sidecar_event_redeliveries_total",
		"chronoshub_sidecar_events_waiting",
		"chronoshub_sidecar_dead_letters_total"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{
		"chronoshub_sidecar_webhooks_total":               3,
		"chronoshub_sidecar_store_write_duration_seconds": 2,
		"chronoshub_sidecar_event_ack_latency_seconds":    1,
		"chronoshub_sidecar_sent_events_total":            1,
		"chronoshub_sidecar_chronoshub_retries_total":     1,
		"chronoshub_sidecar_credential_reloads_total":     1,
		"chronoshub_sidecar_events_delivered_total":       1,
		"chronoshub_sidecar_webhook_duration_seconds":     2,
	} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != want {
			t.Errorf("GatherAndCount(%s) = %d, %v; want %d series", name, got, err, want)
		}
	}
}
