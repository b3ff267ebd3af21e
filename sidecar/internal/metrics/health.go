package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterHealth registers gauges read at every scrape (bounded by a 2 s
// timeout), for alerts that must not depend on a probe's log line:
//
//   - chronoshub_sidecar_ready, 1 when ready returns nil (what /readyz
//     answers 200 for), else 0;
//   - chronoshub_sidecar_async_oldest_age_seconds, the age of the oldest
//     async SendEvent event not yet forwarded to ChronosHub, 0 when none;
//     oldest returns its time, zero when the queue is empty.
//
// ready and oldest must be safe to call concurrently. Nil logger discards.
func RegisterHealth(reg prometheus.Registerer, ready func(context.Context) error, oldest func(context.Context) (time.Time, error), logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg.MustRegister(&healthCollector{
		ready: ready, oldest: oldest, now: time.Now, logger: logger,
		readyDesc: prometheus.NewDesc(namespace+"_ready",
			"1 when the sidecar can take events (what /readyz answers 200 for), else 0.", nil, nil),
		oldestDesc: prometheus.NewDesc(namespace+"_async_oldest_age_seconds",
			"Age of the oldest async SendEvent event not yet forwarded to ChronosHub, 0 when there is none.", nil, nil),
	})
}

type healthCollector struct {
	ready                 func(context.Context) error
	oldest                func(context.Context) (time.Time, error)
	now                   func() time.Time
	logger                *slog.Logger
	readyDesc, oldestDesc *prometheus.Desc
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.readyDesc
	ch <- c.oldestDesc
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ready := 1.0
	if c.ready(ctx) != nil {
		ready = 0
	}
	ch <- prometheus.MustNewConstMetric(c.readyDesc, prometheus.GaugeValue, ready)
	if t, err := c.oldest(ctx); err != nil {
		// No sample: an alert on the age must not see 0 while the
		// queue cannot be read (readiness says why).
		c.logger.Warn("read the async queue's oldest event for metrics", "err", err)
	} else {
		age := 0.0
		if !t.IsZero() {
			age = max(c.now().Sub(t).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldestDesc, prometheus.GaugeValue, age)
	}
}

// Tasks counts the sidecar's background tasks' state. Its methods are safe
// for concurrent use.
type Tasks struct {
	up       *prometheus.GaugeVec
	failures *prometheus.CounterVec
}

// NewTasks registers chronoshub_sidecar_background_task_up (1 while a task
// runs, 0 while it waits to be restarted after a failure) and
// chronoshub_sidecar_background_task_failures_total on reg.
func NewTasks(reg prometheus.Registerer) *Tasks {
	t := &Tasks{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "background_task_up",
			Help: "1 while a background task (async forwarder, credential watcher, …) runs, 0 while it waits to be restarted after a failure.",
		}, []string{"task"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "background_task_failures_total",
			Help: "Failures of a background task (each is followed by a restart, or after too many by the sidecar's exit).",
		}, []string{"task"}),
	}
	reg.MustRegister(t.up, t.failures)
	return t
}

// Up records whether the task runs. The first call for a task also
// creates its failure counter at 0, so that an alert on its increase
// sees the first failure.
func (t *Tasks) Up(task string, up bool) {
	t.failures.WithLabelValues(task)
	v := 0.0
	if up {
		v = 1
	}
	t.up.WithLabelValues(task).Set(v)
}

// Failed counts one failure of the task and records it down.
func (t *Tasks) Failed(task string) {
	t.failures.WithLabelValues(task).Inc()
	t.up.WithLabelValues(task).Set(0)
}
