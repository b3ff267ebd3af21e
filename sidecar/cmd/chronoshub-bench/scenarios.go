package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// Servers and connection modes of the ingest benchmark.
const (
	srvBaseline      = "baseline"
	srvSidecar1s     = "sidecar 1s"
	srvSidecarAlways = "sidecar always"
	modeKeepAlive    = "keep-alive"
	modeNewConn      = "new connection"
)

var (
	ingestModes   = []string{modeKeepAlive, modeNewConn}
	ingestServers = []string{srvBaseline, srvSidecar1s, srvSidecarAlways}
	syncOf        = map[string]string{srvSidecar1s: "1s", srvSidecarAlways: "always"}
)

// ingestRun measures webhook ingest into url in one connection mode.
func (h *harness) ingestRun(ctx context.Context, url, mode string) loadResult {
	keepAlive := mode == modeKeepAlive
	client := webhookClient(h.pool, keepAlive, h.cfg.Senders)
	defer client.CloseIdleConnections()
	warmup := h.cfg.Warmup
	return closedLoop(ctx, h.cfg.Senders, warmup, h.cfg.Duration, func(ctx context.Context, _ int) error {
		return postWebhook(ctx, client, url, makePayload(0, time.Now()))
	})
}

// benchIngest interleaves, round by round, the bare HTTPS baseline and the
// sidecar in both sync settings, each in both connection modes.
func (h *harness) benchIngest(ctx context.Context) error {
	base, err := h.startChild(childBaseline, "-cert", h.certFile, "-key", h.keyFile)
	if err != nil {
		return err
	}
	defer base.stop()
	baseURL := "https://" + base.Addr + "/webhook"
	for round := range h.cfg.Runs {
		baseRates := map[string]float64{}
		for _, mode := range ingestModes {
			stop := make(chan struct{})
			peak := samplePeak(base.rss, stop)
			r := h.ingestRun(ctx, baseURL, mode)
			close(stop)
			h.res.PeakRSS[srvBaseline] = append(h.res.PeakRSS[srvBaseline], float64(<-peak))
			get(h.res.Ingest, ingestKey(srvBaseline, mode)).add(r)
			baseRates[mode] = r.Rate
			h.logf("round %d  %-15s %-14s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", round+1, srvBaseline, mode, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
		}
		for _, srv := range ingestServers[1:] {
			dir := h.dataDir("ingest")
			p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: syncOf[srv]})
			if err != nil {
				return err
			}
			url := "https://" + p.Webhook + "/webhook"
			stop := make(chan struct{})
			peak := p.sampleRSS(stop)
			for _, mode := range ingestModes {
				r := h.ingestRun(ctx, url, mode)
				get(h.res.Ingest, ingestKey(srv, mode)).add(r)
				if b := baseRates[mode]; b > 0 {
					h.res.IngestRatio[ingestKey(srv, mode)] = append(h.res.IngestRatio[ingestKey(srv, mode)], r.Rate/b)
				}
				h.logf("round %d  %-15s %-14s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", round+1, srv, mode, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
				if r.Errors > 0 {
					h.logf("  last error: %v", r.LastErr)
				}
			}
			close(stop)
			h.res.PeakRSS[syncOf[srv]] = append(h.res.PeakRSS[syncOf[srv]], float64(<-peak))
			p.stop()
			os.RemoveAll(dir)
		}
	}
	return nil
}

