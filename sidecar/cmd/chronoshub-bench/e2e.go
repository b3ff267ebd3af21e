package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
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
// latencies seen by the consumers (every consumer sees every event), how
// many were sent, and how many receipts there were.
func (h *harness) e2eRun(ctx context.Context, client *http.Client, url string, cs []*consumer, rate int, d time.Duration) (loadResult, int, int) {
	run := int(h.nextRun.Add(1))
	sent, failed, lastErr := openLoop(ctx, rate, h.cfg.Senders, d, func(ctx context.Context, at time.Time) error {
		return postWebhook(ctx, client, url, makePayload(run, at))
	})
	var lat latencies
	var waitErr error
	for _, c := range cs {
		if err := c.waitRun(ctx, run, sent-failed, 5*time.Second); err != nil && waitErr == nil {
			waitErr = err
		}
		lat = append(lat, c.runLatencies(run)...)
	}
	res := loadResult{Lat: summarize(lat), Ok: len(lat), Errors: failed, Elapsed: d, Rate: float64(len(lat)) / d.Seconds(), LastErr: lastErr}
	if waitErr != nil && res.LastErr == nil {
		res.LastErr = waitErr
	}
	return res, sent, len(lat)
}

// warmUp sends webhooks until every consumer has received one (a
// subscription that starts at the next event exists only once its stream is
// served), then opens every sender's connection and sends for the warm-up
// duration; nothing is measured.
func (h *harness) warmUp(ctx context.Context, client *http.Client, url string, cs []*consumer) error {
	run := int(h.nextRun.Add(1))
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range cs {
		for {
			if err := postWebhook(ctx, client, url, makePayload(run, time.Now())); err != nil {
				return err
			}
			if len(c.runLatencies(run)) > 0 {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("warm-up: a consumer received nothing in 15s")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// Every sender's connection is opened before the measured runs (a TLS
	// handshake in a measured run would be the tail): one webhook per
	// sender, all at once. Then the app path is warmed at a low rate.
	var wg sync.WaitGroup
	for range h.cfg.Senders {
		wg.Go(func() { _ = postWebhook(ctx, client, url, makePayload(run, time.Now())) })
	}
	wg.Wait()
	h.e2eRun(ctx, client, url, cs, 500, h.cfg.Warmup)
	return nil
}

// benchEndToEnd measures webhook → gRPC consumer latency at fixed offered
// rates on the minimal pipeline and on the sidecar, round by round, and
// searches the sidecar's highest rate held with p99 under the step limit.
func (h *harness) benchEndToEnd(ctx context.Context) error {
	for round := range h.cfg.Runs {
		base, err := h.startChild(childBaseline, "-cert", h.certFile, "-key", h.keyFile, "-pipeline")
		if err != nil {
			return err
		}
		err = h.e2eRound(ctx, round, e2ePipeline, "https://"+base.Addr+"/webhook", base.GRPC, h.cfg.Rates, false)
		base.stop()
		if err != nil {
			return err
		}
		for _, setup := range []string{e2eSidecar, e2eAlways} {
			sync, rates := "1s", h.cfg.Rates
			if setup == e2eAlways {
				sync, rates = "always", rates[:1] // its target is at the lowest rate
			}
			dir := h.dataDir("e2e")
			p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: sync})
			if err != nil {
				return err
			}
			err = h.e2eRound(ctx, round, setup, "https://"+p.Webhook+"/webhook", p.GRPC, rates, setup == e2eSidecar)
			p.stop()
			os.RemoveAll(dir)
			if err != nil {
				return err
			}
		}
		if p99s := runP99s(h.res.E2E, round, e2eKey(e2eSidecar, h.cfg.Rates[0]), e2eKey(e2eAlways, h.cfg.Rates[0])); p99s[0] > 0 {
			h.res.AlwaysP99Ratio = append(h.res.AlwaysP99Ratio, float64(p99s[1])/float64(p99s[0]))
		}
		for _, rate := range h.cfg.Rates {
			b, s := h.res.E2E[e2eKey(e2ePipeline, rate)], h.res.E2E[e2eKey(e2eSidecar, rate)]
			if b == nil || s == nil || len(b.Runs) <= round || len(s.Runs) <= round {
				continue
			}
			for _, q := range quantileNames {
				if bq := q.of(b.Runs[round].Lat); bq > 0 {
					k := e2eRatioKey(rate, q.name)
					h.res.E2ERatio[k] = append(h.res.E2ERatio[k], float64(q.of(s.Runs[round].Lat))/float64(bq))
				}
			}
		}
	}
	return nil
}

// runP99s returns the p99 of the given round of each series, zero where a
// series has no such round.
func runP99s(m map[string]*series, round int, keys ...string) []time.Duration {
	out := make([]time.Duration, len(keys))
	for i, k := range keys {
		if s := m[k]; s != nil && len(s.Runs) > round {
			out[i] = s.Runs[round].Lat.P99
		}
	}
	return out
}

func e2eRatioKey(rate int, q string) string { return fmt.Sprintf("%d %s", rate, q) }

// quantileNames are the end-to-end quantiles reported as ratios.
var quantileNames = []struct {
	name string
	of   func(quantiles) time.Duration
}{{"p50", p50}, {"p99", p99}, {"p99.9", p999}}

// e2eRound runs one consumer on the gRPC service at grpcAddr, webhooks to
// url at each of rates, then (if search) the rate search.
func (h *harness) e2eRound(ctx context.Context, round int, setup, url, grpcAddr string, rates []int, search bool) error {
	conn, err := dialGRPC(grpcAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := startConsumer(ctx, sidecarv1.NewEventServiceClient(conn), "bench", false)
	if err != nil {
		return err
	}
	defer c.stop()
	client := webhookClient(h.pool, true, h.cfg.Senders)
	defer client.CloseIdleConnections()
	cs := []*consumer{c}
	if err := h.warmUp(ctx, client, url, cs); err != nil {
		return err
	}
	for _, rate := range rates {
		r, sent, got := h.e2eRun(ctx, client, url, cs, rate, h.cfg.Duration)
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
		r, sent, got := h.e2eRun(ctx, client, url, cs, rate, h.cfg.StepDuration)
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
