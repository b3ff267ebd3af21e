package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Targets of the issue.
const (
	targetIngestRatio = 0.5
	targetE2ERate     = 1000
	targetE2EP99      = 10 * time.Millisecond
	targetSendAddP99  = time.Millisecond
	targetIdleRSS     = 64 << 20
	targetStartup     = time.Second
)

// Chart file names, relative to the report.
const (
	chartIngest        = "benchmarks-ingest.svg"
	chartIngestLatency = "benchmarks-ingest-latency.svg"
	chartE2ELatency    = "benchmarks-e2e-latency.svg"
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
func fmtRatio(v float64) string { return fmt.Sprintf("%.2f", v) }
func fmtPct(v float64) string   { return fmt.Sprintf("%.0f %%", 100*v) }

func metOrMissed(ok, known bool) string {
	switch {
	case !known:
		return "not measured"
	case ok:
		return "**met**"
	}
	return "**missed**"
}

// target is one row of the targets table.
type target struct {
	Name, Figure, Result string
	Met, Known           bool
}

func (r *results) targets() []target {
	var ts []target
	ratio := summarizeRuns(r.IngestRatio[ingestKey(srvSidecar1s, modeKeepAlive)])
	ts = append(ts, target{
		Name:   "Ingest ≥ 50 % of the bare HTTPS baseline's requests/s (keep-alive, CHRONOSHUB_SYNC=1s)",
		Figure: fmtFig(ratio, fmtPct),
		Met:    ratio.Median >= targetIngestRatio, Known: !isNaN(ratio.Median),
	})
	for _, mode := range []string{modeNewConn} {
		rr := summarizeRuns(r.IngestRatio[ingestKey(srvSidecar1s, mode)])
		ts = append(ts, target{
			Name:   "… the same with a new TLS connection per webhook",
			Figure: fmtFig(rr, fmtPct), Met: rr.Median >= targetIngestRatio, Known: !isNaN(rr.Median),
		})
	}
	e2e := r.E2E[e2eKey("1s", targetE2ERate)]
	p99 := e2e.latency(func(q quantiles) time.Duration { return q.P99 })
	ts = append(ts, target{
		Name:   "End-to-end p99 < 10 ms at 1,000 events/s",
		Figure: fmtFig(p99, fmtMs) + " ms",
		Met:    p99.Median < ms(targetE2EP99), Known: !isNaN(p99.Median),
	})
	add := r.sendAdded(func(q quantiles) time.Duration { return q.P99 })
	ts = append(ts, target{
		Name:   "SendEvent adds < 1 ms at p99 (one caller)",
		Figure: fmtFig(add, fmtMs) + " ms",
		Met:    add.Median < ms(targetSendAddP99), Known: !isNaN(add.Median),
	})
	rss := summarizeRuns(r.IdleRSS)
	ts = append(ts, target{
		Name: "RSS < 64 MiB idle", Figure: fmtFig(rss, fmtMiB),
		Met: rss.Median < targetIdleRSS, Known: !isNaN(rss.Median),
	})
	st := summarizeRuns(r.Startup)
	ts = append(ts, target{
		Name: "Startup (exec → /readyz 200) < 1 s", Figure: fmtFig(st, fmtMs) + " ms",
		Met: st.Median < ms(targetStartup), Known: !isNaN(st.Median),
	})
	for i := range ts {
		ts[i].Result = metOrMissed(ts[i].Met, ts[i].Known)
	}
	return ts
}

// sendAdded is SendEvent's latency quantile minus the direct POST's, run by
// run (each run measured both back to back), in milliseconds.
func (r *results) sendAdded(q func(quantiles) time.Duration) figure {
	d, s := r.Send["direct latency"], r.Send["sidecar latency"]
	if d == nil || s == nil {
		return summarizeRuns(nil)
	}
	var v []float64
	for i := range min(len(d.Runs), len(s.Runs)) {
		v = append(v, ms(q(s.Runs[i].Lat))-ms(q(d.Runs[i].Lat)))
	}
	return summarizeRuns(v)
}

func (r *results) sendRatio() figure {
	d, s := r.Send["direct throughput"], r.Send["sidecar throughput"]
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
	var groups []barGroup
	for _, mode := range ingestModes {
		g := barGroup{Label: mode}
		for _, srv := range ingestServers {
			label := srv
			if srv == srvBaseline {
				label = "bare Go HTTPS server"
			} else {
				label = "sidecar, CHRONOSHUB_SYNC=" + syncOf[srv]
			}
			g.Bars = append(g.Bars, bar{Label: label, Fig: r.Ingest[ingestKey(srv, mode)].rate()})
		}
		groups = append(groups, g)
	}
	charts := map[string]string{
		chartIngest: barChart(fmt.Sprintf("Webhook ingest, 1 KiB signed events, %d senders (requests/s)", r.cfg.Senders), "requests/s", groups),
	}
	var ingestCurves []curve
	for _, mode := range ingestModes {
		for _, srv := range ingestServers {
			if run, ok := r.Ingest[ingestKey(srv, mode)].medianRun(); ok {
				ingestCurves = append(ingestCurves, curve{Label: srv + ", " + mode, Sorted: run.Lat.Sorted})
			}
		}
	}
	charts[chartIngestLatency] = latencyChart(fmt.Sprintf("Webhook response latency, %d senders, closed loop", r.cfg.Senders), ingestCurves)
	var e2eCurves []curve
	for _, key := range r.E2EOrder {
		if run, ok := r.E2E[key].medianRun(); ok {
			e2eCurves = append(e2eCurves, curve{Label: key, Sorted: run.Lat.Sorted})
		}
	}
	charts[chartE2ELatency] = latencyChart("End to end: webhook sent → gRPC consumer received (open loop)", e2eCurves)
	for name, svg := range charts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(r.markdown()), 0o644)
}

