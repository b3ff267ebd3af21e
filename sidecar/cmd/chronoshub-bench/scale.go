package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// logStep is the sidecar measured with a number of events already in its
// log (all delivered to nobody, their ids in the duplicate window).
type logStep struct {
	Events    int
	DataBytes int64
	Heap      float64 // bytes live after a GC
	// HeapIDs is the heap after a GC in a restarted sidecar (which
	// rebuilt the duplicate window's ids from the log), and HeapDedupe the
	// part of it the duplicate window holds (dedupeFuncs), from its heap
	// profile.
	HeapIDs, HeapDedupe float64
	P99, RSS            []float64 // per run: end-to-end p99 (ms) and peak RSS (bytes)
	Startup             []float64 // ms, after SIGTERM
	Recovery            []float64 // ms, after SIGKILL
}

// subStep is the sidecar measured with a number of subscriptions, each with
// an open stream receiving every event.
type subStep struct {
	Subs     int
	P99, RSS []float64
	Received []float64 // receipts per second over all streams
	// JSP99 is the minimal pipeline over JetStream's end-to-end p99 with
	// as many subscriptions (jsLog).
	JSP99 []float64
}

// benchScale measures how cost grows with the log's size and with the
// number of subscriptions with open streams.
func (h *harness) benchScale(ctx context.Context) error {
	for _, n := range h.cfg.LogSizes {
		st, err := h.scaleLog(ctx, n)
		if err != nil {
			return err
		}
		h.res.LogSteps = append(h.res.LogSteps, st)
	}
	for _, k := range h.cfg.Subs {
		st, err := h.scaleSubs(ctx, k)
		if err != nil {
			return err
		}
		h.res.SubSteps = append(h.res.SubSteps, st)
	}
	return nil
}

// measureApp makes Runs end-to-end runs of a at rate, each with p's peak
// RSS, and appends p99 (ms), peak RSS and receipts/s per run.
func (h *harness) measureApp(ctx context.Context, p *proc, a *app, rate int, p99s, rss, received *[]float64) {
	for range h.cfg.Runs {
		var r loadResult
		var got int
		*rss = append(*rss, p.peakRSS(func() { r, _, got = h.e2eRun(ctx, a, rate, h.cfg.Duration) }))
		*p99s = append(*p99s, ms(r.Lat.P99))
		*received = append(*received, float64(got)/h.cfg.Duration.Seconds())
		if r.LastErr != nil {
			h.logf("  %v", r.LastErr)
		}
	}
}

