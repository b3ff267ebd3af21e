package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
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

// ingestRun measures webhook ingest into url in one connection mode:
// unmeasured for warmup, then measured for d.
func (h *harness) ingestRun(ctx context.Context, url, mode string, warmup, d time.Duration) loadResult {
	keepAlive := mode == modeKeepAlive
	client := webhookClient(h.pool, keepAlive, h.cfg.Senders)
	defer client.CloseIdleConnections()
	return closedLoop(ctx, h.cfg.Senders, warmup, d, func(ctx context.Context) error {
		return postWebhook(ctx, client, url, makePayload(0, time.Now()))
	})
}

// logRun logs one measured run.
func (h *harness) logRun(round int, what string, r loadResult) {
	h.logf("round %d  %-36s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  errors %d", round+1, what, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
	if r.Errors > 0 {
		h.logf("  last error: %v", r.LastErr)
	}
}

// benchIngest interleaves, round by round, the bare HTTPS baseline and the
// sidecar in both sync settings, each in both connection modes.
func (h *harness) benchIngest(ctx context.Context) error {
	base, err := h.startChild(ctx)
	if err != nil {
		return err
	}
	defer base.stop()
	for round := range h.cfg.Runs {
		rates := map[string]float64{}
		for _, srv := range ingestServers {
			p := base
			if srv != srvBaseline {
				if p, err = h.startSidecar(ctx, sidecarEnv{Name: "ingest", Sync: syncOf[srv]}); err != nil {
					return err
				}
			}
			measure := func(modes ...string) {
				for _, mode := range modes {
					r := h.ingestRun(ctx, p.url(), mode, h.cfg.Warmup, h.cfg.Duration)
					key := ingestKey(srv, mode)
					get(h.res.Ingest, key).add(r)
					rates[key] = r.Rate
					if b := rates[ingestKey(srvBaseline, mode)]; srv != srvBaseline && b > 0 {
						h.res.IngestRatio[key] = append(h.res.IngestRatio[key], r.Rate/b)
					}
					h.logRun(round, srv+" "+mode, r)
				}
			}
			// The baseline's peak is per mode, the sidecar's over both.
			peakKey := cmp.Or(syncOf[srv], srvBaseline)
			if srv == srvBaseline {
				for _, mode := range ingestModes {
					h.res.PeakRSS[peakKey] = append(h.res.PeakRSS[peakKey], p.peakRSS(func() { measure(mode) }))
				}
				continue
			}
			h.res.PeakRSS[peakKey] = append(h.res.PeakRSS[peakKey], p.peakRSS(func() { measure(ingestModes...) }))
			p.close()
		}
		if b := rates[ingestKey(srvSidecar1s, modeKeepAlive)]; b > 0 {
			h.res.AlwaysIngestRatio = append(h.res.AlwaysIngestRatio, rates[ingestKey(srvSidecarAlways, modeKeepAlive)]/b)
		}
	}
	return nil
}

// sendForwarder names the minimal SendEvent's results, sendUnix the
// sidecar's over its unix socket listener.
const (
	sendForwarder = "forwarder"
	sendUnix      = "sidecar unix"
)

// benchSend compares SendEvent, through the sidecar (over loopback TCP
// and over its unix socket listener) and through the minimal forwarder,
// with a direct POST to the emulator: latency with one caller, throughput
// with SendCallers.
func (h *harness) benchSend(ctx context.Context) error {
	p, err := h.startSidecar(ctx, sidecarEnv{Name: "send", Sync: "1s"})
	if err != nil {
		return err
	}
	defer p.close()
	fwd, err := h.startChild(ctx, "-forward", h.emuURL, "-api-key", benchAPIKey)
	if err != nil {
		return err
	}
	defer fwd.stop()
	// The same sidecar binary with its gRPC listener on a unix socket, as
	// a co-located app can use it.
	unixDir := h.dataDir("send-unix")
	defer os.RemoveAll(unixDir)
	sock := "unix://" + filepath.Join(unixDir, "grpc.sock")
	pu, err := h.startSidecar(ctx, sidecarEnv{DataDir: filepath.Join(unixDir, "data"), Sync: "1s", Extra: []string{"CHRONOSHUB_GRPC_ADDR=" + sock}})
	if err != nil {
		return err
	}
	defer pu.stop()
	payload := makePayload(0, time.Now())
	direct := directClient(h.cfg.SendCallers)
	defer direct.CloseIdleConnections()
	inboundURL := h.emuURL + "/inbound/" + benchEventType
	paths := []struct {
		name string
		op   func(context.Context) error
	}{{"direct", func(ctx context.Context) error {
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
	}}}
	for _, via := range []struct{ name, addr string }{{sendForwarder, fwd.GRPC}, {"sidecar", p.GRPC}, {sendUnix, sock}} {
		events, conn, err := dialEvents(via.addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		paths = append(paths, struct {
			name string
			op   func(context.Context) error
		}{via.name, func(ctx context.Context) error {
			_, err := events.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload})
			return err
		}})
	}
	for round := range h.cfg.Runs {
		for _, kind := range []struct {
			name    string
			callers int
		}{{"latency", 1}, {"throughput", h.cfg.SendCallers}} {
			for _, path := range paths {
				conns0 := h.emuConns.Load()
				r := closedLoop(ctx, kind.callers, h.cfg.Warmup, h.cfg.Duration, path.op)
				conns := h.emuConns.Load() - conns0
				h.emu.ClearInbound()
				s := get(h.res.Send, path.name+" "+kind.name)
				s.add(r)
				s.NewConns = append(s.NewConns, 1000*float64(conns)/float64(max(r.Ok+r.Errors, 1)))
				h.logRun(round, "send "+path.name+" "+kind.name, r)
			}
		}
	}
	return nil
}
