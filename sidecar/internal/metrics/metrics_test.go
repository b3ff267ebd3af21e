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
	metrics.RegisterStats(reg, func(context.Context) ([]metrics.SubscriptionStat, error) {
		return []metrics.SubscriptionStat{{Name: "app", Pending: 7, Unacked: 2, DeadLetters: 3, OldestUnacked: time.Now().Add(-time.Hour)}}, nil
	}, func(context.Context) (int, error) { return 4, nil }, nil)

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
# HELP chronoshub_sidecar_events_unacked Events delivered to the app and not yet acknowledged or rejected, per subscription.
# TYPE chronoshub_sidecar_events_unacked gauge
chronoshub_sidecar_events_unacked{subscription="app"} 2
# HELP chronoshub_sidecar_dead_letters Events in a subscription's dead letters (they exhausted their attempts or a narrowed filter excluded them).
# TYPE chronoshub_sidecar_dead_letters gauge
chronoshub_sidecar_dead_letters{subscription="app"} 3
# HELP chronoshub_sidecar_async_events_waiting Async SendEvent events queued and not yet forwarded to ChronosHub.
# TYPE chronoshub_sidecar_async_events_waiting gauge
chronoshub_sidecar_async_events_waiting 4
# HELP chronoshub_sidecar_dead_letters_total Events moved to a subscription's dead-letter set.
# TYPE chronoshub_sidecar_dead_letters_total counter
chronoshub_sidecar_dead_letters_total{subscription="app"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"chronoshub_sidecar_webhook_verification_failures_total",
		"chronoshub_sidecar_event_redeliveries_total",
		"chronoshub_sidecar_events_waiting",
		"chronoshub_sidecar_events_unacked",
		"chronoshub_sidecar_dead_letters",
		"chronoshub_sidecar_async_events_waiting",
		"chronoshub_sidecar_dead_letters_total"); err != nil {
		t.Fatal(err)
	}
	// The age is computed at scrape time: about an hour.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "chronoshub_sidecar_oldest_unacked_age_seconds" {
			if age := mf.GetMetric()[0].GetGauge().GetValue(); age < 3599 || age > 3700 {
				t.Errorf("oldest_unacked_age_seconds = %v, want about 3600", age)
			}
		}
	}
	for name, want := range map[string]int{
		"chronoshub_sidecar_webhooks_total":               3 + 4, // and the 503 reasons at 0
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

// TestKeepSubscriptionsDropsGoneSeries: the per-subscription series of a
// subscription that no longer exists (deleted, expired) leave the scrape;
// those of the others stay.
func TestKeepSubscriptionsDropsGoneSeries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	for _, sub := range []string{"kept", "gone"} {
		m.Delivered(sub, 1)
		m.Delivered(sub, 2)
		m.Acked(sub, time.Millisecond)
		m.DeadLettered(sub)
	}
	m.KeepSubscriptions([]string{"kept"})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() != "subscription" {
					continue
				}
				switch l.GetValue() {
				case "gone":
					t.Errorf("%s still has a series for subscription gone", f.GetName())
				case "kept":
					kept++
				}
			}
		}
	}
	if kept != 4 {
		t.Errorf("%d series of subscription kept, want 4 (delivered, redeliveries, latency, dead letters)", kept)
	}
}
