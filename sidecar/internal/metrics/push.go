package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Push holds the metrics of push subscriptions; it implements
// push.Observer. The age of a push subscription's oldest waiting event is
// the subscription's chronoshub_sidecar_oldest_unacked_age_seconds.
type Push struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	paused   *prometheus.GaugeVec
}

// NewPush registers the push metrics on reg.
func NewPush(reg *prometheus.Registry) *Push {
	m := &Push{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "push_requests_total",
			Help: "POSTs of push subscriptions to the app, by subscription and outcome (2xx, 429_503, 5xx, 4xx, other_status, timeout, error, unreachable).",
		}, []string{"subscription", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "push_request_duration_seconds",
			Help: "Time of one POST to the app, by subscription.", Buckets: latencyBuckets,
		}, []string{"subscription"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "push_in_flight",
			Help: "POSTs to the app in progress, by subscription.",
		}, []string{"subscription"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "push_paused",
			Help: "1 while a push subscription's delivery is paused because the app does not accept connections.",
		}, []string{"subscription"}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight, m.paused)
	return m
}

// Pushed implements push.Observer.
func (m *Push) Pushed(subscription, outcome string, d time.Duration) {
	m.requests.WithLabelValues(subscription, outcome).Inc()
	m.duration.WithLabelValues(subscription).Observe(d.Seconds())
}

// InFlight implements push.Observer.
func (m *Push) InFlight(subscription string, delta int) {
	m.inFlight.WithLabelValues(subscription).Add(float64(delta))
}

// Paused implements push.Observer.
func (m *Push) Paused(subscription string, paused bool) {
	v := 0.0
	if paused {
		v = 1
	}
	m.paused.WithLabelValues(subscription).Set(v)
}