func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	c := r.cfg
	m := r.Machine
	p("# Benchmarks")
	p("")
	p("Generated by `make bench` (`sidecar/cmd/chronoshub-bench`); do not edit by hand. Every figure is the")
	p("**median of %d run(s)** with the min–max range in parentheses. The sidecar and its baselines run", c.Runs)
	p("interleaved in the same harness run on the same machine, so the **ratios** are the figures to")
	p("compare across machines; absolute numbers move with the hardware and the neighbours.")
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
	p("| command | `go run ./sidecar/cmd/chronoshub-bench %s` |", strings.Join(c.Args, " "))
	p("| settings | %d run(s) of %s (+%s warm-up), %d webhook senders, %d SendEvent callers, rate steps of %s, %s events before SIGKILL, %s events drained |",
		c.Runs, c.Duration, c.Warmup, c.Senders, c.SendCallers, c.StepDuration, formatRate(float64(c.RecoveryEvents)), formatRate(float64(c.StreamEvents)))
	var secs []string
	for _, s := range r.SectionTimes {
		secs = append(secs, fmt.Sprintf("%s %s", s.Name, s.D.Round(time.Second)))
	}
	p("| run time | %s (%s) |", r.Elapsed.Round(time.Second), strings.Join(secs, ", "))
	p("")
	p("The load generators, the emulator and the sidecar share the machine's CPUs: on a 2-core machine")
	p("the client's own TLS and HMAC work is a large part of the load, for the baseline and the sidecar alike.")
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
	r.mdFootprint(p)
	r.mdStream(p)
	r.mdProfile(p)
	r.mdMeaning(p)
	return b.String()
}

type printer func(format string, args ...any)

