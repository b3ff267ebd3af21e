package main

import (
	"context"
	"fmt"
	"time"
)

// benchStream preloads StreamEvents events into the sidecar and into the
// minimal pipeline (through their webhook listeners), then, round by
// round, drains each on a new subscription with one consumer that acks
// everything.
func (h *harness) benchStream(ctx context.Context) error {
	p, err := h.startSidecar(ctx, sidecarEnv{Name: "stream", Sync: "1s"})
	if err != nil {
		return err
	}
	defer p.close()
	base, err := h.startChild(ctx, "-pipeline")
	if err != nil {
		return err
	}
	defer base.stop()
	jsBase, err := h.startChild(ctx, "-pipeline", "-store", "jetstream")
	if err != nil {
		return err
	}
	defer jsBase.stop()
	h.logf("preloading %d events into each", h.cfg.StreamEvents)
	for _, url := range []string{p.url(), base.url(), jsBase.url()} {
		if _, err := h.ingestN(ctx, url, h.cfg.StreamEvents); err != nil {
			return err
		}
	}
	drain := func(addr string, round int) (rate, idsPerAck float64, err error) {
		events, conn, err := dialEvents(addr)
		if err != nil {
			return 0, 0, err
		}
		defer conn.Close()
		t0 := time.Now()
		c, err := startConsumer(ctx, events, fmt.Sprintf("drain-%d", round+1), false)
		if err != nil {
			return 0, 0, err
		}
		end, err := c.waitAcked(ctx, int64(h.cfg.StreamEvents), 5*time.Minute)
		c.stop()
		if err != nil {
			return 0, 0, fmt.Errorf("drain: %d of %d acked: %w", c.acked.Load(), h.cfg.StreamEvents, err)
		}
		return float64(h.cfg.StreamEvents) / end.Sub(t0).Seconds(), float64(c.acked.Load()) / float64(max(c.ackCalls.Load(), 1)), nil
	}
	for round := range h.cfg.Runs {
		baseRate, _, err := drain(base.GRPC, round)
		if err != nil {
			return fmt.Errorf("minimal pipeline: %w", err)
		}
		jsRate, _, err := drain(jsBase.GRPC, round)
		if err != nil {
			return fmt.Errorf("minimal pipeline over JetStream: %w", err)
		}
		rate, ids, err := drain(p.GRPC, round)
		if err != nil {
			return err
		}
		h.res.StreamBase = append(h.res.StreamBase, baseRate)
		h.res.StreamJS = append(h.res.StreamJS, jsRate)
		h.res.StreamJSRatio = append(h.res.StreamJSRatio, jsRate/baseRate)
		h.res.StreamRate = append(h.res.StreamRate, rate)
		h.res.StreamRatio = append(h.res.StreamRatio, rate/baseRate)
		h.res.StreamOverJS = append(h.res.StreamOverJS, rate/jsRate)
		h.res.StreamAcks = append(h.res.StreamAcks, ids)
		h.logf("round %d  drained %d events: sidecar %.0f events/s (%.1f ids per AckEvents), minimal pipeline %.0f events/s, over JetStream %.0f events/s", round+1, h.cfg.StreamEvents, rate, ids, baseRate, jsRate)
	}
	return nil
}
