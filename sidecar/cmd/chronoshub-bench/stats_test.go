package main

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var l latencies
	for i := 1; i <= 1000; i++ {
		l = append(l, time.Duration(1001-i)*time.Millisecond) // reversed: summarize sorts
	}
	q := summarize(l)
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", q.P50, 500 * time.Millisecond},
		{"p90", q.P90, 900 * time.Millisecond},
		{"p99", q.P99, 990 * time.Millisecond},
		{"p999", q.P999, 999 * time.Millisecond},
		{"max", q.Max, 1000 * time.Millisecond},
		{"mean", q.Mean, 500500 * time.Microsecond},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("summarize(1..1000 ms).%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{[]time.Duration{7}, 0, 7},
		{[]time.Duration{7}, 1, 7},
		{[]time.Duration{1, 2}, 0.5, 1},
		{[]time.Duration{1, 2}, 0.51, 2},
		{[]time.Duration{1, 2, 3, 4}, 0.999, 4},
	} {
		if got := percentile(tt.in, tt.q); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}

func TestSummarizeRuns(t *testing.T) {
	tests := []struct {
		in                    []float64
		median, minimum, maxi float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{5}, 5, 5, 5},
	}
	for _, tt := range tests {
		f := summarizeRuns(tt.in)
		if f.Median != tt.median || f.Min != tt.minimum || f.Max != tt.maxi {
			t.Errorf("summarizeRuns(%v) = %v/%v/%v, want %v/%v/%v", tt.in, f.Median, f.Min, f.Max, tt.median, tt.minimum, tt.maxi)
		}
		if f.Runs[0] != tt.in[0] {
			t.Errorf("summarizeRuns(%v) reordered the runs: %v", tt.in, f.Runs)
		}
	}
	if f := summarizeRuns(nil); !math.IsNaN(f.Median) {
		t.Errorf("summarizeRuns(nil).Median = %v, want NaN", f.Median)
	}
}

func TestPayload(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	p := makePayload(42, sent)
	if len(p) != payloadSize {
		t.Fatalf("len(makePayload) = %d, want %d", len(p), payloadSize)
	}
	if !json.Valid(p) {
		t.Fatalf("makePayload is not JSON: %s", p)
	}
	run, got, ok := parsePayload(p)
	if !ok || run != 42 || !got.Equal(sent) {
		t.Fatalf("parsePayload = %d, %v, %v, want 42, %v, true", run, got, ok, sent)
	}
}

func TestFormatRate(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567.4, "1,234,567"}, {12.345, "12.35"}, {-2500, "-2,500"}} {
		if got := formatRate(tt.in); got != tt.want {
			t.Errorf("formatRate(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
