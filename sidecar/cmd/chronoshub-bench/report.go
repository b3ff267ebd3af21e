package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets of the issue.
const (
	targetIngestRatio  = 0.75 // keep-alive ingest, sidecar ÷ bare HTTPS
	targetE2ERate      = 1000 // events/s offered for the end-to-end target
	targetE2ERatio     = 1.5  // end-to-end p99, sidecar ÷ minimal pipeline
	targetSendAddP99   = 0.1  // ms SendEvent adds at p99 over the minimal forwarder, one caller
	targetSendRatio    = 0.95 // SendEvent throughput ÷ the minimal forwarder's, SendCallers callers
	targetStreamRatio  = 0.5  // stream drain, sidecar ÷ minimal pipeline
	targetIdleRSS      = 64 << 20
	targetStartupMilli = 1000
	// Issue 22's targets.
	targetAlwaysIngest  = 0.5 // keep-alive ingest, SYNC=always ÷ SYNC=1s
	targetAlwaysP99     = 2   // end-to-end p99 at the lowest rate, SYNC=always ÷ SYNC=1s
	targetClusterP99    = 2.5 // end-to-end p99, R3 cluster ÷ embedded
	targetClusterIngest = 0.6 // keep-alive ingest, R3 cluster ÷ embedded
	targetFanOutP99     = 3   // end-to-end p99, 100 subscriptions ÷ 1
	targetFanOutSubs    = 100
	targetDedupeEvents  = 1_000_000 // events in the duplicate window
	targetDedupeMilli   = 1000      // startup and recovery with them, ms
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
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
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

func fmtMiB(v float64) string   { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
func fmtRatio(v float64) string { return fmt.Sprintf("%.2f×", v) }

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

func (r *results) targets() []target {
	ingest := summarizeRuns(r.IngestRatio[ingestKey(srvSidecar1s, modeKeepAlive)])
	e2e := summarizeRuns(r.E2ERatio[e2eRatioKey(targetE2ERate, "p99")])
	add := r.sendAdded(sendForwarder, "sidecar", p99)
	ratio := r.sendRatio(sendForwarder, "sidecar")
	always := summarizeRuns(r.AlwaysIngestRatio)
	alwaysP99 := summarizeRuns(r.AlwaysP99Ratio)
	stream := summarizeRuns(r.StreamRatio)
	clusterP99 := summarizeRuns(r.ClusterP99Ratio)
	clusterIngest := summarizeRuns(r.ClusterIngestRatio)
	fanOut := summarizeRuns(r.fanOutRatio(targetFanOutSubs))
	dedupe, dedupeName := r.dedupeStart(targetDedupeEvents)
	rss := summarizeRuns(r.IdleRSS)
	st := summarizeRuns(r.Startup)
	rate := 0
	if len(r.Cfg.Rates) > 0 {
		rate = r.Cfg.Rates[0]
	}
	return []target{
		{"Webhook ingest, keep-alive, `SYNC=1s`: ≥ 0.75× the bare HTTPS server's requests/s", fmtFig(ingest, fmtRatio),
			verdict(ingest, func(v float64) bool { return v >= targetIngestRatio }), profIngest},
		{"Group commit: keep-alive ingest with `SYNC=always` ≥ 0.5× `SYNC=1s`'s", fmtFig(always, fmtRatio),
			verdict(always, func(v float64) bool { return v >= targetAlwaysIngest }), profIngest},
		{fmt.Sprintf("Group commit: end-to-end p99 at %s/s with `SYNC=always` ≤ 2× `SYNC=1s`'s", formatRate(float64(rate))), fmtFig(alwaysP99, fmtRatio),
			verdict(alwaysP99, func(v float64) bool { return v <= targetAlwaysP99 }), profE2E},
		{"End to end at 1,000 events/s: p99 ≤ 1.5× the minimal pipeline's", fmtFig(e2e, fmtRatio),
			verdict(e2e, func(v float64) bool { return v <= targetE2ERatio }), profE2E},
		{"Stream drain ≥ 0.5× the minimal pipeline's events/s", fmtFig(stream, fmtRatio),
			verdict(stream, func(v float64) bool { return v >= targetStreamRatio }), profStream},
		{fmt.Sprintf("Cluster (R3): end-to-end p99 at %s/s ≤ 2.5× the embedded store's", formatRate(float64(rate))), fmtFig(clusterP99, fmtRatio),
			verdict(clusterP99, func(v float64) bool { return v <= targetClusterP99 }), ""},
		{"Cluster (R3): keep-alive ingest ≥ 0.6× the embedded store's", fmtFig(clusterIngest, fmtRatio),
			verdict(clusterIngest, func(v float64) bool { return v >= targetClusterIngest }), ""},
		{fmt.Sprintf("Fan-out: end-to-end p99 with %d subscriptions ≤ 3× with one", targetFanOutSubs), fmtFig(fanOut, fmtRatio),
			verdict(fanOut, func(v float64) bool { return v <= targetFanOutP99 }), profFanOut},
		{fmt.Sprintf("Duplicate window: startup and recovery with %s events in it < 1 s", formatRate(targetDedupeEvents)), dedupeName,
			verdict(dedupe, func(v float64) bool { return v < targetDedupeMilli }), ""},
		{"SendEvent, one caller: adds ≤ 0.1 ms at p99 over the minimal forwarder", fmtFig(add, fmtMs) + " ms",
			verdict(add, func(v float64) bool { return v <= targetSendAddP99 }), profSend},
		{fmt.Sprintf("SendEvent, %d callers: ≥ 0.95× the minimal forwarder's throughput", r.Cfg.SendCallers), fmtFig(ratio, fmtRatio),
			verdict(ratio, func(v float64) bool { return v >= targetSendRatio }), profSend},
		{"Idle RSS < 64 MiB", fmtFig(rss, fmtMiB), verdict(rss, func(v float64) bool { return v < targetIdleRSS }), ""},
		{"Startup (exec → `/readyz` 200) < 1 s", fmtFig(st, fmtMs) + " ms", verdict(st, func(v float64) bool { return v < targetStartupMilli }), ""},
	}
}

// fanOutRatio is, run by run, the end-to-end p99 with subs subscriptions
// over the p99 with one; none when either was not measured.
func (r *results) fanOutRatio(subs int) []float64 {
	var one, many *subStep
	for i := range r.SubSteps {
		switch r.SubSteps[i].Subs {
		case 1:
			one = &r.SubSteps[i]
		case subs:
			many = &r.SubSteps[i]
		}
	}
	if one == nil || many == nil {
		return nil
	}
	var v []float64
	for i := range min(len(one.P99), len(many.P99)) {
		if one.P99[i] > 0 {
			v = append(v, many.P99[i]/one.P99[i])
		}
	}
	return v
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
	var v []float64
	for i := range min(len(step.Startup), len(step.Recovery)) {
		v = append(v, max(step.Startup[i], step.Recovery[i]))
	}
	fig := summarizeRuns(v)
	text := fmt.Sprintf("%s ms with %s events (startup %s ms, recovery %s ms)", fmtFig(fig, fmtMs), formatRate(float64(step.Events)),
		fmtFig(summarizeRuns(step.Startup), fmtMs), fmtFig(summarizeRuns(step.Recovery), fmtMs))
	if step.HeapDedupe > 0 && step.Events > 0 {
		text += fmt.Sprintf("; %.0f bytes of heap per id", step.HeapDedupe/float64(step.Events))
	}
	return fig, text
}

// sendAdded is the latency quantile of the SendEvent path over that of the
// path base ("direct", the minimal forwarder or "sidecar"), run by run (each
// run measured them back to back), in milliseconds.
func (r *results) sendAdded(base, path string, q func(quantiles) time.Duration) figure {
	d, s := r.Send[base+" latency"], r.Send[path+" latency"]
	if d == nil || s == nil {
		return summarizeRuns(nil)
	}
	var v []float64
	for i := range min(len(d.Runs), len(s.Runs)) {
		v = append(v, ms(q(s.Runs[i].Lat))-ms(q(d.Runs[i].Lat)))
	}
	return summarizeRuns(v)
}

// sendRatio is path's throughput as a multiple of base's, run by run.
func (r *results) sendRatio(base, path string) figure {
	d, s := r.Send[base+" throughput"], r.Send[path+" throughput"]
	if d == nil || s == nil {
		return summarizeRuns(nil)
	}
	var v []float64
	for i := range min(len(d.Runs), len(s.Runs)) {
		if d.Runs[i].Rate > 0 {
			v = append(v, s.Runs[i].Rate/d.Runs[i].Rate)
		}
	}
	return summarizeRuns(v)
}

var (
	p50  = func(q quantiles) time.Duration { return q.P50 }
	p99  = func(q quantiles) time.Duration { return q.P99 }
	p999 = func(q quantiles) time.Duration { return q.P999 }
)

// writeReport writes benchmarks.md and the charts into dir.
func writeReport(r *results, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	charts := map[string]string{}
	if len(r.Ingest) > 0 {
		var groups []barGroup
		for _, mode := range ingestModes {
			g := barGroup{Label: mode}
			for _, srv := range ingestServers {
				g.Bars = append(g.Bars, bar{Label: ingestLabel(srv), Fig: r.Ingest[ingestKey(srv, mode)].rate()})
			}
			groups = append(groups, g)
		}
		charts[chartIngest] = barChart(fmt.Sprintf("Webhook ingest, 1 KiB signed events, %d senders (requests/s)", r.Cfg.Senders), "requests/s", groups)
		var curves []curve
		for _, mode := range ingestModes {
			for _, srv := range ingestServers {
				if run, ok := r.Ingest[ingestKey(srv, mode)].medianRun(); ok {
					curves = append(curves, curve{Label: srv + ", " + mode, Sorted: run.Lat.Sorted})
				}
			}
		}
		charts[chartIngestLatency] = latencyChart(fmt.Sprintf("Webhook response latency, %d senders, closed loop", r.Cfg.Senders), curves)
	}
	if len(r.E2EOrder) > 0 {
		var curves []curve
		for _, key := range r.E2EOrder {
			if run, ok := r.E2E[key].medianRun(); ok {
				curves = append(curves, curve{Label: key, Sorted: run.Lat.Sorted})
			}
		}
		charts[chartE2ELatency] = latencyChart("End to end: webhook sent → gRPC consumer received (open loop)", curves)
	}
	if len(r.LogSteps) > 0 {
		var x []string
		var p99s, rss, heap, startup, recovery []figure
		for _, s := range r.LogSteps {
			x = append(x, formatRate(float64(s.Events)))
			p99s = append(p99s, summarizeRuns(s.P99))
			rss = append(rss, summarizeRuns(s.RSS))
			heap = append(heap, summarizeRuns([]float64{s.Heap}))
			startup = append(startup, summarizeRuns(s.Startup))
			recovery = append(recovery, summarizeRuns(s.Recovery))
		}
		charts[chartScaleLog] = panelChart("Cost against the events already in the log", "events in the log", x, []panel{
			{fmt.Sprintf("end-to-end p99 at %s/s, ms", formatRate(float64(r.Cfg.Rates[0]))), fmtMs, p99s},
			{"peak RSS under that load, MiB", fmtMiBShort, rss},
			{"heap after GC, MiB", fmtMiBShort, heap},
			{"startup after SIGTERM, ms", fmtMs, startup},
			{"recovery after SIGKILL, ms", fmtMs, recovery},
		})
	}
	if len(r.SubSteps) > 0 {
		var x []string
		var p99s, rss []figure
		for _, s := range r.SubSteps {
			x = append(x, formatRate(float64(s.Subs)))
			p99s = append(p99s, summarizeRuns(s.P99))
			rss = append(rss, summarizeRuns(s.RSS))
		}
		charts[chartScaleSubs] = panelChart(fmt.Sprintf("Cost against subscriptions with open streams (%s webhooks/s, each to every subscription)", formatRate(float64(r.Cfg.ScaleRate))), "subscriptions", x, []panel{
			{"end-to-end p99, ms", fmtMs, p99s},
			{"peak RSS, MiB", fmtMiBShort, rss},
		})
	}
	for name, svg := range charts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(r.markdown()), 0o644)
}

func fmtMiBShort(v float64) string { return fmt.Sprintf("%.0f", v/(1<<20)) }

func ingestLabel(srv string) string {
	if srv == srvBaseline {
		return "bare Go HTTPS"
	}
	return "sidecar, `CHRONOSHUB_SYNC=" + syncOf[srv] + "`"
}

type printer func(format string, args ...any)

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
	p("")
	p("## Machine and command")
	p("")
	p("| | |")
	p("|---|---|")
	p("| CPUs (`nproc`) | %s (GOMAXPROCS %d) |", m.CPUs, m.GOMAXPROCS)
	p("| CPU model | %s |", m.CPUModel)
	p("| memory | %s |", m.Memory)
	p("| Go | %s %s |", m.GoVersion, m.OS)
	p("| kernel | %s |", m.Kernel)
	p("| load average (1, 5, 15 min) before / after the run | %s / %s |", m.LoadBefore, m.LoadAfter)
	p("| command | `go run ./sidecar/cmd/chronoshub-bench %s` |", strings.Join(c.Args, " "))
	p("| settings | %d run(s) of %s (+%s warm-up), %d webhook senders, %d SendEvent callers, end-to-end rates %s/s, rate steps of %s, %s events drained, logs of %s events, %s subscriptions |",
		c.Runs, c.Duration, c.Warmup, c.Senders, c.SendCallers, joinInts(c.Rates), c.StepDuration, formatRate(float64(c.StreamEvents)), joinInts(c.LogSizes), joinInts(c.Subs))
	var secs []string
	for _, s := range r.SectionTimes {
		secs = append(secs, fmt.Sprintf("%s %s", s.Name, s.D.Round(time.Second)))
	}
	p("| run time | %s (%s) |", r.Elapsed.Round(time.Second), strings.Join(secs, ", "))
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
	p("")
	p("## Targets")
	p("")
	p("| target | measured | result |")
	p("|---|---|---|")
	for _, t := range r.targets() {
		p("| %s | %s | %s |", t.Name, t.Figure, t.Result)
	}
	r.mdIngest(p)
	r.mdE2E(p)
	r.mdSend(p)
	r.mdBacklog(p)
	r.mdCluster(p)
	r.mdStream(p)
	r.mdFootprint(p)
	r.mdScale(p)
	r.mdProfiles(p)
	p("")
	p("## Method")
	p("")
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
	c := r.Cfg
	p("")
	p("## 1. Webhook ingest")
	p("")
	p("%d senders post signed 1 KiB JSON events (a new event id each time) over HTTPS (HTTP/1.1, TLS 1.3,", c.Senders)
	p("ECDSA P-256), closed loop. The baseline is a bare Go HTTPS server (`http.Server` with Go's defaults,")
	p("the same certificate) that reads the body and answers 200. The sidecar verifies the signature, checks")
	p("freshness and JSON, appends to JetStream and answers 200 once stored. *New connection* opens a TLS")
	p("connection per webhook (full handshake). Latency is the client's, request start to response read.")
	p("")
	p("| server | connections | requests/s | ratio to baseline | | p50 ms | p99 ms | p99.9 ms | errors |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, mode := range ingestModes {
		for _, srv := range ingestServers {
			s := r.Ingest[ingestKey(srv, mode)]
			ratio, cmpText := "1", ""
			if srv != srvBaseline {
				fig := summarizeRuns(r.IngestRatio[ingestKey(srv, mode)])
				ratio, cmpText = fmtFig(fig, fmtRatio), compared(fig, "slower", "faster")
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %d |", ingestLabel(srv), mode, fmtFig(s.rate(), formatRate), ratio, cmpText,
				fmtFig(s.latency(p50), fmtMs), fmtFig(s.latency(p99), fmtMs), fmtFig(s.latency(p999), fmtMs), s.errors())
		}
	}
	if len(r.AlwaysIngestRatio) > 0 {
		p("")
		p("`SYNC=always` (fsync before the 2xx, group commit) over `SYNC=1s`, keep-alive, per round: %s.", fmtFig(summarizeRuns(r.AlwaysIngestRatio), fmtRatio))
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
	p("")
	p("## 2. End to end: webhook → the app's `Recv`")
	p("")
	p("Open loop: %d senders over keep-alive connections offer a fixed rate. One app consumes with", c.Senders)
	p("`StreamEvents` (the sidecar's default in-flight window, %d) and acknowledges every event with `AckEvents`, batching whatever", c.InFlight)
	p("ids arrived since its previous call (up to %d). Latency is from the webhook's scheduled send time to", ackBatch)
	p("the app's `Recv`, on the same clock. The **minimal pipeline** is the baseline: a bare HTTPS handler")
	p("that reads the body into an in-memory log, and a bare gRPC server-streaming service (the sidecar's")
	p("`EventService.StreamEvents`/`AckEvents`, the same window of %d) that sends it to the same app with the", c.InFlight)
	p("same acks: no signature, no store, no dedupe.")
	p("")
	p("| setup and offered rate | sent | received | p50 ms | p99 ms | p99.9 ms | max ms |")
	p("|---|---|---|---|---|---|---|")
	for _, key := range r.E2EOrder {
		s := r.E2E[key]
		p("| %s | %s | %s | %s | %s | %s | %s |", key, fmtFig(summarizeRuns(s.Sent), formatRate), fmtFig(summarizeRuns(s.Received), formatRate),
			fmtFig(s.latency(p50), fmtMs), fmtFig(s.latency(p99), fmtMs), fmtFig(s.latency(p999), fmtMs),
			fmtFig(s.latency(func(q quantiles) time.Duration { return q.Max }), fmtMs))
	}
	p("")
	p("The sidecar (`SYNC=1s`) as a multiple of the minimal pipeline, per round:")
	p("")
	p("| offered rate | p50 | p99 | p99.9 |")
	p("|---|---|---|---|")
	for _, rate := range c.Rates {
		var cells []string
		for _, q := range quantileNames {
			cells = append(cells, fmtFig(summarizeRuns(r.E2ERatio[e2eRatioKey(rate, q.name)]), fmtRatio))
		}
		p("| %s/s | %s |", formatRate(float64(rate)), strings.Join(cells, " | "))
	}
	if len(r.AlwaysP99Ratio) > 0 {
		p("")
		p("p99 at %s/s with `SYNC=always` over `SYNC=1s`, per round: %s.", formatRate(float64(c.Rates[0])), fmtFig(summarizeRuns(r.AlwaysP99Ratio), fmtRatio))
	}
	if len(r.MaxHeld) > 0 {
		held := summarizeRuns(r.MaxHeld)
		p("")
		p("**Highest rate held by the sidecar** (`SYNC=1s`; p99 under %s, everything received, senders on", c.StepP99)
		p("schedule; steps of %s doubling from 1,000/s, then one at 1.5× the last held): **%s events/s**.", c.StepDuration, fmtFig(held, formatRate))
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
	p("")
	p("## 3. SendEvent")
	p("")
	p("The same 1 KiB payload posted to the emulator's `POST /inbound/%s` directly (Go's default", benchEventType)
	p("transport with an idle connection per caller, `X-Api-Key`) and through the sidecar (gRPC `SendEvent`")
	p("on a loopback connection, synchronous; the sidecar then makes the same POST). Latency with one")
	p("caller; throughput with %d concurrent callers. The **minimal forwarder** is SendEvent's own baseline:", r.Cfg.SendCallers)
	p("a bare gRPC service with the same `SendEvent` that makes the same POST and returns ChronosHub's event id,")
	p("with none of the sidecar's checks, records, retries, metrics or tracing; the gap between it and the")
	p("direct POST is what any gRPC hop in front of ChronosHub costs on this machine.")
	p("")
	p("| path | p50 ms (1 caller) | p99 ms (1 caller) | requests/s (1 caller) | requests/s (%d callers) | p99 ms (%d callers) | new connections per 1,000 calls (%d callers) | errors |", r.Cfg.SendCallers, r.Cfg.SendCallers, r.Cfg.SendCallers)
	p("|---|---|---|---|---|---|---|---|")
	for _, path := range []string{"direct", sendForwarder, "sidecar", sendUnix} {
		l, t := r.Send[path+" latency"], r.Send[path+" throughput"]
		if l == nil || t == nil {
			continue
		}
		name := map[string]string{"direct": "direct POST", sendForwarder: "minimal forwarder (bare gRPC `SendEvent`)", "sidecar": "`SendEvent` via the sidecar", sendUnix: "`SendEvent` via the sidecar's unix socket listener"}[path]
		p("| %s | %s | %s | %s | %s | %s | %s | %d |", name, fmtFig(l.latency(p50), fmtMs), fmtFig(l.latency(p99), fmtMs), fmtFig(l.rate(), formatRate),
			fmtFig(t.rate(), formatRate), fmtFig(t.latency(p99), fmtMs), fmtFig(summarizeRuns(t.connsPerK()), fmtConns), l.errors()+t.errors())
	}
	p("")
	p("Added by the sidecar (per run, sidecar minus direct): p50 **%s ms**, p99 **%s ms**; throughput with %d callers **%s** the direct POST's.",
		fmtFig(r.sendAdded("direct", "sidecar", p50), fmtMs), fmtFig(r.sendAdded("direct", "sidecar", p99), fmtMs), r.Cfg.SendCallers, fmtFig(r.sendRatio("direct", "sidecar"), fmtRatio))
	if r.Send[sendForwarder+" latency"] != nil {
		p("")
		p("Added by the sidecar over the minimal forwarder (per run): p50 **%s ms**, p99 **%s ms**; throughput with %d callers **%s** the forwarder's. The forwarder over the direct POST: p50 **%s ms**, p99 **%s ms** added; throughput **%s**.",
			fmtFig(r.sendAdded(sendForwarder, "sidecar", p50), fmtMs), fmtFig(r.sendAdded(sendForwarder, "sidecar", p99), fmtMs), r.Cfg.SendCallers, fmtFig(r.sendRatio(sendForwarder, "sidecar"), fmtRatio),
			fmtFig(r.sendAdded("direct", sendForwarder, p50), fmtMs), fmtFig(r.sendAdded("direct", sendForwarder, p99), fmtMs), fmtFig(r.sendRatio("direct", sendForwarder), fmtRatio))
	}
	if r.Send[sendUnix+" latency"] != nil {
		p("")
		p("The sidecar over its unix socket listener (a second sidecar, `CHRONOSHUB_GRPC_ADDR=unix://…`) against the minimal forwarder on loopback TCP (per run): p50 **%s ms**, p99 **%s ms** added; throughput with %d callers **%s** the forwarder's. Against the same sidecar binary over loopback TCP: p99 **%s ms** added, throughput **%s**.",
			fmtFig(r.sendAdded(sendForwarder, sendUnix, p50), fmtMs), fmtFig(r.sendAdded(sendForwarder, sendUnix, p99), fmtMs), r.Cfg.SendCallers, fmtFig(r.sendRatio(sendForwarder, sendUnix), fmtRatio),
			fmtFig(r.sendAdded("sidecar", sendUnix, p99), fmtMs), fmtFig(r.sendRatio("sidecar", sendUnix), fmtRatio))
	}
}

func (r *results) mdBacklog(p printer) {
	if r.BacklogElapsed == 0 {
		return
	}
	c := r.Cfg
	rate := float64(r.BacklogAccepted) / r.BacklogElapsed.Seconds()
	p("")
	p("## 4. Async SendEvent backlog drain")
	p("")
	p("%s async `SendEvent`s (%d callers) were queued while ChronosHub did not answer (a gate in front of the",
		formatRate(float64(c.BacklogEvents)), c.SendCallers)
	p("emulator held every request; the outbox had %d request(s) waiting there), in %s. Then the gate opened",
		r.BacklogHeldAtGate, r.BacklogEnqueue.Round(time.Millisecond))
	p("onto the emulator with %s of injected latency per request, and the drain was measured for at most %s.", c.BacklogLatency, c.BacklogMax)
	if len(c.BacklogEnv) > 0 {
		p("Extra sidecar settings: `%s`.", strings.Join(c.BacklogEnv, "`, `"))
	}
	p("")
	p("| | |")
	p("|---|---|")
	p("| accepted by ChronosHub | %s of %s in %s |", formatRate(float64(r.BacklogAccepted)), formatRate(float64(c.BacklogEvents)), r.BacklogElapsed.Round(time.Millisecond))
	p("| drain rate | %s events/s |", formatRate(rate))
	if c.BacklogLatency > 0 {
		inFlight := rate * c.BacklogLatency.Seconds()
		p("| requests in flight on average (rate × latency) | %.2f |", inFlight)
		p("| one request at a time at this latency could reach | %s events/s |", formatRate(1/c.BacklogLatency.Seconds()))
	}
}

func (r *results) mdStream(p printer) {
	if len(r.StreamRate) == 0 {
		return
	}
	ratio := summarizeRuns(r.StreamRatio)
	p("")
	p("## 5. Stream drain")
	p("")
	p("%s events preloaded through the webhook listener, then drained by one gRPC consumer on a new", formatRate(float64(r.Cfg.StreamEvents)))
	p("subscription per round (from the oldest event), acknowledging everything with batched `AckEvents`;")
	p("timed from `StreamEvents` to the last acknowledgement confirmed. The baseline is the minimal pipeline")
	p("of section 2 draining the same number of events from memory to the same consumer.")
	p("")
	p("| | events/s | ids per `AckEvents` |")
	p("|---|---|---|")
	p("| minimal pipeline | %s | |", fmtFig(summarizeRuns(r.StreamBase), formatRate))
	p("| sidecar | %s | %s |", fmtFig(summarizeRuns(r.StreamRate), formatRate), fmtFig(summarizeRuns(r.StreamAcks), func(v float64) string { return fmt.Sprintf("%.1f", v) }))
	p("| ratio, per round | %s | |", fmtFig(ratio, fmtRatio))
}

func (r *results) mdFootprint(p printer) {
	if len(r.Startup) == 0 && r.BinSize == 0 {
		return
	}
	p("")
	p("## 6. Footprint")
	p("")
	p("| | |")
	p("|---|---|")
	p("| binary size (`go build`) | %s |", fmtMiB(float64(r.BinSize)))
	if r.BinSizeStripped > 0 {
		p("| binary size (`make build`: `-trimpath -ldflags='-s -w'`, CGO off) | %s |", fmtMiB(float64(r.BinSizeStripped)))
	}
	p("| startup, exec → `/readyz` 200 (empty data dir) | %s ms |", fmtFig(summarizeRuns(r.Startup), fmtMs))
	p("| RSS idle (2 s after ready, empty store) | %s |", fmtFig(summarizeRuns(r.IdleRSS), fmtMiB))
	p("| RSS peak under ingest (keep-alive, then new connections), `SYNC=1s` | %s |", fmtFig(summarizeRuns(r.PeakRSS["1s"]), fmtMiB))
	p("| RSS peak under ingest, `SYNC=always` | %s |", fmtFig(summarizeRuns(r.PeakRSS["always"]), fmtMiB))
	p("| RSS peak of the bare HTTPS baseline under the same load | %s |", fmtFig(summarizeRuns(r.PeakRSS[srvBaseline]), fmtMiB))
}

// bendText says where a curve bends, from its medians.
func bendText(xs []string, values []float64) string {
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

func (r *results) mdScale(p printer) {
	if len(r.LogSteps) == 0 && len(r.SubSteps) == 0 {
		return
	}
	c := r.Cfg
	p("")
	p("## 7. How cost grows with the work")
	p("")
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
		p("| events in the log | data dir after the step | heap after GC | heap, restarted | of which the duplicate window | end-to-end p99 ms | peak RSS | startup ms | recovery ms |")
		p("|---|---|---|---|---|---|---|---|---|")
		var xs []string
		var p99s, rss, heap, startup, recovery []float64
		for _, s := range r.LogSteps {
			xs = append(xs, formatRate(float64(s.Events)))
			p99s = append(p99s, summarizeRuns(s.P99).Median)
			rss = append(rss, summarizeRuns(s.RSS).Median)
			heap = append(heap, s.Heap)
			startup = append(startup, summarizeRuns(s.Startup).Median)
			recovery = append(recovery, summarizeRuns(s.Recovery).Median)
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", formatRate(float64(s.Events)), fmtMiB(float64(s.DataBytes)), fmtMiB(s.Heap), fmtMiB(s.HeapIDs), fmtMiB(s.HeapDedupe),
				fmtFig(summarizeRuns(s.P99), fmtMs), fmtFig(summarizeRuns(s.RSS), fmtMiB), fmtFig(summarizeRuns(s.Startup), fmtMs), fmtFig(summarizeRuns(s.Recovery), fmtMs))
		}
		p("")
		for _, cv := range []struct {
			name string
			v    []float64
		}{{"end-to-end p99", p99s}, {"peak RSS", rss}, {"heap after GC", heap}, {"startup", startup}, {"recovery", recovery}} {
			p("- %s: %s.", cv.name, bendText(xs, cv.v))
		}
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
		p("| subscriptions | receipts/s | end-to-end p99 ms | peak RSS |")
		p("|---|---|---|---|")
		var xs []string
		var p99s, rss []float64
		for _, s := range r.SubSteps {
			xs = append(xs, formatRate(float64(s.Subs)))
			p99s = append(p99s, summarizeRuns(s.P99).Median)
			rss = append(rss, summarizeRuns(s.RSS).Median)
			p("| %s | %s | %s | %s |", formatRate(float64(s.Subs)), fmtFig(summarizeRuns(s.Received), formatRate), fmtFig(summarizeRuns(s.P99), fmtMs), fmtFig(summarizeRuns(s.RSS), fmtMiB))
		}
		p("")
		p("- end-to-end p99: %s.", bendText(xs, p99s))
		p("- peak RSS: %s.", bendText(xs, rss))
		p("")
		p("![scale with subscriptions](%s)", chartScaleSubs)
	}
}

func (r *results) profile(name string) *profile {
	for _, pr := range r.Profiles {
		if pr.Name == name {
			return pr
		}
	}
	return nil
}

// profileTitles describe each profile's load.
func (r *results) profileTitle(name string) string {
	switch name {
	case profIngest:
		return fmt.Sprintf("webhook ingest, keep-alive, %d senders (CPU)", r.Cfg.Senders)
	case profE2E:
		return fmt.Sprintf("end to end at %s/s, one app (CPU)", formatRate(targetE2ERate))
	case profSend:
		return fmt.Sprintf("SendEvent, %d callers (CPU)", r.Cfg.SendCallers)
	case profAllocs:
		return fmt.Sprintf("SendEvent, %d callers (allocations, `-sample_index=alloc_space`)", r.Cfg.SendCallers)
	case profStream:
		return "stream drain, one app (CPU)"
	case profFanOut:
		return fmt.Sprintf("%d subscriptions at %s webhooks/s (CPU)", targetFanOutSubs, formatRate(float64(r.Cfg.ScaleRate)))
	}
	return name
}

func (r *results) mdProfiles(p printer) {
	if len(r.Profiles) == 0 {
		return
	}
	p("")
	p("## 8. Where the cost goes (profiles of the binary)")
	p("")
	p("*Owner* is the innermost package of this module on each sample's stack: the sidecar package whose")
	p("call led to the cost. A stack with no sidecar frame is \"none\", named by the kind of its outermost")
	p("frame (the goroutine's entry): the embedded NATS server's own goroutines (which do the event log's")
	p("and the outbox's storing), the gRPC and HTTP transports, the runtime and GC. *Flat* is the")
	p("function's own share of the samples.")
	missed := map[string]bool{}
	for _, t := range r.targets() {
		if t.Profile != "" && !strings.Contains(t.Result, "met") {
			missed[t.Profile] = true
			if t.Profile == profSend {
				missed[profAllocs] = true
			}
		}
	}
	for _, name := range []string{profIngest, profE2E, profSend, profAllocs, profStream, profFanOut} {
		pr := r.profile(name)
		if pr == nil {
			continue
		}
		p("")
		open := ""
		if missed[name] {
			p("### %s — target missed or undecided", r.profileTitle(name))
		} else {
			p("<details><summary>%s — target met</summary>", r.profileTitle(name))
			open = "</details>"
		}
		p("")
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
		p("| owner (innermost sidecar package) | share |")
		p("|---|---|")
		for _, o := range pr.Owners[:min(len(pr.Owners), 8)] {
			p("| %s | %.1f %% |", o.Name, o.Pct)
		}
		p("")
		p("| kind of code (flat) | share |")
		p("|---|---|")
		for _, cs := range pr.Categories[:min(len(pr.Categories), 8)] {
			p("| %s | %.1f %% |", cs.Name, cs.Pct)
		}
		p("")
		p("| flat %% | cum %% | function (top 15 by flat) |")
		p("|---|---|---|")
		for _, l := range pr.Top[:min(len(pr.Top), 15)] {
			p("| %.1f | %.1f | `%s` |", l.Flat, l.Cum, l.Name)
		}
		if open != "" {
			p("")
			p(open)
		}
	}
}

func fmtConns(v float64) string { return fmt.Sprintf("%.1f", v) }

// connsPerK returns, per run, the new connections to the emulator per
// 1,000 calls.
func (s *series) connsPerK() []float64 {
	if s == nil {
		return nil
	}
	return s.NewConns
}