func (r *results) mdIngest(p printer) {
	c := r.cfg
	p("")
	p("## 1. Webhook ingest")
	p("")
	p("%d senders post signed 1 KiB JSON events (`X-Hub-Signature-256` computed per request, a new", c.Senders)
	p("event id each time) over HTTPS (HTTP/1.1, TLS 1.3 negotiated, ECDSA P-256 certificate), closed loop:")
	p("each sender waits for the answer before sending again. The baseline is a bare Go HTTPS server with the")
	p("sidecar's TLS and `http.Server` settings that reads the body and answers 200. The sidecar verifies the")
	p("signature, checks freshness and JSON, appends to JetStream and answers 200 once stored.")
	p("*New connection* opens a TLS connection per webhook (`DisableKeepAlives`, full handshake, no")
	p("session resumption). Latency is the client's, request start to response read.")
	p("")
	p("| server | connections | requests/s | ratio to baseline | p50 ms | p99 ms | p99.9 ms | errors |")
	p("|---|---|---|---|---|---|---|---|")
	for _, mode := range ingestModes {
		for _, srv := range ingestServers {
			s := r.Ingest[ingestKey(srv, mode)]
			ratio := "1"
			if srv != srvBaseline {
				ratio = fmtFig(summarizeRuns(r.IngestRatio[ingestKey(srv, mode)]), fmtRatio)
			}
			name := srv
			if srv != srvBaseline {
				name = "sidecar, `CHRONOSHUB_SYNC=" + syncOf[srv] + "`"
			} else {
				name = "bare Go HTTPS"
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %d |", name, mode, fmtFig(s.rate(), formatRate), ratio,
				fmtFig(s.latency(p50), fmtMs), fmtFig(s.latency(p99), fmtMs), fmtFig(s.latency(p999), fmtMs), s.errors())
		}
	}
	p("")
	p("Ratios are per round (each round measures the baseline and the sidecar back to back).")
	p("")
	p("![ingest throughput](%s)", chartIngest)
	p("")
	p("![ingest latency](%s)", chartIngestLatency)
}

func (r *results) mdE2E(p printer) {
	c := r.cfg
	p("")
	p("## 2. End to end: webhook → gRPC consumer")
	p("")
	p("Open loop: %d senders over keep-alive connections offer a fixed rate, each webhook at its scheduled", c.Senders)
	p("time (a sender that falls behind sends at once and the delay counts). One app consumes with")
	p("`StreamEvents` (default `max_in_flight`, 100) and acknowledges every event with `AckEvents`; the acks")
	p("are batched: an acker sends whatever ids arrived since its previous call, up to %d per call (one id", ackBatch)
	p("per call at low rates). Latency is from the webhook's scheduled send time (stamped in the payload)")
	p("to the consumer's `Recv`, on the same clock.")
	p("")
	p("| setting and offered rate | sent | received | p50 ms | p99 ms | p99.9 ms | max ms |")
	p("|---|---|---|---|---|---|---|")
	for _, key := range r.E2EOrder {
		s := r.E2E[key]
		p("| %s | %s | %s | %s | %s | %s | %s |", key, fmtFig(summarizeRuns(s.Sent), formatRate), fmtFig(summarizeRuns(s.Received), formatRate),
			fmtFig(s.latency(p50), fmtMs), fmtFig(s.latency(p99), fmtMs), fmtFig(s.latency(p999), fmtMs),
			fmtFig(s.latency(func(q quantiles) time.Duration { return q.Max }), fmtMs))
	}
	p("")
	held := summarizeRuns(r.MaxHeld)
	p("**Highest rate held** (CHRONOSHUB_SYNC=1s; p99 under %s, everything received, senders on schedule;", c.StepP99)
	p("steps of %s doubling from 1,000/s, then one step at 1.5× the last held): **%s events/s**.", c.StepDuration, fmtFig(held, formatRate))
	p("")
	for i, steps := range r.StepsSeen {
		var s []string
		for _, st := range steps {
			s = append(s, st.String())
		}
		p("- run %d: %s", i+1, strings.Join(s, ", "))
	}
	p("")
	p("![end-to-end latency](%s)", chartE2ELatency)
}

