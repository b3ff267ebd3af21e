package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// pushApp is the app of a push subscription: an HTTP endpoint that answers
// 204 and records, in a consumer (so that e2eRun and warmUp treat it as
// they treat a stream), each event's latency from its scheduled send time.
// While held, it holds every POST until released.
type pushApp struct {
	c   *consumer
	srv *http.Server
	url string

	mu   sync.Mutex
	held chan struct{} // nil when not holding
}

func startPushApp() (*pushApp, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	close(done)
	a := &pushApp{c: &consumer{cancel: func() {}, done: done, lat: map[int]latencies{}}, url: "http://" + lis.Addr().String() + "/events"}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(lis) }()
	return a, nil
}

func (a *pushApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	held := a.held
	a.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	now := time.Now()
	if run, sent, ok := parsePayload(body); ok {
		a.c.mu.Lock()
		a.c.lat[run] = append(a.c.lat[run], now.Sub(sent))
		a.c.mu.Unlock()
	}
	a.c.received.Add(1)
	a.c.acked.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// hold makes the app hold every POST until release.
func (a *pushApp) hold() {
	a.mu.Lock()
	a.held = make(chan struct{})
	a.mu.Unlock()
}

func (a *pushApp) release() {
	a.mu.Lock()
	close(a.held)
	a.held = nil
	a.mu.Unlock()
}

func (a *pushApp) close() { _ = a.srv.Close() }

// benchPush measures push delivery beside the gRPC stream, on one sidecar
// whose log feeds both: a declared push subscription (concurrency 1, the
// default) POSTing to a local endpoint, and a stream subscription with the
// bench's app. Each round offers the end-to-end target's rate to both at
// once, then drains a backlog by push (the endpoint held while it is
// stored) and the same backlog on the stream's subscription.
func (h *harness) benchPush(ctx context.Context) error {
	pa, err := startPushApp()
	if err != nil {
		return err
	}
	defer pa.close()
	decl, err := json.Marshal(map[string]any{"subscriptions": []any{
		map[string]any{"name": "push", "push": map[string]any{"url": pa.url, "concurrency": 1}},
	}})
	if err != nil {
		return err
	}
	file := filepath.Join(h.tmp, "push-subscriptions.json")
	if err := os.WriteFile(file, decl, 0o600); err != nil {
		return err
	}
	p, err := h.startSidecar(ctx, sidecarEnv{Name: "push", Sync: "1s", Extra: []string{"CHRONOSHUB_SUBSCRIPTIONS_FILE=" + file}})
	if err != nil {
		return err
	}
	defer p.close()
	a, err := h.openApp(ctx, p, true, "stream")
	if err != nil {
		return err
	}
	defer func() { a.close() }()
	a.cs = append(a.cs, pa.c)
	if err := h.warmUp(ctx, a); err != nil {
		return err
	}
	n := h.res.pushDrainEvents() // push at concurrency 1 drains a few thousand events a second
	for round := range h.cfg.Runs {
		r, _, _ := h.e2eRun(ctx, a, targetE2ERate, h.cfg.Duration)
		if r.LastErr != nil {
			return fmt.Errorf("end to end: %w", r.LastErr)
		}
		run := int(h.nextRun.Load())
		stream, push := summarize(a.cs[0].runLatencies(run)), summarize(pa.c.runLatencies(run))
		h.res.PushP99 = append(h.res.PushP99, ms(push.P99))
		h.res.PushStreamP99 = append(h.res.PushStreamP99, ms(stream.P99))
		h.res.PushP99Ratio = append(h.res.PushP99Ratio, ratio(ms(push.P99), ms(stream.P99)))

		// The backlog: stored while the stream is closed and the endpoint
		// holds the one POST the sidecar sends meanwhile.
		a.cs[0].stop()
		pa.hold()
		before := pa.c.received.Load()
		if _, err := h.ingestN(ctx, p.url(), n); err != nil {
			pa.release()
			return err
		}
		t0 := time.Now()
		pa.release()
		if err := poll(ctx, 5*time.Minute, time.Millisecond, func() (bool, error) { return pa.c.received.Load()-before >= int64(n), nil }); err != nil {
			return fmt.Errorf("push drain: %d of %d delivered: %w", pa.c.received.Load()-before, n, err)
		}
		pushRate := float64(n) / time.Since(t0).Seconds()
		t0 = time.Now()
		c, err := startConsumer(ctx, a.events, "stream", false)
		if err != nil {
			return err
		}
		a.cs[0] = c
		end, err := c.waitAcked(ctx, int64(n), 5*time.Minute)
		if err != nil {
			return fmt.Errorf("stream drain: %d of %d acked: %w", c.acked.Load(), n, err)
		}
		streamRate := float64(n) / end.Sub(t0).Seconds()
		h.res.PushDrain = append(h.res.PushDrain, pushRate)
		h.res.PushStreamDrain = append(h.res.PushStreamDrain, streamRate)
		h.res.PushDrainRatio = append(h.res.PushDrainRatio, pushRate/streamRate)
		h.logf("round %d  push p99 %.2f ms, stream p99 %.2f ms at %d/s; drained %d events: push %.0f events/s, stream %.0f events/s",
			round+1, ms(push.P99), ms(stream.P99), targetE2ERate, n, pushRate, streamRate)
	}
	return nil
}
