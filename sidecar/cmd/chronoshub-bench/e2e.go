package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The end-to-end setups: the minimal pipeline (the baseline) and the
// sidecar in both sync settings.
const (
	e2ePipeline = "minimal pipeline"
	e2eSidecar  = "sidecar 1s"
	e2eAlways   = "sidecar always"
)

func e2eKey(setup string, rate int) string {
	return fmt.Sprintf("%s @ %s/s", setup, formatRate(float64(rate)))
}

// e2eRun offers rate webhooks per second for d and returns the end-to-end
// latencies seen by the app's consumers (every consumer sees every event),
// how many were sent, and how many receipts there were.
func (h *harness) e2eRun(ctx context.Context, a *app, rate int, d time.Duration) (loadResult, int, int) {
	run := int(h.nextRun.Add(1))
	sent, failed, lastErr := openLoop(ctx, rate, h.cfg.Senders, d, func(ctx context.Context, at time.Time) error {
		return postWebhook(ctx, a.client, a.url, makePayload(run, at))
	})
	var lat latencies
	for _, c := range a.cs {
		if err := c.waitRun(ctx, run, sent-failed, 5*time.Second); err != nil && lastErr == nil {
			lastErr = err
		}
		lat = append(lat, c.runLatencies(run)...)
	}
	return loadResult{Lat: summarize(lat), Ok: len(lat), Errors: failed, Elapsed: d, Rate: float64(len(lat)) / d.Seconds(), LastErr: lastErr}, sent, len(lat)
}

// warmUp sends webhooks until every consumer has received one (a
// subscription that starts at the next event exists only once its stream is
// served), then opens every sender's connection and sends for the warm-up
// duration; nothing is measured.
func (h *harness) warmUp(ctx context.Context, a *app) error {
	run := int(h.nextRun.Add(1))
	for _, c := range a.cs {
		err := poll(ctx, 15*time.Second, 20*time.Millisecond, func() (bool, error) {
			return len(c.runLatencies(run)) > 0, postWebhook(ctx, a.client, a.url, makePayload(run, time.Now()))
		})
		if errors.Is(err, errNotReceived) {
			return errors.New("warm-up: a consumer received nothing in 15s")
		} else if err != nil {
			return err
		}
	}
	// Every sender's connection is opened before the measured runs (a TLS
	// handshake in a measured run would be the tail): one webhook per
	// sender, all at once. Then the app path is warmed at a low rate.
	var wg sync.WaitGroup
	for range h.cfg.Senders {
		wg.Go(func() { _ = postWebhook(ctx, a.client, a.url, makePayload(run, time.Now())) })
	}
	wg.Wait()
	h.e2eRun(ctx, a, 500, h.cfg.Warmup)
	return nil
}

// benchEndToEnd measures webhook → gRPC consumer latency at fixed offered
// rates on the minimal pipeline and on the sidecar, round by round, and
// searches the sidecar's highest rate held with p99 under the step limit.
func (h *harness) benchEndToEnd(ctx context.Context) error {
	for round := range h.cfg.Runs {
		base, err := h.startChild(ctx, "-pipeline")
		if err != nil {
			return err
		}
		err = h.e2eRound(ctx, round, e2ePipeline, base, h.cfg.Rates, false)
		base.stop()
		if err != nil {
			return err
		}
		for _, setup := range []string{e2eSidecar, e2eAlways} {
			sync, rates := "1s", h.cfg.Rates
			if setup == e2eAlways {
				sync, rates = "always", rates[:1] // its target is at the lowest rate
			}
			p, err := h.startSidecar(ctx, sidecarEnv{Name: "e2e", Sync: sync})
			if err != nil {
				return err
			}
			err = h.e2eRound(ctx, round, setup, p, rates, setup == e2eSidecar)
			p.close()
			if err != nil {
				return err
			}
		}
		rate := h.cfg.Rates[0]
		h.res.AlwaysP99Ratio = appendRatio(h.res.AlwaysP99Ratio, h.res.E2E, round, latOf(p99), e2eKey(e2eAlways, rate), e2eKey(e2eSidecar, rate))
		for _, rate := range h.cfg.Rates {
			for _, q := range quantileNames {
				k := e2eRatioKey(rate, q.name)
				h.res.E2ERatio[k] = appendRatio(h.res.E2ERatio[k], h.res.E2E, round, latOf(q.of), e2eKey(e2eSidecar, rate), e2eKey(e2ePipeline, rate))
			}
		}
	}
	return nil
}

