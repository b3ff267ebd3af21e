package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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

// ingestRun measures webhook ingest into url in one connection mode:
// unmeasured for warmup, then measured for d.
func (h *harness) ingestRun(ctx context.Context, url, mode string, warmup, d time.Duration) loadResult {
	keepAlive := mode == modeKeepAlive
	client := webhookClient(h.pool, keepAlive, h.cfg.Senders)
	defer client.CloseIdleConnections()
	return closedLoop(ctx, h.cfg.Senders, warmup, d, func(ctx context.Context, _ int) error {
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
			r := h.ingestRun(ctx, baseURL, mode, h.cfg.Warmup, h.cfg.Duration)
			close(stop)
			h.res.PeakRSS[srvBaseline] = append(h.res.PeakRSS[srvBaseline], float64(<-peak))
			get(h.res.Ingest, ingestKey(srvBaseline, mode)).add(r)
			baseRates[mode] = r.Rate
			h.logf("round %d  %-15s %-14s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", round+1, srvBaseline, mode, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
		}
		sidecarRates := map[string]float64{}
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
				r := h.ingestRun(ctx, url, mode, h.cfg.Warmup, h.cfg.Duration)
				get(h.res.Ingest, ingestKey(srv, mode)).add(r)
				if mode == modeKeepAlive {
					sidecarRates[srv] = r.Rate
				}
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
		if b := sidecarRates[srvSidecar1s]; b > 0 {
			h.res.AlwaysIngestRatio = append(h.res.AlwaysIngestRatio, sidecarRates[srvSidecarAlways]/b)
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

// benchSend compares SendEvent with a direct POST to the emulator: latency
// with one caller, throughput with SendCallers.
// sendForwarder names the minimal SendEvent's results, sendUnix the
// sidecar's over its unix socket listener.
const (
	sendForwarder = "forwarder"
	sendUnix      = "sidecar unix"
)

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
	fwd, err := h.startChild(childBaseline, "-cert", h.certFile, "-key", h.keyFile, "-forward", h.emuURL, "-api-key", benchAPIKey)
	if err != nil {
		return err
	}
	defer fwd.stop()
	fwdConn, err := dialGRPC(fwd.GRPC)
	if err != nil {
		return err
	}
	defer fwdConn.Close()
	fwdc := sidecarv1.NewEventServiceClient(fwdConn)
	// The same sidecar binary with its gRPC listener on a unix socket, as
	// a co-located app can use it.
	unixDir := h.dataDir("send-unix")
	defer os.RemoveAll(unixDir)
	sock := filepath.Join(unixDir, "grpc.sock")
	pu, err := h.startSidecar(ctx, sidecarEnv{DataDir: filepath.Join(unixDir, "data"), Sync: "1s", Extra: []string{"CHRONOSHUB_GRPC_ADDR=unix://" + sock}})
	if err != nil {
		return err
	}
	defer pu.stop()
	unixConn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer unixConn.Close()
	unixc := sidecarv1.NewEventServiceClient(unixConn)
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
	viaForwarder := func(ctx context.Context, _ int) error {
		_, err := fwdc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload})
		return err
	}
	viaUnix := func(ctx context.Context, _ int) error {
		_, err := unixc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload})
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
			}{{"direct", directPost}, {sendForwarder, viaForwarder}, {"sidecar", viaSidecar}, {sendUnix, viaUnix}} {
				conns0 := h.emuConns.Load()
				r := closedLoop(ctx, kind.callers, h.cfg.Warmup, h.cfg.Duration, path.op)
				conns := h.emuConns.Load() - conns0
				h.emu.ClearInbound()
				s := get(h.res.Send, path.name+" "+kind.name)
				s.add(r)
				s.NewConns = append(s.NewConns, 1000*float64(conns)/float64(max(r.Ok+r.Errors, 1)))
				h.logf("round %d  send %-8s %-10s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  errors %d", round+1, path.name, kind.name, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
				if r.Errors > 0 {
					h.logf("  last error: %v", r.LastErr)
				}
			}
		}
	}
	return nil
}
