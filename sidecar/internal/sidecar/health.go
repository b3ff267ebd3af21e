package sidecar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// storeHealth follows the outcome of appends. JetStream's file store stops
// taking writes after a write error such as a full disk, and stays so after
// space returns until the process restarts (measured: every append then
// times out). A run of failures is reported by /readyz at once and, once it
// has lasted the store failure limit, by /healthz, so that the orchestrator
// restarts the sidecar; the restart recovers the store like any crash.
//
// While appends are failing, the health loop probes the store with a
// cheap write (eventlog.Log.Probe) every second, and a probe that succeeds
// clears the failure: an unready pod gets no webhooks, so it must not wait
// for an append to succeed to become ready again (on a cluster, once the
// quorum is back).
//
// Only the store's own failures count: an append abandoned because the
// webhook's client went away says nothing about the store.
type storeHealth struct {
	mu           sync.Mutex
	failingSince time.Time // zero while the last append succeeded
	lastErr      error
}

func (h *storeHealth) record(err error, now time.Time) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.failingSince, h.lastErr = time.Time{}, nil
	case h.failingSince.IsZero():
		h.failingSince, h.lastErr = now, err
	default:
		h.lastErr = err
	}
}

// failing reports whether the last append (or probe) failed.
func (h *storeHealth) failing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.failingSince.IsZero()
}

// check returns an error when appends have been failing for at least limit.
func (h *storeHealth) check(now time.Time, limit time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failingSince.IsZero() || now.Sub(h.failingSince) < limit {
		return nil
	}
	return fmt.Errorf("event store failing since %s: %v", h.failingSince.UTC().Format(time.RFC3339), h.lastErr)
}
