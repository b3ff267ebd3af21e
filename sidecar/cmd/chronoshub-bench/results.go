package main

import (
	"math"
	"slices"
	"time"
)

// results is everything measured in one harness run.
type results struct {
	Cfg          *config
	Machine      machine
	Elapsed      time.Duration
	SectionTimes []sectionTime
	Failures     []string
	Notes        []string

	// Ingest series are keyed ingestKey(server, mode): server is
	// "baseline", "sidecar 1s" or "sidecar always"; mode "keep-alive" or
	// "new connection".
	Ingest      map[string]*series
	IngestRatio map[string][]float64 // per-round sidecar/baseline, same key as Ingest
	// AlwaysIngestRatio is, per round, keep-alive ingest with SYNC=always
	// over SYNC=1s: what fsync before the 2xx costs.
	AlwaysIngestRatio []float64
	PeakRSS           map[string][]float64 // bytes, per sync setting ("1s", "always", "baseline")

	// E2E series are keyed e2eKey(setup, rate).
	E2E      map[string]*series
	E2EOrder []string
	// E2ERatio is, per round, the sidecar's end-to-end quantile over the
	// minimal pipeline's, keyed e2eRatioKey(rate, quantile).
	E2ERatio map[string][]float64
	// AlwaysP99Ratio is, per round, the end-to-end p99 at the lowest rate
	// with SYNC=always over SYNC=1s.
	AlwaysP99Ratio []float64
	MaxHeld        []float64 // per run, events/s
	StepsSeen      [][]stepResult

	// Send series: "direct", sendForwarder, "sidecar" and sendUnix ×
	// "latency" (1 caller) and "throughput" (SendCallers callers).
	Send map[string]*series

	BinSize, BinSizeStripped int64
	Startup                  []float64 // ms
	IdleRSS                  []float64 // bytes

	StreamRate  []float64 // events/s
	StreamBase  []float64 // the minimal pipeline's events/s
	StreamRatio []float64 // per round
	// The minimal pipeline over JetStream: its events/s, its ratio to the
	// in-memory one and the sidecar's ratio to it, per round.
	StreamJS      []float64
	StreamJSRatio []float64
	StreamOverJS  []float64
	StreamAcks    []float64 // ids per AckEvents call

	// Push delivery beside the gRPC stream on one sidecar, per round: the
	// end-to-end p99 (ms) of each at the end-to-end target's rate and push's
	// over the stream's, and the events/s each drains a backlog at and
	// push's over the stream's.
	PushP99, PushStreamP99, PushP99Ratio       []float64
	PushDrain, PushStreamDrain, PushDrainRatio []float64

	BacklogEnqueue    time.Duration
	BacklogHeldAtGate int64
	BacklogAccepted   int
	BacklogElapsed    time.Duration

	// ClusterIngestRatio and ClusterP99Ratio are, per round, the sidecar on
	// a three-node R3 cluster over the sidecar on its embedded store:
	// keep-alive ingest throughput, and end-to-end p99 at the lowest rate.
	ClusterIngestRatio []float64
	ClusterP99Ratio    []float64

	LogSteps []logStep
	SubSteps []subStep

	Profiles []*profile
}

type sectionTime struct {
	Name string
	D    time.Duration
}

// series is the runs of one measurement.
type series struct {
	Runs []loadResult
	// Sent and Received are, per run, the webhooks sent and the receipts
	// of an end-to-end run.
	Sent, Received []float64
	// NewConns is, per run of SendEvent, the new connections to ChronosHub
	// per 1,000 calls.
	NewConns []float64
}

func newResults(cfg *config) *results {
	return &results{
		Cfg:         cfg,
		Ingest:      map[string]*series{},
		IngestRatio: map[string][]float64{},
		PeakRSS:     map[string][]float64{},
		E2E:         map[string]*series{},
		E2ERatio:    map[string][]float64{},
		Send:        map[string]*series{},
	}
}

func ingestKey(server, mode string) string { return server + " / " + mode }

func (s *series) add(r loadResult) { s.Runs = append(s.Runs, r) }

func get(m map[string]*series, key string) *series {
	s := m[key]
	if s == nil {
		s = &series{}
		m[key] = s
	}
	return s
}

// rateOf is a run's requests/s.
func rateOf(r loadResult) float64 { return r.Rate }

// latOf is a run's latency quantile q, in milliseconds.
func latOf(q func(quantiles) time.Duration) func(loadResult) float64 {
	return func(r loadResult) float64 { return ms(q(r.Lat)) }
}

// rate returns the requests/s figure.
func (s *series) rate() figure { return summarizeRuns(s.each(rateOf)) }

// latency returns the figure of a latency quantile, in milliseconds.
func (s *series) latency(q func(quantiles) time.Duration) figure {
	return summarizeRuns(s.each(latOf(q)))
}

// each returns f of each run; none for a nil series.
func (s *series) each(f func(loadResult) float64) []float64 {
	if s == nil {
		return nil
	}
	v := make([]float64, 0, len(s.Runs))
	for _, r := range s.Runs {
		v = append(v, f(r))
	}
	return v
}

// errors returns the total number of failed requests over the runs.
func (s *series) errors() int {
	if s == nil {
		return 0
	}
	n := 0
	for _, r := range s.Runs {
		n += r.Errors
	}
	return n
}

// medianRun returns the run whose p99 is the median one, for the charts.
func (s *series) medianRun() (loadResult, bool) {
	if s == nil || len(s.Runs) == 0 {
		return loadResult{}, false
	}
	runs := slices.Clone(s.Runs)
	slices.SortFunc(runs, func(a, b loadResult) int { return int(a.Lat.P99 - b.Lat.P99) })
	return runs[(len(runs)-1)/2], true
}

// stepResult is one rate step of the search for the highest rate held.
type stepResult struct {
	Rate     int
	P99      time.Duration
	Sent     int
	Received int
	Held     bool
	Why      string
}

func (r stepResult) String() string {
	if r.Held {
		return formatRate(float64(r.Rate)) + " ✓"
	}
	return formatRate(float64(r.Rate)) + " ✗ (" + r.Why + ")"
}

func isNaN(f float64) bool { return math.IsNaN(f) }
