package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SubscriptionStat is what an operator alerts on for one subscription.
type SubscriptionStat struct {
	Name string
	// Pending is the backlog: events not yet delivered.
	Pending uint64
	// Unacked is how many events are delivered and not yet settled.
	Unacked int
	// DeadLetters is how many dead letters it holds.
	DeadLetters uint64
	// OldestUnacked is when the oldest event it has not acknowledged was
	// stored; zero when there is none.
	OldestUnacked time.Time
}

// statsCollector reads subscription and outbox figures at scrape time.
type statsCollector struct {
	subs                                         func(ctx context.Context) ([]SubscriptionStat, error)
	async                                        func(ctx context.Context) (int, error)
	now                                          func() time.Time
	logger                                       *slog.Logger
	waiting, unacked, dead, oldest, asyncWaiting *prometheus.Desc
}

// RegisterStats registers gauges read at every scrape (bounded by a 2 s
// timeout): per subscription, the events waiting to be delivered, those
// delivered and not settled, its dead letters and the age of its oldest
// unacknowledged event; and the async events waiting to be forwarded to
// ChronosHub. subs and async must be safe to call concurrently.
func RegisterStats(reg prometheus.Registerer, subs func(ctx context.Context) ([]SubscriptionStat, error), async func(ctx context.Context) (int, error), logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sub := []string{"subscription"}
	reg.MustRegister(&statsCollector{
		subs: subs, async: async, now: time.Now, logger: logger,
		waiting: prometheus.NewDesc(namespace+"_events_waiting", "Events not yet delivered to the app, per subscription.", sub, nil),
		unacked: prometheus.NewDesc(namespace+"_events_unacked", "Events delivered to the app and not yet acknowledged or rejected, per subscription.", sub, nil),
		dead:    prometheus.NewDesc(namespace+"_dead_letters", "Events in a subscription's dead letters (they exhausted their attempts or a narrowed filter excluded them).", sub, nil),
		oldest: prometheus.NewDesc(namespace+"_oldest_unacked_age_seconds",
			"Age of the oldest event a subscription has not acknowledged, 0 when there is none: alert when the app falls behind.", sub, nil),
		asyncWaiting: prometheus.NewDesc(namespace+"_async_events_waiting", "Async SendEvent events queued and not yet forwarded to ChronosHub.", nil, nil),
	})
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.waiting
	ch <- c.unacked
	ch <- c.dead
	ch <- c.oldest
	ch <- c.asyncWaiting
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if subs, err := c.subs(ctx); err != nil {
		c.logger.Warn("read subscriptions for metrics", "err", err)
	} else {
		now := c.now()
		for _, s := range subs {
			age := 0.0
			if !s.OldestUnacked.IsZero() {
				age = max(now.Sub(s.OldestUnacked).Seconds(), 0)
			}
			ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(s.Pending), s.Name)
			ch <- prometheus.MustNewConstMetric(c.unacked, prometheus.GaugeValue, float64(s.Unacked), s.Name)
			ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(s.DeadLetters), s.Name)
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, s.Name)
		}
	}
	if n, err := c.async(ctx); err != nil {
		c.logger.Warn("read the async queue for metrics", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.asyncWaiting, prometheus.GaugeValue, float64(n))
	}
}