func (r *results) mdSend(p printer) {
	p("")
	p("## 3. SendEvent")
	p("")
	p("The same 1 KiB payload posted to the emulator's `POST /inbound/%s` directly (Go's default", benchEventType)
	p("transport with an idle connection per caller, `X-Api-Key`) and through the sidecar (gRPC `SendEvent`")
	p("on a loopback connection, synchronous, no idempotency key; the sidecar then makes the same POST).")
	p("Latency with one caller; throughput with %d concurrent callers.", r.cfg.SendCallers)
	p("")
	p("| path | p50 ms (1 caller) | p99 ms (1 caller) | requests/s (1 caller) | requests/s (%d callers) | p99 ms (%d callers) | errors |", r.cfg.SendCallers, r.cfg.SendCallers)
	p("|---|---|---|---|---|---|---|")
	for _, path := range []string{"direct", "sidecar"} {
		l, t := r.Send[path+" latency"], r.Send[path+" throughput"]
		name := "direct POST"
		if path == "sidecar" {
			name = "`SendEvent` via the sidecar"
		}
		p("| %s | %s | %s | %s | %s | %s | %d |", name, fmtFig(l.latency(p50), fmtMs), fmtFig(l.latency(p99), fmtMs), fmtFig(l.rate(), formatRate),
			fmtFig(t.rate(), formatRate), fmtFig(t.latency(p99), fmtMs), l.errors()+t.errors())
	}
	p("")
	p("")
	p("New connections the emulator accepted per 1,000 calls (including warm-up): direct %s (1 caller), %s (%d callers);",
		fmtFig(summarizeRuns(r.Send["direct latency"].connsPerK()), fmtConns), fmtFig(summarizeRuns(r.Send["direct throughput"].connsPerK()), fmtConns), r.cfg.SendCallers)
	p("via the sidecar %s (1 caller), %s (%d callers).",
		fmtFig(summarizeRuns(r.Send["sidecar latency"].connsPerK()), fmtConns), fmtFig(summarizeRuns(r.Send["sidecar throughput"].connsPerK()), fmtConns), r.cfg.SendCallers)
	p("")
	p("Added by the sidecar (per run, sidecar minus direct): p50 **%s ms**, p99 **%s ms**; throughput ratio with %d callers **%s**.",
		fmtFig(r.sendAdded(p50), fmtMs), fmtFig(r.sendAdded(p99), fmtMs), r.cfg.SendCallers, fmtFig(r.sendRatio(), fmtRatio))
}

func (r *results) mdFootprint(p printer) {
	p("")
	p("## 4. Footprint")
	p("")
	p("| | |")
	p("|---|---|")
	p("| binary size (`go build`) | %s |", fmtMiB(float64(r.BinSize)))
	if r.BinSizeStripped > 0 {
		p("| binary size (`make build`: `-trimpath -ldflags='-s -w'`, CGO off) | %s |", fmtMiB(float64(r.BinSizeStripped)))
	}
	p("| startup, exec → `/readyz` 200 (empty data dir) | %s ms |", fmtFig(summarizeRuns(r.Startup), fmtMs))
	p("| RSS idle (2 s after ready, empty store) | %s |", fmtFig(summarizeRuns(r.IdleRSS), fmtMiB))
	p("| RSS peak under keep-alive + new-connection ingest, `SYNC=1s` | %s |", fmtFig(summarizeRuns(r.PeakRSS["1s"]), fmtMiB))
	p("| RSS peak under ingest, `SYNC=always` | %s |", fmtFig(summarizeRuns(r.PeakRSS["always"]), fmtMiB))
	p("| RSS peak of the bare HTTPS baseline under the same load | %s |", fmtFig(summarizeRuns(r.PeakRSS[srvBaseline]), fmtMiB))
	p("| events in the log before SIGKILL | %s (ingested in %s, data dir %s) |", formatRate(float64(r.cfg.RecoveryEvents)), r.RecoveryIngest.Round(time.Millisecond), fmtMiB(float64(r.RecoveryDataBytes)))
	p("| recovery: SIGKILL → exec → `/readyz` 200 | %s ms |", fmtFig(summarizeRuns(r.Recovery), fmtMs))
	p("| RSS 1 s after recovery | %s |", fmtFig(summarizeRuns(r.RecoveryRSS), fmtMiB))
	p("")
	p("RSS is `VmRSS` from `/proc/<pid>/status`, sampled every 50 ms under load. Startup polls `/readyz`")
	p("every 2 ms from the moment of exec (the admin port is chosen beforehand). Each recovery run kills the")
	p("previous process with SIGKILL, so every restart recovers a store that was not closed cleanly.")
}