func (h *harness) scaleLog(ctx context.Context, n int) (logStep, error) {
	st := logStep{Events: n}
	dir := h.dataDir("scale-log")
	defer os.RemoveAll(dir)
	// The automatic cap on the log (at most 1 GiB) holds about 700,000 of
	// these events; each step's cap holds its events with room to spare,
	// so that none is removed to make room.
	env := sidecarEnv{DataDir: dir, Sync: "1s", Extra: []string{fmt.Sprintf("CHRONOSHUB_LOG_MAX_BYTES=%d", 1<<30+int64(n)*4096)}}
	p, err := h.startSidecar(ctx, env)
	if err != nil {
		return st, err
	}
	defer func() { p.stop() }()
	if n > 0 {
		took, err := h.ingestN(ctx, p.url(), n)
		if err != nil {
			return st, err
		}
		h.logf("log %d: ingested in %s (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	}
	if st.Heap, err = heapAfterGC(ctx, p.Admin); err != nil {
		return st, err
	}
	a, err := h.openApp(ctx, p, true, "scale")
	if err != nil {
		return st, err
	}
	if err = h.warmUp(ctx, a); err == nil {
		h.measureApp(ctx, p, a, h.cfg.Rates[0], &st.P99, &st.RSS, new([]float64))
	}
	a.close()
	if err != nil {
		return st, err
	}
	for _, restart := range []struct {
		stop func()
		to   *[]float64
	}{{func() { p.stop() }, &st.Startup}, {func() { p.kill() }, &st.Recovery}} {
		for range h.cfg.Runs {
			restart.stop()
			if p, err = h.startSidecar(ctx, env); err != nil {
				return st, err
			}
			*restart.to = append(*restart.to, ms(p.Startup))
		}
	}
	// The duplicate window's share of the heap: the restarted sidecar
	// rebuilt the window's ids from the log; its heap profile says what
	// they hold.
	if st.HeapIDs, err = heapAfterGC(ctx, p.Admin); err != nil {
		return st, err
	}
	if st.HeapDedupe, err = h.heapIn(ctx, p.Admin, dedupeFuncs); err != nil {
		return st, err
	}
	st.DataBytes = dirSize(dir)
	h.logf("log %d: heap %.1f MiB (restarted: %.1f MiB, of which the duplicate window %.1f MiB), e2e p99 %s ms, RSS %s, startup %s ms, recovery %s ms", n, st.Heap/(1<<20), st.HeapIDs/(1<<20), st.HeapDedupe/(1<<20),
		fmtRuns(st.P99, fmtMs), fmtRuns(st.RSS, fmtMiB), fmtRuns(st.Startup, fmtMs), fmtRuns(st.Recovery, fmtMs))
	return st, nil
}

func (h *harness) scaleSubs(ctx context.Context, k int) (subStep, error) {
	st := subStep{Subs: k}
	subs := make([]string, k)
	for i := range subs {
		subs[i] = fmt.Sprintf("sub-%d", i)
	}
	if err := h.scaleSubsOnSidecar(ctx, &st, subs); err != nil {
		return st, err
	}
	// The same load on the minimal pipeline over JetStream, whose
	// subscriptions are JetStream consumers as the sidecar's are: what the
	// curve owes to the store. (The sidecar is stopped by then.)
	base, err := h.startChild(ctx, "-pipeline", "-store", "jetstream")
	if err != nil {
		return st, fmt.Errorf("minimal pipeline over JetStream: %w", err)
	}
	defer base.stop()
	var rss, received []float64
	a, err := h.subsLoad(ctx, base, subs, &st.JSP99, &rss, &received)
	if err != nil {
		return st, fmt.Errorf("minimal pipeline over JetStream: %w", err)
	}
	a.close()
	h.logf("subscriptions %d, minimal pipeline over JetStream: e2e p99 %s ms", k, fmtRuns(st.JSP99, fmtMs))
	return st, nil
}

// scaleSubsOnSidecar measures the subscriptions load on a sidecar of its
// own, and profiles it at the fan-out target's step.
func (h *harness) scaleSubsOnSidecar(ctx context.Context, st *subStep, subs []string) error {
	p, err := h.startSidecar(ctx, sidecarEnv{Name: "scale-subs", Sync: "1s"})
	if err != nil {
		return err
	}
	defer p.close()
	a, err := h.subsLoad(ctx, p, subs, &st.P99, &st.RSS, &st.Received)
	if err != nil {
		return err
	}
	defer a.close()
	h.logf("subscriptions %d: e2e p99 %s ms, RSS %s", st.Subs, fmtRuns(st.P99, fmtMs), fmtRuns(st.RSS, fmtMiB))
	if st.Subs == targetFanOutSubs && h.cfg.Profile {
		// Where the fan-out target's time goes: one more run, profiled
		// (the measured ones are not).
		d := max(h.cfg.Duration, 2*time.Second).Truncate(time.Second)
		pr, err := h.profileDuring(ctx, p, profFanOut, false, d, func(ctx context.Context) float64 {
			_, _, got := h.e2eRun(ctx, a, h.cfg.ScaleRate, d)
			return float64(got) / d.Seconds()
		})
		if err != nil {
			return err
		}
		h.res.Profiles = append(h.res.Profiles, pr)
	}
	return nil
}

// subsLoad opens an app with a stream on each of subs on p (from the next
// event), warms it up and measures the subscriptions load into p99s, rss
// and received. The caller closes the app.
func (h *harness) subsLoad(ctx context.Context, p *proc, subs []string, p99s, rss, received *[]float64) (*app, error) {
	a, err := h.openApp(ctx, p, true, subs...)
	if err != nil {
		return nil, err
	}
	if err := h.warmUp(ctx, a); err != nil {
		a.close()
		return nil, err
	}
	h.measureApp(ctx, p, a, h.cfg.ScaleRate, p99s, rss, received)
	return a, nil
}

// dedupeFuncs are the functions of the NATS server that allocate its
// duplicate window in a restarted sidecar: the map and array of entries,
// the ids' strings, and the entries (allocated by the rebuild itself).
var dedupeFuncs = []string{
	"github.com/nats-io/nats-server/v2/server.(*stream).storeMsgIdLocked",
	"github.com/nats-io/nats-server/v2/server.getMsgId",
	"github.com/nats-io/nats-server/v2/server.(*stream).rebuildDedupe",
}

// heapIn returns the live heap (after a GC) allocated by the functions
// funcs themselves (their flat share), from the binary's heap profile.
func (h *harness) heapIn(ctx context.Context, admin string, funcs []string) (float64, error) {
	b, err := h.fetchProfile(ctx, admin, "/debug/pprof/heap?gc=1", "heap")
	if err != nil {
		return 0, err
	}
	return sumFlat(b, "inuse_space", funcs)
}

// heapAfterGC reads HeapAlloc after a GC from the binary's heap profile
// (/debug/pprof/heap?gc=1&debug=1 prints runtime.MemStats).
func heapAfterGC(ctx context.Context, admin string) (float64, error) {
	b, err := adminGet(ctx, admin, "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapAlloc = "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("no HeapAlloc in the heap profile")
}

// bend returns the first step whose value exceeds twice the previous
// step's, and the largest step-to-step ratio; i is -1 when no step more
// than doubles. Values that are not positive are skipped.
func bend(values []float64) (i int, maxRatio float64, at int) {
	i, at = -1, -1
	for j := 1; j < len(values); j++ {
		if values[j-1] <= 0 || isNaN(values[j-1]) || isNaN(values[j]) {
			continue
		}
		r := values[j] / values[j-1]
		if r > maxRatio {
			maxRatio, at = r, j
		}
		if r > 2 && i < 0 {
			i = j
		}
	}
	return i, maxRatio, at
}
