package main

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		values        []float64
		wantI, wantAt int
		wantMax       float64
	}{
		{[]float64{1, 1.5, 2}, -1, 1, 1.5},
		{[]float64{1, 1.5, 4}, 2, 2, 4 / 1.5},
		{[]float64{1, 3, 12}, 1, 2, 4},
		{[]float64{0, 5, 6}, -1, 2, 1.2}, // a zero step is skipped
		{[]float64{2}, -1, -1, 0},
	}
	for _, tt := range tests {
		i, maxRatio, at := bend(tt.values)
		if i != tt.wantI || at != tt.wantAt || math.Abs(maxRatio-tt.wantMax) > 1e-9 {
			t.Errorf("bend(%v) = %d, %v, %d; want %d, %v, %d", tt.values, i, maxRatio, at, tt.wantI, tt.wantMax, tt.wantAt)
		}
	}
}

func TestVerdict(t *testing.T) {
	t.Parallel()
	atLeast := func(v float64) bool { return v >= 0.75 }
	tests := []struct {
		runs []float64
		want string
	}{
		{[]float64{0.8, 0.9, 0.85}, "**met**"},
		{[]float64{0.5, 0.6, 0.7}, "**missed**"},
		{[]float64{0.7, 0.8, 0.76}, "undecided: the range straddles the target"},
		{nil, "not measured"},
	}
	for _, tt := range tests {
		if got := verdict(summarizeRuns(tt.runs), atLeast); got != tt.want {
			t.Errorf("verdict(%v) = %q, want %q", tt.runs, got, tt.want)
		}
	}
	if got := compared(summarizeRuns([]float64{1.01, 1.25, 0.98}), "slower", "faster"); got != "no difference claimed (the range includes 1)" {
		t.Errorf("compared(range over 1) = %q", got)
	}
	if got := compared(summarizeRuns([]float64{0.5, 0.6}), "slower", "faster"); got != "slower" {
		t.Errorf("compared(0.5–0.6) = %q, want slower", got)
	}
}

func TestOwnerOf(t *testing.T) {
	t.Parallel()
	for fn, want := range map[string]string{
		"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook.(*Server).ServeHTTP":                 "sidecar/internal/webhook",
		"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog.(*Log).Append.func1":                "sidecar/internal/eventlog",
		"github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1._EventService_SendEvent_Handler": "gen/go/chronoshub/sidecar/v1",
		"github.com/nats-io/nats-server/v2/server.(*stream).internalLoop":                                       "",
		"runtime.mallocgc": "",
	} {
		if got := ownerOf(fn); got != want {
			t.Errorf("ownerOf(%q) = %q, want %q", fn, got, want)
		}
	}
}

func TestOwnersOfTraces(t *testing.T) {
	t.Parallel()
	// The shape of "go tool pprof -traces": a value, the leaf, then callers.
	out := `File: chronoshub-sidecar
Type: cpu
-----------+-------------------------------------------------------
      30ms   runtime.memmove
             github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog.(*Log).Append
             github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook.(*Server).ServeHTTP
-----------+-------------------------------------------------------
      10ms   syscall.write
             net/http.(*conn).serve
-----------+-------------------------------------------------------
     1.5MB   runtime.mallocgc
             github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox.(*Outbox).Send
-----------+-------------------------------------------------------
`
	got, total := ownersOfTraces(out)
	want := map[string]float64{"sidecar/internal/eventlog": 0.03, "none: net/http (textproto, bufio)": 0.01, "sidecar/internal/outbox": 1.5e6}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })); diff != "" {
		t.Errorf("ownersOfTraces mismatch (-want +got):\n%s", diff)
	}
	if math.Abs(total-(0.04+1.5e6)) > 1e-6 {
		t.Errorf("total = %v", total)
	}
}