func (r *results) mdStream(p printer) {
	p("")
	p("## 5. Stream throughput")
	p("")
	p("%s events preloaded (with `SYNC=1s`), then drained by one gRPC consumer on a new subscription per run", formatRate(float64(r.cfg.StreamEvents)))
	p("(starting at the oldest event), acknowledging everything with batched `AckEvents`; timed from")
	p("`StreamEvents` to the last acknowledgement confirmed.")
	p("")
	p("| | |")
	p("|---|---|")
	p("| events/s received and acknowledged | %s |", fmtFig(summarizeRuns(r.StreamRate), formatRate))
	p("| event ids per `AckEvents` call | %s |", fmtFig(summarizeRuns(r.StreamAcks), func(v float64) string { return fmt.Sprintf("%.1f", v) }))
}

func (r *results) mdProfile(p printer) {
	pr := r.Profile
	if pr == nil {
		return
	}
	p("")
	p("## Where the CPU goes (profiles)")
	p("")
	p("The binary has no pprof endpoint, so the harness runs the sidecar's paths in a child process")
	p("(`%s` mode: the same `webhook` handler and `eventlog` on embedded JetStream with `SYNC=1s`, the", childInproc)
	p("same TLS and `http.Server` settings, and the `grpcapi` service over the `outbox` and the ChronosHub")
	p("client; no metrics interceptors) under `runtime/pprof`, and the bare baseline the same way, each for")
	p("%s: the keep-alive ingest load (%d senders) on the baseline (%s req/s) and on the ingest path (%s req/s,",
		pr.Duration, r.cfg.Senders, formatRate(pr.BaselineRate), formatRate(pr.SideRate))
	p("ratio %.2f: compare the binary's ratio above), and SendEvent with %d callers (%s req/s).",
		pr.SideRate/pr.BaselineRate, r.cfg.SendCallers, formatRate(pr.SendRate))
	p("Flat CPU share by kind of code, in percent of each process's own samples (the load generator is")
	p("not in these profiles; 200 %% would be both cores busy):")
	p("")
	p("- baseline, ingest: %s", pr.Samples[0])
	p("- sidecar, ingest: %s", pr.Samples[1])
	p("- sidecar, SendEvent: %s", pr.Samples[2])
	p("")
	p("| code | sidecar ingest | bare HTTPS ingest | sidecar SendEvent |")
	p("|---|---|---|---|")
	for _, cs := range pr.Categories {
		p("| %s | %.1f %% | %.1f %% | %.1f %% |", cs.Name, cs.Share[1], cs.Share[0], cs.Share[2])
	}
	for i, title := range []string{"Sidecar ingest path", "Sidecar SendEvent path"} {
		p("")
		p("<details><summary>%s, top functions by cumulative share</summary>", title)
		p("")
		p("| flat %% | cum %% | function |")
		p("|---|---|---|")
		for _, l := range pr.TopCum[i] {
			p("| %.1f | %.1f | `%s` |", l.Flat, l.Cum, l.Name)
		}
		p("")
		p("</details>")
	}
}

func fmtConns(v float64) string { return fmt.Sprintf("%.1f", v) }

// connsPerK returns, per run, the new connections to the emulator per
// 1,000 calls (kept in Sent by benchSend).
func (s *series) connsPerK() []float64 {
	if s == nil {
		return nil
	}
	return s.Sent
}
