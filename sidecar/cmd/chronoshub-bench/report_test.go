package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pprofile "github.com/google/pprof/profile"
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

// writeProfile returns a profile in pprof's format with one value type and
// the given stacks (innermost function first) and values.
func writeProfile(t *testing.T, typ, unit string, durationNanos int64, stacks [][]string, values []int64) []byte {
	t.Helper()
	p := &pprofile.Profile{SampleType: []*pprofile.ValueType{{Type: "samples", Unit: "count"}, {Type: typ, Unit: unit}}, DurationNanos: durationNanos}
	funcs := map[string]*pprofile.Function{}
	for i, stack := range stacks {
		s := &pprofile.Sample{Value: []int64{1, values[i]}}
		for _, name := range stack {
			f := funcs[name]
			if f == nil {
				f = &pprofile.Function{ID: uint64(len(funcs) + 1), Name: name}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &pprofile.Location{ID: uint64(len(p.Location) + 1), Line: []pprofile.Line{{Function: f}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadProfile(t *testing.T) {
	t.Parallel()
	const ms = int64(time.Millisecond)
	file := writeProfile(t, "cpu", "nanoseconds", 1000*ms, [][]string{
		{"runtime.memmove", "github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog.(*Log).Append", "github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook.(*Server).ServeHTTP"},
		{"syscall.write", "net/http.(*conn).serve"},
		{"runtime.memmove", "runtime.growslice", "runtime.memmove"}, // recursion counts once in cum
	}, []int64{60 * ms, 20 * ms, 20 * ms})
	got, err := readProfile(file, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
	wantOwners := []share{{"sidecar/internal/eventlog", 60}, {"none: net/http (textproto, bufio)", 20}, {"none: scheduler, timers, futex, memmove", 20}}
	if diff := cmp.Diff(wantOwners, got.Owners, approx); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
	// Functions with flat samples only, largest first.
	wantTop := []profileLine{{Flat: 80, Cum: 80, Name: "runtime.memmove"}, {Flat: 20, Cum: 20, Name: "syscall.write"}}
	if diff := cmp.Diff(wantTop, got.Top, approx); diff != "" {
		t.Errorf("top (-want +got):\n%s", diff)
	}
	wantCats := []share{{"scheduler, timers, futex, memmove", 80}, {"system calls (network and file I/O)", 20}}
	if diff := cmp.Diff(wantCats, got.Categories, approx); diff != "" {
		t.Errorf("categories (-want +got):\n%s", diff)
	}
	if want := "Duration: 1s, Total samples = 100ms (10.00%)"; got.Header != want {
		t.Errorf("header = %q, want %q", got.Header, want)
	}

	if _, err := readProfile(file, "alloc_space"); err == nil {
		t.Error("readProfile of a kind the profile lacks succeeded")
	}
	if _, err := readProfile([]byte("not a profile"), "cpu"); err == nil {
		t.Error("readProfile of a file that is not a profile succeeded")
	}
}

func TestSumFlat(t *testing.T) {
	t.Parallel()
	file := writeProfile(t, "inuse_space", "bytes", 0, [][]string{
		{"github.com/nats-io/nats-server/v2/server.(*stream).storeMsgIdLocked", "github.com/nats-io/nats-server/v2/server.(*stream).rebuildDedupe"},
		{"github.com/nats-io/nats-server/v2/server.getMsgId", "github.com/nats-io/nats-server/v2/server.(*stream).rebuildDedupe"},
		{"github.com/nats-io/nats-server/v2/server.(*stream).rebuildDedupe"},
		{"github.com/nats-io/nats-server/v2/server/thw.(*HashWheel).Decode", "github.com/nats-io/nats-server/v2/server.(*stream).rebuildDedupe"},
	}, []int64{5984342, 4718808, 4194432, 528170})
	got, err := sumFlat(file, "inuse_space", dedupeFuncs)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(5984342 + 4718808 + 4194432); got != want {
		t.Errorf("sumFlat = %v, want %v", got, want)
	}
}

// TestMarkdown checks rows of the report's tables and its verdicts, from
// results whose figures are known.
func TestMarkdown(t *testing.T) {
	t.Parallel()
	runs := func(rates ...float64) *series {
		s := &series{}
		for _, r := range rates {
			s.add(loadResult{Rate: r, Lat: quantiles{P50: time.Millisecond, P99: 4 * time.Millisecond, P999: 9 * time.Millisecond}})
		}
		return s
	}
	r := newResults(&config{Runs: 3, Duration: time.Second, Rates: []int{1000}, LogSizes: []int{0, 1_000_000}, Subs: []int{1, 100}, SendCallers: 8, ScaleRate: 100})
	r.Ingest[ingestKey(srvBaseline, modeKeepAlive)] = runs(10000, 12000, 11000)
	r.Ingest[ingestKey(srvSidecar1s, modeKeepAlive)] = runs(8000, 9600, 8250)
	r.IngestRatio[ingestKey(srvSidecar1s, modeKeepAlive)] = []float64{0.8, 0.8, 0.75}
	r.StreamBase, r.StreamRate, r.StreamRatio, r.StreamAcks = []float64{1000, 2000, 3000}, []float64{500, 700, 600}, []float64{0.5, 0.35, 0.2}, []float64{10, 10, 10}
	r.StreamJS, r.StreamJSRatio, r.StreamOverJS = []float64{800, 900, 1200}, []float64{0.8, 0.45, 0.4}, []float64{0.6, 0.78, 0.5}
	r.PushP99, r.PushStreamP99, r.PushP99Ratio = []float64{3, 4, 5}, []float64{2, 2, 2}, []float64{1.5, 2, 2.5}
	r.PushDrain, r.PushStreamDrain, r.PushDrainRatio = []float64{5000, 6000, 4000}, []float64{50000, 60000, 40000}, []float64{0.1, 0.1, 0.1}
	r.SubSteps = []subStep{{Subs: 1, P99: []float64{2, 4, 3}, JSP99: []float64{1, 2, 2}}, {Subs: 100, P99: []float64{5, 20, 6}, JSP99: []float64{4, 12, 5}}}
	r.LogSteps = []logStep{{Events: 1_000_000, Startup: []float64{800, 900, 700}, Recovery: []float64{950, 1200, 600}}}
	md := r.markdown()
	for _, want := range []string{
		"| Webhook ingest, keep-alive, `SYNC=1s`: ≥ 0.75× the bare HTTPS server's requests/s | 0.80× (0.75×–0.80×) | **met** |",
		"| Stream drain ≥ 0.5× the minimal pipeline's events/s | 0.35× (0.20×–0.50×) | undecided: the range straddles the target |",
		// Per round: 5/2, 20/4, 6/3.
		"| Fan-out: end-to-end p99 with 100 subscriptions ≤ 3× with one | 2.50× (2.00×–5.00×) | undecided: the range straddles the target |",
		// Per round, the slower of startup and recovery: 950, 1,200, 700.
		"| Duplicate window: startup and recovery with 1,000,000 events in it < 1 s | 950.0 (700.0–1200.0) ms with 1,000,000 events (startup 800.0 (700.0–900.0) ms, recovery 950.0 (600.0–1200.0) ms) | undecided: the range straddles the target |",
		"| Idle RSS < 64 MiB | n/a | not measured |",
		"| Push delivery (concurrency 1): end-to-end p99 at 1,000 events/s ≤ 1.5× the gRPC stream's on the same sidecar | 2.00× (1.50×–2.50×) | undecided: the range straddles the target |",
		"| end-to-end p99 ms at 1,000/s | 4.00 (3.00–5.00) | 2.00 | 2.00× (1.50×–2.50×) |",
		"| backlog drain, events/s | 5,000 (4,000–6,000) | 50,000 (40,000–60,000) | 0.10× |",
		"| sidecar, `CHRONOSHUB_SYNC=1s` | keep-alive | 8,250 (8,000–9,600) | 0.80× (0.75×–0.80×) | slower | 1.00 | 4.00 | 9.00 | 0 |",
		"| bare Go HTTPS | keep-alive | 11,000 (10,000–12,000) | 1 | | 1.00 | 4.00 | 9.00 | 0 |",
		"| sidecar | 600 (500–700) | 0.35× (0.20×–0.50×) | 0.60× (0.50×–0.78×) | 10.0 |",
		"| minimal pipeline over JetStream | 900 (800–1,200) | 0.45× (0.40×–0.80×) | 1 | |",
		// The store's range reaches 0.5×: no claim that the target is out of reach.
		"The store alone drains at 0.45× (0.40×–0.80×) the minimal pipeline's rate; the sidecar at 0.60× (0.50×–0.78×) the store's.",
		"- end-to-end p99: no step more than doubles the previous one (largest step: 2.00× at 100).",
		// Per round: 4/1, 12/2, 5/2.
		"- the minimal pipeline over JetStream (section 5: the store's own consumers and acks, nothing of the sidecar's): p99 with 100 subscriptions 4.00× (2.50×–6.00×) its p99 with one, per round.",
	} {
		if !strings.Contains(md, "\n"+want+"\n") {
			t.Errorf("markdown has no line %q", want)
		}
	}
}
