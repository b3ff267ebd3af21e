package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// benchBacklog queues BacklogEvents async SendEvents while ChronosHub does
// not answer (a gate in front of an emulator holds every request), then
// opens the gate and measures how fast the outbox drains against the
// emulator with BacklogLatency of injected latency, for at most
// BacklogMax.
func (h *harness) benchBacklog(ctx context.Context) error {
	emu, err := emulator.New(emulator.Options{APIKey: benchAPIKey, WebhookSecret: []byte(benchSecret)})
	if err != nil {
		return err
	}
	defer emu.Close()
	if err := emu.SetFaults(emulator.Faults{Latency: h.cfg.BacklogLatency}); err != nil {
		return err
	}
	up := make(chan struct{})
	var openOnce sync.Once
	open := func() { openOnce.Do(func() { close(up) }) }
	defer open()
	// Accepted events are counted here, not with emu.Inbound, which remembers only the
	// emulator's last MaxHistory (1,000) events.
	var held, accepted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		select {
		case <-up:
		case <-r.Context().Done():
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		emu.Handler().ServeHTTP(sw, r)
		if sw.status/100 == 2 {
			accepted.Add(1)
		}
	}))
	defer srv.Close()
	defer open() // before srv.Close (deferred calls run last first)

	p, err := h.startSidecar(ctx, sidecarEnv{Name: "backlog", Sync: "1s", BaseURL: srv.URL, Extra: h.cfg.BacklogEnv})
	if err != nil {
		return err
	}
	defer p.close()
	events, conn, err := dialEvents(p.GRPC)
	if err != nil {
		return err
	}
	defer conn.Close()
	payload := makePayload(0, time.Now())
	n := h.cfg.BacklogEvents
	t0 := time.Now()
	failed, _ := forN(ctx, h.cfg.SendCallers, n, func(ctx context.Context) error {
		_, err := events.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload, Async: true})
		return err
	})
	if failed > 0 {
		return fmt.Errorf("%d of %d async SendEvents failed", failed, n)
	}
	h.res.BacklogEnqueue = time.Since(t0)
	h.res.BacklogHeldAtGate = held.Load()
	h.logf("queued %d async SendEvents in %s while ChronosHub did not answer (%d requests held at the gate)", n, h.res.BacklogEnqueue.Round(time.Millisecond), held.Load())

	open()
	t1 := time.Now()
	err = poll(ctx, h.cfg.BacklogMax, 50*time.Millisecond, func() (bool, error) { return accepted.Load() >= int64(n), nil })
	if err != nil && !errors.Is(err, errNotReceived) {
		return err
	}
	h.res.BacklogAccepted, h.res.BacklogElapsed = int(accepted.Load()), time.Since(t1)
	h.logf("drained %d of %d in %s: %.1f events/s", h.res.BacklogAccepted, n, h.res.BacklogElapsed.Round(time.Millisecond), float64(h.res.BacklogAccepted)/h.res.BacklogElapsed.Seconds())
	return nil
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
