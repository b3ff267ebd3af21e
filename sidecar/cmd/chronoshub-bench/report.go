package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets of the issue that other sections need too; the others are in
// targets, each beside its text.
const (
	targetE2ERate      = 1000      // events/s offered for the end-to-end target
	targetFanOutSubs   = 100       // subscriptions of the fan-out target
	targetDedupeEvents = 1_000_000 // events in the duplicate window
)

// Chart file names, relative to the report.
const (
	chartIngest        = "benchmarks-ingest.svg"
	chartIngestLatency = "benchmarks-ingest-latency.svg"
	chartE2ELatency    = "benchmarks-e2e-latency.svg"
	chartScaleLog      = "benchmarks-scale-log.svg"
	chartScaleSubs     = "benchmarks-scale-subs.svg"
)

// formatRate prints a count or rate with thousands separators.
func formatRate(v float64) string {
	if isNaN(v) {
		return "n/a"
	}
	if math.Abs(v) < 100 && v != math.Trunc(v) {
		return fmt.Sprintf("%.2f", v)
	}
	n := int64(math.Round(v))
	s := strconv.FormatInt(max(n, -n), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if n < 0 {
		return "-" + s
	}
	return s
}

// fmtFig prints "median (min–max)" with format f for each value.
func fmtFig(fig figure, f func(float64) string) string {
	if isNaN(fig.Median) {
		return "n/a"
	}
	if len(fig.Runs) == 1 || fig.Min == fig.Max {
		return f(fig.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(fig.Median), f(fig.Min), f(fig.Max))
}

// fmtRuns prints the figure of runs.
func fmtRuns(runs []float64, f func(float64) string) string { return fmtFig(summarizeRuns(runs), f) }

func fmtMs(v float64) string {
	switch {
	case isNaN(v):
		return "n/a"
	case math.Abs(v) < 1:
		return fmt.Sprintf("%.3f", v)
	case math.Abs(v) < 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtMiB(v float64) string      { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
func fmtMiBShort(v float64) string { return fmt.Sprintf("%.0f", v/(1<<20)) }
func fmtRatio(v float64) string    { return fmt.Sprintf("%.2f×", v) }
func fmtOne(v float64) string      { return fmt.Sprintf("%.1f", v) }

// verdict compares a figure's whole range with a threshold: "met" when
// every run meets it, "missed" when none does, and otherwise the range
// straddles it and nothing is claimed.
func verdict(fig figure, meets func(float64) bool) string {
	switch {
	case isNaN(fig.Median):
		return "not measured"
	case meets(fig.Min) && meets(fig.Max):
		return "**met**"
	case !meets(fig.Min) && !meets(fig.Max):
		return "**missed**"
	}
	return "undecided: the range straddles the target"
}

// The tests of a target's figure.
func atLeast(t float64) func(float64) bool { return func(v float64) bool { return v >= t } }
func atMost(t float64) func(float64) bool  { return func(v float64) bool { return v <= t } }
func below(t float64) func(float64) bool   { return func(v float64) bool { return v < t } }

// compared says how a ratio's range stands against 1.
func compared(fig figure, lower, higher string) string {
	switch {
	case isNaN(fig.Median):
		return "not measured"
	case fig.Min <= 1 && fig.Max >= 1:
		return "no difference claimed (the range includes 1)"
	case fig.Max < 1:
		return lower
	}
	return higher
}

// target is one row of the targets table; Profile names the profile that
// shows where its cost goes.
type target struct {
	Name, Figure, Result, Profile string
}

// newTarget is the row of a target whose figure is fig, printed by f with
// unit after it, and that meets passes.
func newTarget(name string, fig figure, f func(float64) string, unit string, meets func(float64) bool, profile string) target {
	return target{name, fmtFig(fig, f) + unit, verdict(fig, meets), profile}
}

func (r *results) targets() []target {
	rate := formatRate(float64(r.Cfg.Rates[0]))
	dedupe, dedupeText := r.dedupeStart(targetDedupeEvents)
	return []target{
		newTarget("Webhook ingest, keep-alive, `SYNC=1s`: ≥ 0.75× the bare HTTPS server's requests/s", summarizeRuns(r.IngestRatio[ingestKey(srvSidecar1s, modeKeepAlive)]), fmtRatio, "", atLeast(0.75), profIngest),
		newTarget("Group commit: keep-alive ingest with `SYNC=always` ≥ 0.5× `SYNC=1s`'s", summarizeRuns(r.AlwaysIngestRatio), fmtRatio, "", atLeast(0.5), profIngest),
		newTarget("Group commit: end-to-end p99 at "+rate+"/s with `SYNC=always` ≤ 2× `SYNC=1s`'s", summarizeRuns(r.AlwaysP99Ratio), fmtRatio, "", atMost(2), profE2E),
		newTarget("End to end at 1,000 events/s: p99 ≤ 1.5× the minimal pipeline's", summarizeRuns(r.E2ERatio[e2eRatioKey(targetE2ERate, "p99")]), fmtRatio, "", atMost(1.5), profE2E),
		newTarget("Stream drain ≥ 0.5× the minimal pipeline's events/s", summarizeRuns(r.StreamRatio), fmtRatio, "", atLeast(0.5), profStream),
		newTarget("Push delivery (concurrency 1): end-to-end p99 at 1,000 events/s ≤ 1.5× the gRPC stream's on the same sidecar", summarizeRuns(r.PushP99Ratio), fmtRatio, "", atMost(1.5), ""),
		newTarget("Cluster (R3): end-to-end p99 at "+rate+"/s ≤ 2.5× the embedded store's", summarizeRuns(r.ClusterP99Ratio), fmtRatio, "", atMost(2.5), ""),
		newTarget("Cluster (R3): keep-alive ingest ≥ 0.6× the embedded store's", summarizeRuns(r.ClusterIngestRatio), fmtRatio, "", atLeast(0.6), ""),
		newTarget(fmt.Sprintf("Fan-out: end-to-end p99 with %d subscriptions ≤ 3× with one", targetFanOutSubs), summarizeRuns(r.fanOutRatio(targetFanOutSubs)), fmtRatio, "", atMost(3), profFanOut),
		{fmt.Sprintf("Duplicate window: startup and recovery with %s events in it < 1 s", formatRate(targetDedupeEvents)), dedupeText, verdict(dedupe, below(1000)), ""},
		newTarget("SendEvent, one caller: adds ≤ 0.1 ms at p99 over the minimal forwarder", r.sendAdded(sendForwarder, "sidecar", p99), fmtMs, " ms", atMost(0.1), profSend),
		newTarget(fmt.Sprintf("SendEvent, %d callers: ≥ 0.95× the minimal forwarder's throughput", r.Cfg.SendCallers), r.sendRatio(sendForwarder, "sidecar"), fmtRatio, "", atLeast(0.95), profSend),
		newTarget("Idle RSS < 64 MiB", summarizeRuns(r.IdleRSS), fmtMiB, "", below(64<<20), ""),
		newTarget("Startup (exec → `/readyz` 200) < 1 s", summarizeRuns(r.Startup), fmtMs, " ms", below(1000), ""),
	}
}

// pairwise returns f of each run of a with the same run of b, leaving out
// the runs where f is NaN.
func pairwise(a, b []float64, f func(a, b float64) float64) []float64 {
	var v []float64
	for i := range min(len(a), len(b)) {
		if x := f(a[i], b[i]); !isNaN(x) {
			v = append(v, x)
		}
	}
	return v
}

// ratio is a/b, or NaN when b is not positive.
func ratio(a, b float64) float64 {
	if b > 0 {
		return a / b
	}
	return math.NaN()
}

func minus(a, b float64) float64 { return a - b }

// fanOutRatio is, run by run, the end-to-end p99 with subs subscriptions
// over the p99 with one; none when either was not measured.
func (r *results) fanOutRatio(subs int) []float64 {
	return r.fanOutRatioOf(subs, func(s subStep) []float64 { return s.P99 })
}

// fanOutRatioOf is fanOutRatio of the p99s that p99 picks from a step.
func (r *results) fanOutRatioOf(subs int, p99 func(subStep) []float64) []float64 {
	one := slices.IndexFunc(r.SubSteps, func(s subStep) bool { return s.Subs == 1 })
	many := slices.IndexFunc(r.SubSteps, func(s subStep) bool { return s.Subs == subs })
	if one < 0 || many < 0 {
		return nil
	}
	return pairwise(p99(r.SubSteps[many]), p99(r.SubSteps[one]), ratio)
}

// dedupeStart is the slower of startup and recovery, run by run, on the
// largest log of at least events events, and its figure as text ("not
// measured" without such a log).
func (r *results) dedupeStart(events int) (figure, string) {
	var step *logStep
	for i := range r.LogSteps {
		if s := &r.LogSteps[i]; s.Events >= events && (step == nil || s.Events > step.Events) {
			step = s
		}
	}
	if step == nil {
		return summarizeRuns(nil), "not measured (no log that large in this run)"
	}
	fig := summarizeRuns(pairwise(step.Startup, step.Recovery, math.Max))
	text := fmt.Sprintf("%s ms with %s events (startup %s ms, recovery %s ms)", fmtFig(fig, fmtMs), formatRate(float64(step.Events)),
		fmtRuns(step.Startup, fmtMs), fmtRuns(step.Recovery, fmtMs))
	if step.HeapDedupe > 0 && step.Events > 0 {
		text += fmt.Sprintf("; %.0f bytes of heap per id", step.HeapDedupe/float64(step.Events))
	}
	return fig, text
}

// sendAdded is the latency quantile of the SendEvent path over that of the
// path base ("direct", the minimal forwarder or "sidecar"), run by run (each
// run measured them back to back), in milliseconds.
func (r *results) sendAdded(base, path string, q func(quantiles) time.Duration) figure {
	return summarizeRuns(pairwise(r.Send[path+" latency"].each(latOf(q)), r.Send[base+" latency"].each(latOf(q)), minus))
}

// sendRatio is path's throughput as a multiple of base's, run by run.
func (r *results) sendRatio(base, path string) figure {
	return summarizeRuns(pairwise(r.Send[path+" throughput"].each(rateOf), r.Send[base+" throughput"].each(rateOf), ratio))
}

var (
	p50  = func(q quantiles) time.Duration { return q.P50 }
	p99  = func(q quantiles) time.Duration { return q.P99 }
	p999 = func(q quantiles) time.Duration { return q.P999 }
	pMax = func(q quantiles) time.Duration { return q.Max }
)

// stepCurves returns the x labels of steps and, per measure that values
// gives for a step, the figure of each step.
func stepCurves[S any](steps []S, x func(S) int, values func(S) [][]float64) (xs []string, curves [][]figure) {
	for _, s := range steps {
		xs = append(xs, formatRate(float64(x(s))))
		for i, v := range values(s) {
			if i == len(curves) {
				curves = append(curves, nil)
			}
			curves[i] = append(curves[i], summarizeRuns(v))
		}
	}
	return xs, curves
}

func (r *results) logCurves() ([]string, [][]figure) {
	return stepCurves(r.LogSteps, func(s logStep) int { return s.Events },
		func(s logStep) [][]float64 { return [][]float64{s.P99, s.RSS, {s.Heap}, s.Startup, s.Recovery} })
}

func (r *results) subCurves() ([]string, [][]figure) {
	return stepCurves(r.SubSteps, func(s subStep) int { return s.Subs },
		func(s subStep) [][]float64 { return [][]float64{s.P99, s.RSS} })
}

// panels pairs each curve with its title and format.
func panels(curves [][]figure, titles []string, formats ...func(float64) string) []panel {
	var ps []panel
	for i, c := range curves {
		ps = append(ps, panel{titles[i], formats[i], c})
	}
	return ps
}

// writeReport writes benchmarks.md and the charts into dir.
func writeReport(r *results, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	charts := map[string]string{}
	latencyCurve := func(curves []curve, label string, s *series) []curve {
		if run, ok := s.medianRun(); ok {
			curves = append(curves, curve{Label: label, Sorted: run.Lat.Sorted})
		}
		return curves
	}
	if len(r.Ingest) > 0 {
		var groups []barGroup
		var curves []curve
		for _, mode := range ingestModes {
			g := barGroup{Label: mode}
			for _, srv := range ingestServers {
				g.Bars = append(g.Bars, bar{Label: ingestLabel(srv), Fig: r.Ingest[ingestKey(srv, mode)].rate()})
				curves = latencyCurve(curves, srv+", "+mode, r.Ingest[ingestKey(srv, mode)])
			}
			groups = append(groups, g)
		}
		charts[chartIngest] = barChart(fmt.Sprintf("Webhook ingest, 1 KiB signed events, %d senders (requests/s)", r.Cfg.Senders), "requests/s", groups)
		charts[chartIngestLatency] = latencyChart(fmt.Sprintf("Webhook response latency, %d senders, closed loop", r.Cfg.Senders), curves)
	}
	if len(r.E2EOrder) > 0 {
		var curves []curve
		for _, key := range r.E2EOrder {
			curves = latencyCurve(curves, key, r.E2E[key])
		}
		charts[chartE2ELatency] = latencyChart("End to end: webhook sent → gRPC consumer received (open loop)", curves)
	}
	if len(r.LogSteps) > 0 {
		xs, curves := r.logCurves()
		charts[chartScaleLog] = panelChart("Cost against the events already in the log", "events in the log", xs, panels(curves,
			[]string{fmt.Sprintf("end-to-end p99 at %s/s, ms", formatRate(float64(r.Cfg.Rates[0]))), "peak RSS under that load, MiB", "heap after GC, MiB", "startup after SIGTERM, ms", "recovery after SIGKILL, ms"},
			fmtMs, fmtMiBShort, fmtMiBShort, fmtMs, fmtMs))
	}
	if len(r.SubSteps) > 0 {
		xs, curves := r.subCurves()
		charts[chartScaleSubs] = panelChart(fmt.Sprintf("Cost against subscriptions with open streams (%s webhooks/s, each to every subscription)", formatRate(float64(r.Cfg.ScaleRate))), "subscriptions", xs,
			panels(curves, []string{"end-to-end p99, ms", "peak RSS, MiB"}, fmtMs, fmtMiBShort))
	}
	for name, svg := range charts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(r.markdown()), 0o644)
}

func ingestLabel(srv string) string {
	if srv == srvBaseline {
		return "bare Go HTTPS"
	}
	return "sidecar, `CHRONOSHUB_SYNC=" + syncOf[srv] + "`"
}

// printer prints one line of the report.
type printer func(format string, args ...any)

// table prints a table's header row and its rule.
func table(p printer, head ...string) {
	row(p, head...)
	p("|%s", strings.Repeat("---|", len(head)))
}

// row prints one table row; an empty cell prints as "| |".
func row(p printer, cells ...string) {
	var b strings.Builder
	b.WriteString("|")
	for _, c := range cells {
		if c != "" {
			b.WriteString(" " + c)
		}
		b.WriteString(" |")
	}
	p("%s", b.String())
}

// heading prints a heading with a blank line before and after it.
func heading(p printer, text string) {
	p("")
	p("%s", text)
	p("")
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	c := r.Cfg
	m := r.Machine
	p("# Benchmarks")
	p("")
	p("Generated by `make bench` (`sidecar/cmd/chronoshub-bench`); do not edit by hand. Every figure is the")
	p("**median of %d run(s)** with the min–max range in parentheses. The sidecar and its baselines run in", c.Runs)
	p("the same harness run on the same machine, round by round, and the ratios are taken per round: they")
	p("are the figures to compare across machines. A ratio whose range includes 1, or a target whose range")
	p("straddles it, is reported as such and not claimed either way. Every verdict below is computed from")
	p("this run's figures.")
	heading(p, "## Machine and command")
	var secs []string
	for _, s := range r.SectionTimes {
		secs = append(secs, fmt.Sprintf("%s %s", s.Name, s.D.Round(time.Second)))
	}
	table(p, "", "")
	for _, kv := range [][]string{
		{"CPUs (`nproc`)", fmt.Sprintf("%s (GOMAXPROCS %d)", m.CPUs, m.GOMAXPROCS)},
		{"CPU model", m.CPUModel},
		{"memory", m.Memory},
		{"Go", m.GoVersion + " " + m.OS},
		{"kernel", m.Kernel},
		{"load average (1, 5, 15 min) before / after the run", m.LoadBefore + " / " + m.LoadAfter},
		{"command", "`go run ./sidecar/cmd/chronoshub-bench " + strings.Join(c.Args, " ") + "`"},
		{"settings", fmt.Sprintf("%d run(s) of %s (+%s warm-up), %d webhook senders, %d SendEvent callers, end-to-end rates %s/s, rate steps of %s, %s events drained, logs of %s events, %s subscriptions",
			c.Runs, c.Duration, c.Warmup, c.Senders, c.SendCallers, joinInts(c.Rates), c.StepDuration, formatRate(float64(c.StreamEvents)), joinInts(c.LogSizes), joinInts(c.Subs))},
		{"run time", fmt.Sprintf("%s (%s)", r.Elapsed.Round(time.Second), strings.Join(secs, ", "))},
	} {
		row(p, kv...)
	}
	p("")
	p("The load generators, the emulator, the baselines and the sidecar share the machine's CPUs.")
	if len(r.Failures) > 0 {
		p("")
		p("**Sections that failed in this run:**")
		for _, f := range r.Failures {
			p("- %s", strings.ReplaceAll(f, "\n", " "))
		}
	}
	for _, n := range r.Notes {
		p("")
		p("Note: %s", n)
	}
	heading(p, "## Targets")
	table(p, "target", "measured", "result")
	for _, t := range r.targets() {
		row(p, t.Name, t.Figure, t.Result)
	}
	for _, md := range []func(printer){r.mdIngest, r.mdE2E, r.mdSend, r.mdBacklog, r.mdCluster, r.mdStream, r.mdPush, r.mdFootprint, r.mdScale, r.mdProfiles} {
		md(p)
	}
	heading(p, "## Method")
	p("Closed-loop ingest measures capacity (each sender waits for its answer); open-loop end to end")
	p("measures latency at a rate, from each webhook's scheduled send time (no coordinated omission).")
	p("Percentiles are nearest-rank over every sample of a run: the p99.9 of a %s run at %s/s rests on %d",
		c.Duration, formatRate(float64(c.Rates[0])), int(float64(c.Rates[0])*c.Duration.Seconds()/1000))
	p("samples. RSS is `VmRSS` from `/proc/<pid>/status`, sampled every 50 ms. Startup polls `/readyz` every")
	p("2 ms from the moment of exec. Profiles come from the running binary (`CHRONOSHUB_PPROF=loopback`,")
	p("`/debug/pprof/profile` and `/debug/pprof/allocs` with `seconds=`), taken on a separate sidecar after the")
	p("measured runs, so that profiling does not slow what is measured.")
	return b.String()
}

func joinInts(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, formatRate(float64(x)))
	}
	return strings.Join(s, ", ")
}

func (r *results) mdIngest(p printer) {
	if len(r.Ingest) == 0 {
		return
	}
	heading(p, "## 1. Webhook ingest")
	p("%d senders post signed 1 KiB JSON events (a new event id each time) over HTTPS (HTTP/1.1, TLS 1.3,", r.Cfg.Senders)
	p("ECDSA P-256), closed loop. The baseline is a bare Go HTTPS server (`http.Server` with Go's defaults,")
	p("the same certificate) that reads the body and answers 200. The sidecar verifies the signature, checks")
	p("freshness and JSON, appends to JetStream and answers 200 once stored. *New connection* opens a TLS")
	p("connection per webhook (full handshake). Latency is the client's, request start to response read.")
	p("")
	table(p, "server", "connections", "requests/s", "ratio to baseline", "", "p50 ms", "p99 ms", "p99.9 ms", "errors")
	for _, mode := range ingestModes {
		for _, srv := range ingestServers {
			s := r.Ingest[ingestKey(srv, mode)]
			ratio, cmpText := "1", ""
			if srv != srvBaseline {
				fig := summarizeRuns(r.IngestRatio[ingestKey(srv, mode)])
				ratio, cmpText = fmtFig(fig, fmtRatio), compared(fig, "slower", "faster")
			}
			row(p, ingestLabel(srv), mode, fmtFig(s.rate(), formatRate), ratio, cmpText,
				fmtFig(s.latency(p50), fmtMs), fmtFig(s.latency(p99), fmtMs), fmtFig(s.latency(p999), fmtMs), strconv.Itoa(s.errors()))
		}
	}
	if len(r.AlwaysIngestRatio) > 0 {
		p("")
		p("`SYNC=always` (fsync before the 2xx, group commit) over `SYNC=1s`, keep-alive, per round: %s.", fmtRuns(r.AlwaysIngestRatio, fmtRatio))
	}
	p("")
	p("![ingest throughput](%s)", chartIngest)
	p("")
	p("![ingest latency](%s)", chartIngestLatency)
}

func (r *results) mdE2E(p printer) {
	if len(r.E2EOrder) == 0 {
		return
	}
	c := r.Cfg
	heading(p, "## 2. End to end: webhook → the app's `Recv`")
	p("Open loop: %d senders over keep-alive connections offer a fixed rate. One app consumes with", c.Senders)
	p("`StreamEvents` (the sidecar's default in-flight window, %d) and acknowledges every event with `AckEvents`, batching whatever", c.InFlight)
	p("ids arrived since its previous call (up to %d). Latency is from the webhook's scheduled send time to", ackBatch)
	p("the app's `Recv`, on the same clock. The **minimal pipeline** is the baseline: a bare HTTPS handler")
	p("that reads the body into an in-memory log, and a bare gRPC server-streaming service (the sidecar's")
	p("`EventService.StreamEvents`/`AckEvents`, the same window of %d) that sends it to the same app with the", c.InFlight)
	p("same acks: no signature, no store, no dedupe.")
	p("")
	table(p, "setup and offered rate", "sent", "received", "p50 ms", "p99 ms", "p99.9 ms", "max ms")
	for _, key := range r.E2EOrder {
		s := r.E2E[key]
		row(p, key, fmtRuns(s.Sent, formatRate), fmtRuns(s.Received, formatRate),
			fmtFig(s.latency(p50), fmtMs), fmtFig(s.latency(p99), fmtMs), fmtFig(s.latency(p999), fmtMs), fmtFig(s.latency(pMax), fmtMs))
	}
	p("")
	p("The sidecar (`SYNC=1s`) as a multiple of the minimal pipeline, per round:")
	p("")
	table(p, "offered rate", "p50", "p99", "p99.9")
	for _, rate := range c.Rates {
		cells := []string{formatRate(float64(rate)) + "/s"}
		for _, q := range quantileNames {
			cells = append(cells, fmtRuns(r.E2ERatio[e2eRatioKey(rate, q.name)], fmtRatio))
		}
		row(p, cells...)
	}
	if len(r.AlwaysP99Ratio) > 0 {
		p("")
		p("p99 at %s/s with `SYNC=always` over `SYNC=1s`, per round: %s.", formatRate(float64(c.Rates[0])), fmtRuns(r.AlwaysP99Ratio, fmtRatio))
	}
	if len(r.MaxHeld) > 0 {
		p("")
		p("**Highest rate held by the sidecar** (`SYNC=1s`; p99 under %s, everything received, senders on", c.StepP99)
		p("schedule; steps of %s doubling from 1,000/s, then one at 1.5× the last held): **%s events/s**.", c.StepDuration, fmtRuns(r.MaxHeld, formatRate))
		p("")
		for i, steps := range r.StepsSeen {
			var s []string
			for _, st := range steps {
				s = append(s, st.String())
			}
			p("- run %d: %s", i+1, strings.Join(s, ", "))
		}
	}
	p("")
	p("![end-to-end latency](%s)", chartE2ELatency)
}

func (r *results) mdSend(p printer) {
	if len(r.Send) == 0 {
		return
	}
	n := r.Cfg.SendCallers
	heading(p, "## 3. SendEvent")
	p("The same 1 KiB payload posted to the emulator's `POST /inbound/%s` directly (Go's default", benchEventType)
	p("transport with an idle connection per caller, `X-Api-Key`) and through the sidecar (gRPC `SendEvent`")
	p("on a loopback connection, synchronous; the sidecar then makes the same POST). Latency with one")
	p("caller; throughput with %d concurrent callers. The **minimal forwarder** is SendEvent's own baseline:", n)
	p("a bare gRPC service with the same `SendEvent` that makes the same POST and returns ChronosHub's event id,")
	p("with none of the sidecar's checks, records, retries, metrics or tracing; the gap between it and the")
	p("direct POST is what any gRPC hop in front of ChronosHub costs on this machine.")
	p("")
	table(p, "path", "p50 ms (1 caller)", "p99 ms (1 caller)", "requests/s (1 caller)", fmt.Sprintf("requests/s (%d callers)", n),
		fmt.Sprintf("p99 ms (%d callers)", n), fmt.Sprintf("new connections per 1,000 calls (%d callers)", n), "errors")
	for _, path := range []struct{ key, name string }{{"direct", "direct POST"}, {sendForwarder, "minimal forwarder (bare gRPC `SendEvent`)"},
		{"sidecar", "`SendEvent` via the sidecar"}, {sendUnix, "`SendEvent` via the sidecar's unix socket listener"}} {
		l, t := r.Send[path.key+" latency"], r.Send[path.key+" throughput"]
		if l != nil && t != nil {
			row(p, path.name, fmtFig(l.latency(p50), fmtMs), fmtFig(l.latency(p99), fmtMs), fmtFig(l.rate(), formatRate),
				fmtFig(t.rate(), formatRate), fmtFig(t.latency(p99), fmtMs), fmtRuns(t.NewConns, fmtOne), strconv.Itoa(l.errors()+t.errors()))
		}
	}
	p("")
	p("Added by the sidecar (per run, sidecar minus direct): p50 **%s ms**, p99 **%s ms**; throughput with %d callers **%s** the direct POST's.",
		fmtFig(r.sendAdded("direct", "sidecar", p50), fmtMs), fmtFig(r.sendAdded("direct", "sidecar", p99), fmtMs), n, fmtFig(r.sendRatio("direct", "sidecar"), fmtRatio))
	if r.Send[sendForwarder+" latency"] != nil {
		p("")
		p("Added by the sidecar over the minimal forwarder (per run): p50 **%s ms**, p99 **%s ms**; throughput with %d callers **%s** the forwarder's. The forwarder over the direct POST: p50 **%s ms**, p99 **%s ms** added; throughput **%s**.",
			fmtFig(r.sendAdded(sendForwarder, "sidecar", p50), fmtMs), fmtFig(r.sendAdded(sendForwarder, "sidecar", p99), fmtMs), n, fmtFig(r.sendRatio(sendForwarder, "sidecar"), fmtRatio),
			fmtFig(r.sendAdded("direct", sendForwarder, p50), fmtMs), fmtFig(r.sendAdded("direct", sendForwarder, p99), fmtMs), fmtFig(r.sendRatio("direct", sendForwarder), fmtRatio))
	}
	if r.Send[sendUnix+" latency"] != nil {
		p("")
		p("The sidecar over its unix socket listener (a second sidecar, `CHRONOSHUB_GRPC_ADDR=unix://…`) against the minimal forwarder on loopback TCP (per run): p50 **%s ms**, p99 **%s ms** added; throughput with %d callers **%s** the forwarder's. Against the same sidecar binary over loopback TCP: p99 **%s ms** added, throughput **%s**.",
			fmtFig(r.sendAdded(sendForwarder, sendUnix, p50), fmtMs), fmtFig(r.sendAdded(sendForwarder, sendUnix, p99), fmtMs), n, fmtFig(r.sendRatio(sendForwarder, sendUnix), fmtRatio),
			fmtFig(r.sendAdded("sidecar", sendUnix, p99), fmtMs), fmtFig(r.sendRatio("sidecar", sendUnix), fmtRatio))
	}
}

func (r *results) mdBacklog(p printer) {
	if r.BacklogElapsed == 0 {
		return
	}
	c := r.Cfg
	rate := float64(r.BacklogAccepted) / r.BacklogElapsed.Seconds()
	heading(p, "## 4. Async SendEvent backlog drain")
	p("%s async `SendEvent`s (%d callers) were queued while ChronosHub did not answer (a gate in front of the",
		formatRate(float64(c.BacklogEvents)), c.SendCallers)
	p("emulator held every request; the outbox had %d request(s) waiting there), in %s. Then the gate opened",
		r.BacklogHeldAtGate, r.BacklogEnqueue.Round(time.Millisecond))
	p("onto the emulator with %s of injected latency per request, and the drain was measured for at most %s.", c.BacklogLatency, c.BacklogMax)
	if len(c.BacklogEnv) > 0 {
		p("Extra sidecar settings: `%s`.", strings.Join(c.BacklogEnv, "`, `"))
	}
	p("")
	table(p, "", "")
	row(p, "accepted by ChronosHub", fmt.Sprintf("%s of %s in %s", formatRate(float64(r.BacklogAccepted)), formatRate(float64(c.BacklogEvents)), r.BacklogElapsed.Round(time.Millisecond)))
	row(p, "drain rate", formatRate(rate)+" events/s")
	if c.BacklogLatency > 0 {
		row(p, "requests in flight on average (rate × latency)", fmt.Sprintf("%.2f", rate*c.BacklogLatency.Seconds()))
		row(p, "one request at a time at this latency could reach", formatRate(1/c.BacklogLatency.Seconds())+" events/s")
	}
}

func (r *results) mdStream(p printer) {
	if len(r.StreamRate) == 0 {
		return
	}
	heading(p, "## 5. Stream drain")
	p("%s events preloaded through the webhook listener, then drained by one gRPC consumer on a new", formatRate(float64(r.Cfg.StreamEvents)))
	p("subscription per round (from the oldest event), acknowledging everything with batched `AckEvents`;")
	p("timed from `StreamEvents` to the last acknowledgement confirmed. The baseline is the minimal pipeline")
	p("of section 2 draining the same number of events from memory to the same consumer. The minimal")
	p("pipeline *over JetStream* is the same service with its log in an embedded JetStream stream (the")
	p("sidecar's embedded server, fsync every second) and a durable pull consumer per subscription whose")
	p("acks JetStream confirms before `AckEvents` returns: the store's cost without the sidecar's.")
	p("")
	table(p, "", "events/s", "ratio to the minimal pipeline, per round", "ratio to it over JetStream, per round", "ids per `AckEvents`")
	row(p, "minimal pipeline", fmtRuns(r.StreamBase, formatRate), "1", "", "")
	if len(r.StreamJS) > 0 {
		row(p, "minimal pipeline over JetStream", fmtRuns(r.StreamJS, formatRate), fmtRuns(r.StreamJSRatio, fmtRatio), "1", "")
	}
	row(p, "sidecar", fmtRuns(r.StreamRate, formatRate), fmtRuns(r.StreamRatio, fmtRatio), fmtRuns(r.StreamOverJS, fmtRatio), fmtRuns(r.StreamAcks, fmtOne))
	if js := summarizeRuns(r.StreamJSRatio); len(r.StreamJSRatio) > 0 {
		p("")
		if js.Max < 0.5 {
			p("The store alone drains at %s the minimal pipeline's rate: no pipeline on this store reaches the 0.5× target in this run.", fmtFig(js, fmtRatio))
		} else {
			p("The store alone drains at %s the minimal pipeline's rate; the sidecar at %s the store's.", fmtFig(js, fmtRatio), fmtRuns(r.StreamOverJS, fmtRatio))
		}
	}
}

func (r *results) mdPush(p printer) {
	if len(r.PushP99) == 0 {
		return
	}
	heading(p, "## 5b. Push delivery beside the gRPC stream")
	p("One sidecar (`SYNC=1s`) with two subscriptions on every event: a declared push subscription")
	p("(`concurrency` 1, the default: strict order) that POSTs each event to a local HTTP endpoint answering")
	p("204, and a stream subscription with the app of section 2. Each round offers %s webhooks/s to both at", formatRate(targetE2ERate))
	p("once (latency from the webhook's scheduled send time to the endpoint's handler or the app's `Recv`),")
	p("then stores a backlog of %s events while the stream is closed and the endpoint holds the one POST", formatRate(float64(r.pushDrainEvents())))
	p("sent meanwhile, and times its delivery by push (from the endpoint's release to the last POST")
	p("answered) and then by the stream (from `StreamEvents` to the last acknowledgement confirmed).")
	p("")
	table(p, "", "push", "gRPC stream", "push ÷ stream, per round")
	row(p, fmt.Sprintf("end-to-end p99 ms at %s/s", formatRate(targetE2ERate)), fmtRuns(r.PushP99, fmtMs), fmtRuns(r.PushStreamP99, fmtMs), fmtRuns(r.PushP99Ratio, fmtRatio))
	row(p, "backlog drain, events/s", fmtRuns(r.PushDrain, formatRate), fmtRuns(r.PushStreamDrain, formatRate), fmtRuns(r.PushDrainRatio, fmtRatio))
}

// pushDrainEvents is the backlog each round of the push section drains.
func (r *results) pushDrainEvents() int { return min(r.Cfg.StreamEvents, 5000) }

func (r *results) mdFootprint(p printer) {
	if len(r.Startup) == 0 && r.BinSize == 0 {
		return
	}
	heading(p, "## 6. Footprint")
	table(p, "", "")
	row(p, "binary size (`go build`)", fmtMiB(float64(r.BinSize)))
	if r.BinSizeStripped > 0 {
		row(p, "binary size (`make build`: `-trimpath -ldflags='-s -w'`, CGO off)", fmtMiB(float64(r.BinSizeStripped)))
	}
	row(p, "startup, exec → `/readyz` 200 (empty data dir)", fmtRuns(r.Startup, fmtMs)+" ms")
	row(p, "RSS idle (2 s after ready, empty store)", fmtRuns(r.IdleRSS, fmtMiB))
	row(p, "RSS peak under ingest (keep-alive, then new connections), `SYNC=1s`", fmtRuns(r.PeakRSS["1s"], fmtMiB))
	row(p, "RSS peak under ingest, `SYNC=always`", fmtRuns(r.PeakRSS["always"], fmtMiB))
	row(p, "RSS peak of the bare HTTPS baseline under the same load", fmtRuns(r.PeakRSS[srvBaseline], fmtMiB))
}

// bendText says where a curve bends, from its medians.
func bendText(xs []string, curve []figure) string {
	var values []float64
	for _, f := range curve {
		values = append(values, f.Median)
	}
	if len(values) < 2 {
		return "one step: no curve"
	}
	i, maxRatio, at := bend(values)
	if at < 0 {
		return "no step to compare (a value is zero or missing)"
	}
	if i < 0 {
		return fmt.Sprintf("no step more than doubles the previous one (largest step: %.2f× at %s)", maxRatio, xs[at])
	}
	return fmt.Sprintf("bends at %s (%.2f× the step before; the first step above 2×)", xs[i], values[i]/values[i-1])
}

// bends prints where each curve bends.
func (p printer) bends(xs []string, curves [][]figure) {
	for i, name := range []string{"end-to-end p99", "peak RSS", "heap after GC", "startup", "recovery"}[:len(curves)] {
		p("- %s: %s.", name, bendText(xs, curves[i]))
	}
}

func (r *results) mdScale(p printer) {
	if len(r.LogSteps) == 0 && len(r.SubSteps) == 0 {
		return
	}
	c := r.Cfg
	heading(p, "## 7. How cost grows with the work")
	p("Each step is a new sidecar (`SYNC=1s`). A curve *bends* at the first step whose median is more than")
	p("twice the previous step's; that is computed from the figures below.")
	if len(r.LogSteps) > 0 {
		p("")
		p("**Events already in the log.** The log is filled through the webhook listener with no subscription, so")
		p("the events are stored and their ids are all in the duplicate window (24 h); then one app subscribes at")
		p("the next event (`START_POSITION_NOW`) and %s webhooks/s are offered, %d run(s) of %s. Startup is", formatRate(float64(c.Rates[0])), c.Runs, c.Duration)
		p("measured after a SIGTERM, recovery after a SIGKILL, on the same data dir. Each step's sidecar has")
		p("`CHRONOSHUB_LOG_MAX_BYTES` set to 1 GiB + 4 KiB per event, so that no event is removed to make room.")
		p("The heap is `HeapAlloc` after")
		p("a forced GC (`/debug/pprof/heap?gc=1`), in the sidecar that filled the log and in one restarted on it,")
		p("which rebuilt the duplicate window's ids from the log; the window's share is what the restarted one's")
		p("heap profile puts in the NATS server's functions that hold it (`storeMsgIdLocked`: the map and array;")
		p("`getMsgId`: the ids' strings; `rebuildDedupe`: the entries).")
		p("")
		if biggest := slices.Max(c.LogSizes); biggest < 1_000_000 {
			p("This run stops at %s events; the curve to 1,000,000 (the default of `make bench`) takes a few", formatRate(float64(biggest)))
			p("minutes more: `go run ./sidecar/cmd/chronoshub-bench -only scale -log-sizes 0,100000,1000000`.")
			p("")
		}
		table(p, "events in the log", "data dir after the step", "heap after GC", "heap, restarted", "of which the duplicate window", "end-to-end p99 ms", "peak RSS", "startup ms", "recovery ms")
		for _, s := range r.LogSteps {
			row(p, formatRate(float64(s.Events)), fmtMiB(float64(s.DataBytes)), fmtMiB(s.Heap), fmtMiB(s.HeapIDs), fmtMiB(s.HeapDedupe),
				fmtRuns(s.P99, fmtMs), fmtRuns(s.RSS, fmtMiB), fmtRuns(s.Startup, fmtMs), fmtRuns(s.Recovery, fmtMs))
		}
		p("")
		p.bends(r.logCurves())
		first, last := r.LogSteps[0], r.LogSteps[len(r.LogSteps)-1]
		if n := last.Events - first.Events; n > 0 {
			p("- heap per event in the log, from %s to %s events: %.0f bytes.", formatRate(float64(first.Events)), formatRate(float64(last.Events)), (last.Heap-first.Heap)/float64(n))
			if last.HeapDedupe > 0 {
				p("- the duplicate window's ids: %.0f bytes per id, %s of the restarted sidecar's %s heap with %s events in the window.",
					last.HeapDedupe/float64(last.Events), fmtMiB(last.HeapDedupe), fmtMiB(last.HeapIDs), formatRate(float64(last.Events)))
			}
		}
		p("")
		p("![scale with the log](%s)", chartScaleLog)
	}
	if len(r.SubSteps) > 0 {
		p("")
		p("**Subscriptions with open streams.** Each subscription has one app (its own stream, all on one gRPC")
		p("connection, each acking as in section 2) and receives every event; %s webhooks/s are offered, so the", formatRate(float64(c.ScaleRate)))
		p("sidecar delivers subscriptions × that rate. Latency is over every receipt of every subscription.")
		p("")
		table(p, "subscriptions", "receipts/s", "end-to-end p99 ms", "peak RSS", "minimal pipeline over JetStream: end-to-end p99 ms")
		for _, s := range r.SubSteps {
			row(p, formatRate(float64(s.Subs)), fmtRuns(s.Received, formatRate), fmtRuns(s.P99, fmtMs), fmtRuns(s.RSS, fmtMiB), fmtRuns(s.JSP99, fmtMs))
		}
		p("")
		p.bends(r.subCurves())
		if js := summarizeRuns(r.fanOutRatioOf(targetFanOutSubs, func(s subStep) []float64 { return s.JSP99 })); !isNaN(js.Median) {
			p("- the minimal pipeline over JetStream (section 5: the store's own consumers and acks, nothing of the sidecar's): p99 with %d subscriptions %s its p99 with one, per round.", targetFanOutSubs, fmtFig(js, fmtRatio))
		}
		p("")
		p("![scale with subscriptions](%s)", chartScaleSubs)
	}
}

// profileTitle describes a profile's load.
func (r *results) profileTitle(name string) string {
	return map[string]string{
		profIngest: fmt.Sprintf("webhook ingest, keep-alive, %d senders (CPU)", r.Cfg.Senders),
		profE2E:    fmt.Sprintf("end to end at %s/s, one app (CPU)", formatRate(targetE2ERate)),
		profSend:   fmt.Sprintf("SendEvent, %d callers (CPU)", r.Cfg.SendCallers),
		profAllocs: fmt.Sprintf("SendEvent, %d callers (allocations, `-sample_index=alloc_space`)", r.Cfg.SendCallers),
		profStream: "stream drain, one app (CPU)",
		profFanOut: fmt.Sprintf("%d subscriptions at %s webhooks/s (CPU)", targetFanOutSubs, formatRate(float64(r.Cfg.ScaleRate))),
	}[name]
}

func (r *results) mdProfiles(p printer) {
	if len(r.Profiles) == 0 {
		return
	}
	heading(p, "## 8. Where the cost goes (profiles of the binary)")
	p("*Owner* is the innermost package of this module on each sample's stack: the sidecar package whose")
	p("call led to the cost. A stack with no sidecar frame is \"none\", named by the kind of its outermost")
	p("frame (the goroutine's entry): the embedded NATS server's own goroutines (which do the event log's")
	p("and the outbox's storing), the gRPC and HTTP transports, the runtime and GC. *Flat* is the")
	p("function's own share of the samples.")
	missed := map[string]bool{}
	for _, t := range r.targets() {
		if t.Profile != "" && !strings.Contains(t.Result, "met") {
			missed[t.Profile] = true
			missed[profAllocs] = missed[profAllocs] || t.Profile == profSend
		}
	}
	for _, name := range []string{profIngest, profE2E, profSend, profAllocs, profStream, profFanOut} {
		i := slices.IndexFunc(r.Profiles, func(pr *profile) bool { return pr.Name == name })
		if i < 0 {
			continue
		}
		pr := r.Profiles[i]
		if missed[name] {
			heading(p, "### "+r.profileTitle(name)+" — target missed or undecided")
		} else {
			heading(p, "<details><summary>"+r.profileTitle(name)+" — target met</summary>")
		}
		rateUnit := "requests/s"
		if name == profStream || name == profE2E || name == profFanOut {
			rateUnit = "events/s"
		}
		if pr.Header != "" {
			p("%s; the load ran at %s %s.", pr.Header, formatRate(pr.Rate), rateUnit)
		} else {
			p("The load ran at %s %s.", formatRate(pr.Rate), rateUnit)
		}
		p("")
		for _, shares := range []struct {
			head string
			s    []share
		}{{"owner (innermost sidecar package)", pr.Owners}, {"kind of code (flat)", pr.Categories}} {
			table(p, shares.head, "share")
			for _, o := range shares.s[:min(len(shares.s), 8)] {
				row(p, o.Name, fmt.Sprintf("%.1f %%", o.Pct))
			}
			p("")
		}
		table(p, "flat %", "cum %", "function (top 15 by flat)")
		for _, l := range pr.Top[:min(len(pr.Top), 15)] {
			row(p, fmt.Sprintf("%.1f", l.Flat), fmt.Sprintf("%.1f", l.Cum), "`"+l.Name+"`")
		}
		if !missed[name] {
			p("")
			p("</details>")
		}
	}
}
