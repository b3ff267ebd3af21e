package main

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// TestCharts checks that each chart is a well-formed SVG document that
// shows its title, its labels and the medians it prints.
func TestCharts(t *testing.T) {
	t.Parallel()
	f := func(v ...float64) figure { return summarizeRuns(v) }
	lat := []time.Duration{time.Millisecond, 2 * time.Millisecond, 30 * time.Millisecond}
	for _, tt := range []struct {
		name string
		svg  string
		want []string
	}{
		{"bars", barChart("Webhook ingest", "requests/s", []barGroup{
			{Label: "keep-alive", Bars: []bar{{"bare Go HTTPS", f(12000, 11000, 13000)}, {"sidecar, `SYNC=always`", f(6000)}}},
			{Label: "new connection", Bars: []bar{{"bare Go HTTPS", f(700)}, {"sidecar, `SYNC=always`", summarizeRuns(nil)}}},
		}), []string{"Webhook ingest", "requests/s", "keep-alive", "new connection", "12,000", "6,000", "sidecar, SYNC=always"}},
		{"latency", latencyChart("End to end", []curve{{"sidecar @ 1,000/s", lat}, {"empty", nil}}), []string{"End to end", "sidecar @ 1,000/s", "p99.9"}},
		{"panels", panelChart("Cost", "events in the log", []string{"0", "1,000,000"}, []panel{
			{"startup, ms", fmtMs, []figure{f(30, 40), f(900)}},
			{"heap, MiB", fmtMiBShort, []figure{f(10 << 20), summarizeRuns(nil)}},
		}), []string{"Cost", "startup, ms", "heap, MiB", "1,000,000", "events in the log"}},
	} {
		if err := xml.Unmarshal([]byte(tt.svg), new(struct{})); err != nil || !strings.Contains(tt.svg, "<svg") {
			t.Errorf("%s: not an SVG document (%v): %.200s", tt.name, err, tt.svg)
		}
		for _, w := range tt.want {
			if !strings.Contains(tt.svg, ">"+w+"<") {
				t.Errorf("%s: no text %q in the chart", tt.name, w)
			}
		}
	}
}
