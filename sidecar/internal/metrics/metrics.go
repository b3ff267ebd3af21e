// Package metrics defines the sidecar's Prometheus metrics on a registry the
// program passes in (never the global one), and the observers and gRPC
// interceptors that feed them.
//
// Labels are fixed sets chosen by the code (outcomes, reasons, gRPC methods
// and codes) or subscription names, never values from a request or a
// credential.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

const namespace = "chronoshub_sidecar"

// latencyBuckets span 100µs to about 26s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 19)

// Metrics holds the sidecar's collectors. Its methods are safe for
// concurrent use.
type Metrics struct {
	webhooks          *prometheus.CounterVec
	webhookDuration   *prometheus.HistogramVec
	verifyFailures    *prometheus.CounterVec
	storeWrite        *prometheus.HistogramVec
	delivered         *prometheus.CounterVec
	redeliveries      *prometheus.CounterVec
	deliveryLatency   *prometheus.HistogramVec
	deadLetters       *prometheus.CounterVec
	rpcs              *prometheus.CounterVec
	rpcDuration       *prometheus.HistogramVec
	sent              *prometheus.CounterVec
	chronoshubRetries *prometheus.CounterVec
	credentialReloads *prometheus.CounterVec
	storeLost         prometheus.Counter
}

// New registers the sidecar's metrics, with the Go runtime and process
// collectors, on reg.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhooks_total",
			Help: "Webhook requests by outcome (stored, duplicate, rejected, unavailable) and reason.",
		}, []string{"outcome", "reason"}),
		webhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "webhook_duration_seconds",
			Help: "Time to answer a webhook request, by outcome.", Buckets: latencyBuckets,
		}, []string{"outcome"}),
		verifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_verification_failures_total",
			Help: "Webhooks refused by signature or freshness checks, by reason.",
		}, []string{"reason"}),
		storeWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_write_duration_seconds",
			Help: "Time to append an event durably to the event log, by result (ok, error).", Buckets: latencyBuckets,
		}, []string{"result"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_delivered_total",
			Help: "Events offered to the app's streams, by subscription (redeliveries included).",
		}, []string{"subscription"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "event_redeliveries_total",
			Help: "Events offered again (attempt > 1), by subscription.",
		}, []string{"subscription"}),
		deliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "event_ack_latency_seconds",
			Help: "Time from receiving an event from ChronosHub to the app's ack, by subscription.", Buckets: latencyBuckets,
		}, []string{"subscription"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dead_letters_total",
			Help: "Events moved to a subscription's dead-letter set.",
		}, []string{"subscription"}),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "grpc_requests_total",
			Help: "App-facing RPCs by method and gRPC status code (SendEvent outcomes included).",
		}, []string{"method", "code"}),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "grpc_request_duration_seconds",
			Help: "Latency of unary app-facing RPCs by method and code.", Buckets: latencyBuckets,
		}, []string{"method", "code"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sent_events_total",
			Help: "Events to ChronosHub that reached a final state (accepted, failed), synchronous or asynchronous.",
		}, []string{"state"}),
		chronoshubRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "chronoshub_retries_total",
			Help: "Retries of requests to ChronosHub's inbound API, by reason.",
		}, []string{"reason"}),
		credentialReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "credential_reloads_total",
			Help: "Reloads of credential and certificate files, by credential and result (ok, error).",
		}, []string{"credential", "result"}),
		storeLost: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_events_lost_total",
			Help: "Events found missing from the event store at start (its files were damaged and repaired by dropping them).",
		}),
	}
	reg.MustRegister(
		m.webhooks, m.webhookDuration, m.verifyFailures, m.storeWrite,
		m.delivered, m.redeliveries, m.deliveryLatency, m.deadLetters,
		m.rpcs, m.rpcDuration, m.sent, m.chronoshubRetries, m.credentialReloads, m.storeLost,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// The 503 series exist from the start, at 0, so that an alert on their
	// increase sees the first refusal (a counter's first sample is not an
	// increase).
	for _, reason := range []string{"store_error", "store_full", "busy", "draining"} {
		m.webhooks.WithLabelValues("unavailable", reason)
	}
	return m
}