// samplePeak samples rss every 50 ms until stop is closed and sends the peak.
func samplePeak(rss func() (int64, error), stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := rss(); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func e2eKey(sync string, rate int) string {
	return fmt.Sprintf("sync %s @ %s/s", sync, formatRate(float64(rate)))
}

// e2eRun offers rate webhooks per second for d and returns the end-to-end
// latencies seen by c.
func (h *harness) e2eRun(ctx context.Context, client *http.Client, url string, c *consumer, rate int, d time.Duration) (loadResult, int, int) {
	run := int(h.nextRun.Add(1))
	sent, failed, lastErr := openLoop(ctx, rate, h.cfg.Senders, d, func(ctx context.Context, at time.Time) error {
		return postWebhook(ctx, client, url, makePayload(run, at))
	})
	want := sent - failed
	waitErr := c.waitRun(ctx, run, want, 5*time.Second)
	lat := c.runLatencies(run)
	res := loadResult{Lat: summarize(lat), Ok: len(lat), Errors: failed, Elapsed: d, Rate: float64(len(lat)) / d.Seconds(), LastErr: lastErr}
	if waitErr != nil && res.LastErr == nil {
		res.LastErr = waitErr
	}
	return res, sent, len(lat)
}

// benchEndToEnd measures webhook → gRPC consumer latency at fixed offered
// rates, and searches the highest rate held with p99 under the step limit.
func (h *harness) benchEndToEnd(ctx context.Context) error {
	for round := range h.cfg.Runs {
		for _, sync := range []string{"1s", "always"} {
			rates := h.cfg.Rates
			if sync == "always" {
				rates = rates[:1] // fsync per event: only the lowest rate
			}
			if err := h.e2eRound(ctx, round, sync, sync, "", rates, sync == "1s"); err != nil {
				return err
			}
		}
		// A diagnostic: the shipped setting with the data dir on tmpfs, where
		// fsync costs nothing, isolates what the periodic fsync adds.
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			dir := filepath.Join("/dev/shm", fmt.Sprintf("chronoshub-bench-%d-%d", os.Getpid(), h.nextRun.Add(1)))
			if err := h.e2eRound(ctx, round, "1s", e2eTmpfs, dir, h.cfg.Rates[:1], false); err != nil {
				return err
			}
		}
	}
	return nil
}

// e2eTmpfs labels the diagnostic end-to-end runs with the data on tmpfs.
const e2eTmpfs = "1s, data dir on tmpfs (diagnostic)"

// e2eRound runs one sidecar with sync setting sync at each of rates, then
// (if search) the rate search. label names the setting in the report; dir
// "" means a data dir under the temporary directory.
func (h *harness) e2eRound(ctx context.Context, round int, sync, label, dir string, rates []int, search bool) error {
	if dir == "" {
		dir = h.dataDir("e2e")
	}
	defer os.RemoveAll(dir)
	p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: sync})
	if err != nil {
		return err
	}
	defer p.stop()
	conn, err := dialGRPC(p.GRPC)
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := startConsumer(ctx, sidecarv1.NewEventServiceClient(conn), "bench")
	if err != nil {
		return err
	}
	defer c.stop()
	client := webhookClient(h.pool, true, h.cfg.Senders)
	defer client.CloseIdleConnections()
	url := "https://" + p.Webhook + "/webhook"
	// Warm the connections and the consumer up.
	h.e2eRun(ctx, client, url, c, 500, h.cfg.Warmup)
	for _, rate := range rates {
		r, sent, got := h.e2eRun(ctx, client, url, c, rate, h.cfg.Duration)
		key := e2eKey(label, rate)
		s := get(h.res.E2E, key)
		if len(s.Runs) == 0 {
			h.res.E2EOrder = append(h.res.E2EOrder, key)
		}
		s.add(r)
		s.Sent = append(s.Sent, float64(sent))
		s.Received = append(s.Received, float64(got))
		h.logf("round %d  e2e %-22s sent %6d received %6d  p50 %6.2f ms  p99 %7.2f ms  p999 %7.2f ms", round+1, key, sent, got, ms(r.Lat.P50), ms(r.Lat.P99), ms(r.Lat.P999))
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
		r, sent, got := h.e2eRun(ctx, client, url, c, rate, h.cfg.StepDuration)
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

// benchSend compares SendEvent with a direct POST to the emulator: latency
// with one caller, throughput with SendCallers.
func (h *harness) benchSend(ctx context.Context) error {
	dir := h.dataDir("send")
	defer os.RemoveAll(dir)
	p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: "1s"})
	if err != nil {
		return err
	}
	defer p.stop()
	conn, err := dialGRPC(p.GRPC)
	if err != nil {
		return err
	}
	defer conn.Close()
	grpcc := sidecarv1.NewEventServiceClient(conn)
	direct := directClient(h.cfg.SendCallers)
	defer direct.CloseIdleConnections()
	payload := makePayload(0, time.Now())
	inboundURL := h.emuURL + "/inbound/" + benchEventType
	directPost := func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, inboundURL, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", benchAPIKey)
		resp, err := direct.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("inbound answered %d", resp.StatusCode)
		}
		return nil
	}
	viaSidecar := func(ctx context.Context, _ int) error {
		_, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload})
		return err
	}
	for round := range h.cfg.Runs {
		for _, kind := range []struct {
			name    string
			callers int
		}{{"latency", 1}, {"throughput", h.cfg.SendCallers}} {
			for _, path := range []struct {
				name string
				op   func(context.Context, int) error
			}{{"direct", directPost}, {"sidecar", viaSidecar}} {
				conns0 := h.emuConns.Load()
				r := closedLoop(ctx, kind.callers, h.cfg.Warmup, h.cfg.Duration, path.op)
				conns := h.emuConns.Load() - conns0
				h.emu.ClearInbound()
				s := get(h.res.Send, path.name+" "+kind.name)
				s.add(r)
				// Sent holds the new connections to ChronosHub per 1,000 calls.
				s.Sent = append(s.Sent, 1000*float64(conns)/float64(max(r.Ok+r.Errors, 1)))
				h.logf("round %d  send %-8s %-10s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  errors %d", round+1, path.name, kind.name, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
				if r.Errors > 0 {
					h.logf("  last error: %v", r.LastErr)
				}
			}
		}
	}
	return nil
}

