package sidecar

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestStoreHealth(t *testing.T) {
	var h storeHealth
	t0 := time.Unix(1763900000, 0)
	steps := []struct {
		err       error
		at        time.Duration
		limit     time.Duration
		unhealthy bool
	}{
		{nil, 0, 0, false},
		{errors.New("timeout"), time.Second, 0, true},
		{errors.New("timeout"), 5 * time.Second, 30 * time.Second, false},
		{errors.New("timeout"), 31 * time.Second, 30 * time.Second, true},
		{nil, 32 * time.Second, 0, false},
		// A client that went away is not the store failing.
		{fmt.Errorf("append: %w", context.Canceled), 33 * time.Second, 0, false},
	}
	for i, s := range steps {
		h.record(s.err, t0.Add(s.at))
		if err := h.check(t0.Add(s.at), s.limit); (err != nil) != s.unhealthy {
			t.Fatalf("step %d: check = %v, want unhealthy %v", i, err, s.unhealthy)
		}
	}
}