// verificationReasons are the webhook reasons that are signature or
// freshness failures.
var verificationReasons = map[string]bool{
	"missing_signature": true, "malformed_signature": true, "bad_signature": true,
	"stale_timestamp": true, "invalid_utf8": true,
}

// Webhook implements webhook.Observer.
func (m *Metrics) Webhook(outcome, reason string, d time.Duration) {
	m.webhooks.WithLabelValues(outcome, reason).Inc()
	m.webhookDuration.WithLabelValues(outcome).Observe(d.Seconds())
	if verificationReasons[reason] {
		m.verifyFailures.WithLabelValues(reason).Inc()
	}
}

// StoreWrite records one durable append.
func (m *Metrics) StoreWrite(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.storeWrite.WithLabelValues(result).Observe(d.Seconds())
}

// Delivered implements eventlog.Observer.
func (m *Metrics) Delivered(subscription string, attempt int) {
	m.delivered.WithLabelValues(subscription).Inc()
	if attempt > 1 {
		m.redeliveries.WithLabelValues(subscription).Inc()
	}
}

// Acked implements eventlog.Observer.
func (m *Metrics) Acked(subscription string, sinceReceived time.Duration) {
	m.deliveryLatency.WithLabelValues(subscription).Observe(sinceReceived.Seconds())
}

// DeadLettered implements eventlog.Observer.
func (m *Metrics) DeadLettered(subscription string) {
	m.deadLetters.WithLabelValues(subscription).Inc()
}

// KeepSubscriptions removes the per-subscription series (deliveries,
// redeliveries, delivery latency, dead letters) of every subscription not in
// names: one that was deleted or expired from idleness. The sidecar calls it
// with the subscriptions that exist at each scrape, so that series do not
// pile up as subscriptions come and go; a subscription created again starts
// its counters from zero, which Prometheus reads as a counter reset.
func (m *Metrics) KeepSubscriptions(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	for _, c := range []interface {
		prometheus.Collector
		DeleteLabelValues(...string) bool
	}{m.delivered, m.redeliveries, m.deliveryLatency, m.deadLetters} {
		for _, sub := range subscriptionLabels(c) {
			if !keep[sub] {
				c.DeleteLabelValues(sub)
			}
		}
	}
}

// subscriptionLabels returns the subscription label values c has series for.
func subscriptionLabels(c prometheus.Collector) []string {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out []string
	for metric := range ch {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "subscription" {
				out = append(out, l.GetValue())
			}
		}
	}
	return out
}

// Sent counts an event to ChronosHub that reached a final state, named by
// state ("accepted" or "failed").
func (m *Metrics) Sent(state string) { m.sent.WithLabelValues(state).Inc() }

// ChronosHubRetry counts one retry of a request to ChronosHub; it has the
// signature of chronoshub.Options.OnRetry.
func (m *Metrics) ChronosHubRetry(_ int, reason string) {
	m.chronoshubRetries.WithLabelValues(reason).Inc()
}

// CredentialReload counts one reload of a credential or certificate file.
func (m *Metrics) CredentialReload(name, result string) {
	m.credentialReloads.WithLabelValues(name, result).Inc()
}

// StoreLost counts events found missing from the store at start.
func (m *Metrics) StoreLost(n uint64) { m.storeLost.Add(float64(n)) }

// UnaryInterceptor counts and times unary RPCs by method and status code.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		code := status.Code(err).String()
		m.rpcs.WithLabelValues(info.FullMethod, code).Inc()
		m.rpcDuration.WithLabelValues(info.FullMethod, code).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// StreamInterceptor counts streaming RPCs by method and the status code
// they ended with.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		m.rpcs.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		return err
	}
}
