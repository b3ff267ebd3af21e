package main

import (
	"math"
	"slices"
	"time"
)

// latencies is a sample of request latencies. The zero value is empty and
// ready to use; it is not safe for concurrent use (each load worker keeps
// its own and they are merged at the end).
type latencies []time.Duration

// percentile returns the q-quantile (0 ≤ q ≤ 1) of sorted by the
// nearest-rank method: the smallest sample such that at least q of all
// samples are at or below it. It returns 0 for an empty sample.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	rank = min(rank, len(sorted))
	return sorted[rank-1]
}

// quantiles are the latency figures reported for one run.
type quantiles struct {
	N                     int
	P50, P90, P99, P999   time.Duration
	Max                   time.Duration
	Mean                  time.Duration
	Sorted                []time.Duration // kept for the chart's CDF
	RatePerSecond, Errors float64
}

// summarize sorts l in place and returns its quantiles.
func summarize(l latencies) quantiles {
	slices.Sort(l)
	q := quantiles{N: len(l), Sorted: l}
	if len(l) == 0 {
		return q
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	q.Mean = sum / time.Duration(len(l))
	q.P50 = percentile(l, 0.50)
	q.P90 = percentile(l, 0.90)
	q.P99 = percentile(l, 0.99)
	q.P999 = percentile(l, 0.999)
	q.Max = l[len(l)-1]
	return q
}

// figure is one reported number over several runs: the median and the
// range. Runs keeps the per-run values in run order.
type figure struct {
	Median, Min, Max float64
	Runs             []float64
}

// summarizeRuns returns the median, minimum and maximum of runs. The median
// of an even count is the mean of the two middle values. An empty input
// gives NaN everywhere, which the report prints as "n/a".
func summarizeRuns(runs []float64) figure {
	f := figure{Runs: slices.Clone(runs)}
	if len(runs) == 0 {
		f.Median, f.Min, f.Max = math.NaN(), math.NaN(), math.NaN()
		return f
	}
	s := slices.Clone(runs)
	slices.Sort(s)
	f.Min, f.Max = s[0], s[len(s)-1]
	if n := len(s); n%2 == 1 {
		f.Median = s[n/2]
	} else {
		f.Median = (s[n/2-1] + s[n/2]) / 2
	}
	return f
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