// appendRatio appends to v the figure f of the given round of series key
// over that of series base, when both ran that round and base's is
// positive.
func appendRatio(v []float64, m map[string]*series, round int, f func(loadResult) float64, key, base string) []float64 {
	s, b := m[key], m[base]
	if s == nil || b == nil || len(s.Runs) <= round || len(b.Runs) <= round || f(b.Runs[round]) <= 0 {
		return v
	}
	return append(v, f(s.Runs[round])/f(b.Runs[round]))
}

func e2eRatioKey(rate int, q string) string { return fmt.Sprintf("%d %s", rate, q) }

// quantileNames are the end-to-end quantiles reported as ratios.
var quantileNames = []struct {
	name string
	of   func(quantiles) time.Duration
}{{"p50", p50}, {"p99", p99}, {"p99.9", p999}}

// e2eRound runs one app on the process p, webhooks at each of rates,
// then (if search) the rate search.
func (h *harness) e2eRound(ctx context.Context, round int, setup string, p *proc, rates []int, search bool) error {
	a, err := h.openApp(ctx, p, false, "bench")
	if err != nil {
		return err
	}
	defer a.close()
	if err := h.warmUp(ctx, a); err != nil {
		return err
	}
	for _, rate := range rates {
		r, sent, got := h.e2eRun(ctx, a, rate, h.cfg.Duration)
		key := e2eKey(setup, rate)
		s := get(h.res.E2E, key)
		if len(s.Runs) == 0 {
			h.res.E2EOrder = append(h.res.E2EOrder, key)
		}
		s.add(r)
		s.Sent = append(s.Sent, float64(sent))
		s.Received = append(s.Received, float64(got))
		h.logf("round %d  e2e %-28s sent %6d received %6d  p50 %6.2f ms  p99 %7.2f ms  p999 %7.2f ms", round+1, key, sent, got, ms(r.Lat.P50), ms(r.Lat.P99), ms(r.Lat.P999))
		if r.LastErr != nil {
			h.logf("  %v", r.LastErr)
		}
	}
	if !search {
		return nil
	}
	var steps []stepResult
	held := 0
	try := func(rate int) bool {
		r, sent, got := h.e2eRun(ctx, a, rate, h.cfg.StepDuration)
		st := stepResult{Rate: rate, P99: r.Lat.P99, Sent: sent, Received: got, Held: true}
		offered := int(float64(rate) * h.cfg.StepDuration.Seconds())
		switch {
		case sent < offered*95/100:
			st.Held, st.Why = false, fmt.Sprintf("senders fell behind: %d of %d sent", sent, offered)
		case got < sent-r.Errors || r.Errors > 0:
			st.Held, st.Why = false, fmt.Sprintf("%d of %d received, %d errors", got, sent, r.Errors)
		case r.Lat.P99 >= h.cfg.StepP99:
			st.Held, st.Why = false, fmt.Sprintf("p99 %.1f ms", ms(r.Lat.P99))
		}
		steps = append(steps, st)
		h.logf("round %d  step %6d/s  sent %6d received %6d  p99 %7.2f ms  held %v %s", round+1, rate, sent, got, ms(r.Lat.P99), st.Held, st.Why)
		if !st.Held {
			// Let a backlog settle before the next step.
			time.Sleep(time.Second)
		}
		return st.Held
	}
	rate := 1000
	for ; rate <= h.cfg.MaxStepRate; rate *= 2 {
		if !try(rate) {
			break
		}
		held = rate
	}
	if held > 0 && rate <= h.cfg.MaxStepRate {
		if mid := held * 3 / 2; try(mid) {
			held = mid
		}
	}
	h.res.MaxHeld = append(h.res.MaxHeld, float64(held))
	h.res.StepsSeen = append(h.res.StepsSeen, steps)
	return nil
}
