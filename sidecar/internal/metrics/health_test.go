package metrics_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
)

func TestRegisterHealth(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var notReady atomic.Bool
	type result struct {
		t   time.Time
		err error
	}
	var oldest atomic.Pointer[result]
	oldest.Store(&result{})
	metrics.RegisterHealth(reg, func(context.Context) error {
		if notReady.Load() {
			return errors.New("starting")
		}
		return nil
	}, func(context.Context) (time.Time, error) {
		r := oldest.Load()
		return r.t, r.err
	}, nil)

	gauge := func(name string) (float64, bool) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	if v, ok := gauge("chronoshub_sidecar_ready"); !ok || v != 1 {
		t.Errorf("ready = %v, %v; want 1", v, ok)
	}
	if v, ok := gauge("chronoshub_sidecar_async_oldest_age_seconds"); !ok || v != 0 {
		t.Errorf("async_oldest_age_seconds with an empty queue = %v, %v; want 0", v, ok)
	}
	notReady.Store(true)
	oldest.Store(&result{t: time.Now().Add(-time.Hour)})
	if v, _ := gauge("chronoshub_sidecar_ready"); v != 0 {
		t.Errorf("ready while not ready = %v, want 0", v)
	}
	if v, _ := gauge("chronoshub_sidecar_async_oldest_age_seconds"); v < 3599 || v > 3700 {
		t.Errorf("async_oldest_age_seconds = %v, want about 3600", v)
	}
	oldest.Store(&result{err: errors.New("stream info: timeout")})
	if v, ok := gauge("chronoshub_sidecar_async_oldest_age_seconds"); ok {
		t.Errorf("async_oldest_age_seconds while the queue cannot be read = %v, want no sample", v)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint = %v, %v", problems, err)
	}
}

func TestWebhookUnavailableSeriesStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	want := `
# HELP chronoshub_sidecar_webhooks_total Webhook requests by outcome (stored, duplicate, rejected, unavailable) and reason.
# TYPE chronoshub_sidecar_webhooks_total counter
chronoshub_sidecar_webhooks_total{outcome="unavailable",reason="busy"} 0
chronoshub_sidecar_webhooks_total{outcome="unavailable",reason="draining"} 0
chronoshub_sidecar_webhooks_total{outcome="unavailable",reason="store_error"} 0
chronoshub_sidecar_webhooks_total{outcome="unavailable",reason="store_full"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "chronoshub_sidecar_webhooks_total"); err != nil {
		t.Fatal(err)
	}
}
