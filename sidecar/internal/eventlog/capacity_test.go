package eventlog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWaitCapacityWhileSettling: a stream whose every held delivery is
// being settled (out of the registry, its capacity not yet given back)
// waits for the settlement's signal instead of re-checking in a loop, and
// returns once the capacity comes back.
func TestWaitCapacityWhileSettling(t *testing.T) {
	t.Parallel()
	l := &Log{}
	h := &streamHandle{sub: &subState{inflight: map[string]*delivery{}}, wake: make(chan struct{}, 1), n: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.waitCapacity(ctx, h, 1, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitCapacity = %v, want the context's deadline", err)
	}
	l.mu.Lock()
	checks := h.checks
	l.mu.Unlock()
	if checks > 2 {
		t.Fatalf("waitCapacity looked %d times in 200 ms with nothing to expire; want it to wait for the settlement", checks)
	}
	// The settlement confirms: capacity comes back and the wait ends.
	done := make(chan error, 1)
	go func() { done <- l.waitCapacity(context.Background(), h, 1, nil) }()
	l.mu.Lock()
	h.n--
	l.mu.Unlock()
	h.signal()
	if err := <-done; err != nil {
		t.Fatalf("waitCapacity after the settlement = %v", err)
	}
}