// benchFootprint measures startup time and idle RSS on an empty store, then
// recovery after SIGKILL with RecoveryEvents events in the log.
func (h *harness) benchFootprint(ctx context.Context) error {
	for round := range h.cfg.Runs {
		dir := h.dataDir("idle")
		p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: "1s"})
		if err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
		rss, err := p.rss()
		p.stop()
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		h.res.Startup = append(h.res.Startup, ms(p.Startup))
		h.res.IdleRSS = append(h.res.IdleRSS, float64(rss))
		h.logf("round %d  startup %.0f ms  idle RSS %.1f MiB", round+1, ms(p.Startup), float64(rss)/(1<<20))
	}

	dir := h.dataDir("recovery")
	defer os.RemoveAll(dir)
	p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: "1s"})
	if err != nil {
		return err
	}
	h.logf("ingesting %d events for the recovery measurement", h.cfg.RecoveryEvents)
	took, err := h.ingestN(ctx, "https://"+p.Webhook+"/webhook", h.cfg.RecoveryEvents)
	if err != nil {
		p.kill()
		return err
	}
	h.res.RecoveryIngest = took
	h.res.RecoveryDataBytes = dirSize(dir)
	h.logf("ingested in %s (%.0f/s), data dir %.1f MiB", took.Round(time.Millisecond), float64(h.cfg.RecoveryEvents)/took.Seconds(), float64(h.res.RecoveryDataBytes)/(1<<20))
	for round := range h.cfg.Runs {
		p.kill()
		if p, err = h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: "1s"}); err != nil {
			return err
		}
		time.Sleep(time.Second)
		rss, _ := p.rss()
		h.res.Recovery = append(h.res.Recovery, ms(p.Startup))
		h.res.RecoveryRSS = append(h.res.RecoveryRSS, float64(rss))
		h.logf("round %d  recovery after SIGKILL %.0f ms  RSS %.1f MiB", round+1, ms(p.Startup), float64(rss)/(1<<20))
	}
	p.stop()
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// benchStream preloads StreamEvents events, then drains them on a new
// subscription per run with one consumer that acks everything.
func (h *harness) benchStream(ctx context.Context) error {
	dir := h.dataDir("stream")
	defer os.RemoveAll(dir)
	p, err := h.startSidecar(ctx, sidecarEnv{DataDir: dir, Sync: "1s"})
	if err != nil {
		return err
	}
	defer p.stop()
	h.logf("preloading %d events", h.cfg.StreamEvents)
	if _, err := h.ingestN(ctx, "https://"+p.Webhook+"/webhook", h.cfg.StreamEvents); err != nil {
		return err
	}
	conn, err := dialGRPC(p.GRPC)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := sidecarv1.NewEventServiceClient(conn)
	for round := range h.cfg.Runs {
		t0 := time.Now()
		c, err := startConsumer(ctx, client, fmt.Sprintf("drain-%d", round+1))
		if err != nil {
			return err
		}
		end, err := c.waitAcked(ctx, int64(h.cfg.StreamEvents), 5*time.Minute)
		c.stop()
		if err != nil {
			return fmt.Errorf("drain: %d of %d acked: %w", c.acked.Load(), h.cfg.StreamEvents, err)
		}
		rate := float64(h.cfg.StreamEvents) / end.Sub(t0).Seconds()
		h.res.StreamRate = append(h.res.StreamRate, rate)
		h.res.StreamAcks = append(h.res.StreamAcks, float64(c.acked.Load())/float64(max(c.ackCalls.Load(), 1)))
		h.logf("round %d  drained %d events in %s: %.0f events/s, %.1f ids per AckEvents", round+1, h.cfg.StreamEvents, end.Sub(t0).Round(time.Millisecond), rate, h.res.StreamAcks[len(h.res.StreamAcks)-1])
	}
	return nil
}
