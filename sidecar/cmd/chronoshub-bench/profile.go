package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	pprofile "github.com/google/pprof/profile"
)

// A profile of the running binary, fetched from its admin listener
// (CHRONOSHUB_PPROF=loopback) while a load runs, and read with
// github.com/google/pprof/profile.
type profile struct {
	Name   string  // the load, such as "ingest, keep-alive, 32 senders"
	Kind   string  // "cpu" or "alloc_space"
	Header string  // "Duration: …, Total samples = …", as pprof says it (CPU)
	Rate   float64 // the load's rate while profiled (requests or events/s)
	Top    []profileLine
	// Owners is the profile's total by the innermost sidecar package on
	// each sample's stack ("none: " and the kind of the stack's outermost
	// frame for stacks without one), largest first.
	Owners []share
	// Categories is the flat share by kind of code, largest first.
	Categories []share
}

type profileLine struct {
	Flat, Cum float64 // percent of the profile's total
	Name      string
}

type share struct {
	Name string
	Pct  float64
}

// The profiles' names, used by the report to show the one of a missed target.
const (
	profIngest = "ingest"
	profE2E    = "e2e"
	profSend   = "send"
	profAllocs = "send-allocs"
	profStream = "stream"
	profFanOut = "fan-out"
)

// modulePrefix is this module's import path prefix.
const modulePrefix = "github.com/chronoshub/chronoshub-sidecar/"

// categories classify a function by its package, first match wins.
var categories = []struct {
	name     string
	prefixes []string
}{
	{"HMAC-SHA256, SHA-256", []string{"crypto/internal/fips140/sha256", "crypto/sha256", "crypto/hmac", "crypto/internal/fips140/hmac"}},
	{"TLS record crypto (AES-GCM)", []string{"crypto/internal/fips140/aes", "crypto/aes", "crypto/cipher"}},
	{"crypto/tls and other crypto", []string{"crypto/"}},
	{"NATS server (embedded JetStream)", []string{"github.com/nats-io/nats-server"}},
	{"NATS client", []string{"github.com/nats-io/nats.go", "github.com/nats-io/nats%2ego", "github.com/nats-io/nuid"}},
	{"JetStream checksums (highwayhash)", []string{"github.com/minio/highwayhash", "github.com/klauspost"}},
	{"sidecar code", []string{modulePrefix}},
	{"gRPC, HTTP/2, protobuf", []string{"google.golang.org/grpc", "golang.org/x/net/http2", "google.golang.org/protobuf", "github.com/grpc-ecosystem"}},
	{"Prometheus client", []string{"github.com/prometheus"}},
	{"encoding/json", []string{"encoding/json"}},
	{"net/http (textproto, bufio)", []string{"net/http", "net/textproto", "bufio", "net/url", "mime"}},
	{"GC and allocation", []string{"runtime.gc", "runtime.scanobject", "runtime.mallocgc", "runtime.greyobject", "runtime.findObject", "runtime.(*mspan)", "runtime.(*mheap)", "runtime.(*gcWork)", "runtime.memclrNoHeapPointers", "runtime.heapBits", "runtime.scanblock", "runtime.nextFreeFast", "runtime.(*mcache)", "runtime.wbBuf", "runtime.bulkBarrier", "runtime.typePointers", "runtime.sweep", "runtime.(*sweep", "runtime.spanOf", "runtime.markroot", "runtime.(*gcControllerState)", "runtime.newobject", "runtime.makeslice", "runtime.growslice", "runtime.(*mcentral)", "runtime.deductAssistCredit", "runtime.scanstack", "runtime.scanframe", "runtime.(*unwinder)", "runtime.pcvalue", "runtime.funcInfo", "runtime.step", "runtime.scanSpan", "runtime.(*gcBits)", "runtime.(*spanQueue)", "runtime.(*spanSPMC)", "runtime.(*spanInlineMarkBits)", "runtime.tryDeferToSpanScan"}},
	{"system calls (network and file I/O)", []string{"internal/runtime/syscall", "syscall.", "internal/poll"}},
	{"scheduler, timers, futex, memmove", []string{"runtime.", "internal/runtime", "aeshashbody", "gogo", "memeqbody", "indexbytebody"}},
}

func categoryOf(name string) string {
	for _, c := range categories {
		for _, p := range c.prefixes {
			if strings.HasPrefix(name, p) {
				return c.name
			}
		}
	}
	return "other (strings, strconv, sync, time, …)"
}

// ownerOf returns the sidecar package of a function, as
// "sidecar/internal/webhook" or "gen/go/…", or "".
func ownerOf(fn string) string {
	rest, ok := strings.CutPrefix(fn, modulePrefix)
	if !ok {
		return ""
	}
	// The package path ends at the first "." (this module's paths have none).
	if i := strings.IndexByte(rest, '.'); i > 0 {
		return rest[:i]
	}
	return rest
}

// fetchProfile GETs a profile from the admin listener, and keeps it in
// the temporary directory (for -keep).
func (h *harness) fetchProfile(ctx context.Context, admin, path, name string) ([]byte, error) {
	b, err := adminGet(ctx, admin, path)
	if err != nil {
		return nil, err
	}
	return b, os.WriteFile(filepath.Join(h.tmp, fmt.Sprintf("%s-%d.pprof", name, h.nextRun.Add(1))), b, 0o644)
}

// profileDuring fetches a profile of p for d seconds (CPU, or allocations
// with allocs) while load runs, and reads it.
func (h *harness) profileDuring(ctx context.Context, p *proc, name string, allocs bool, d time.Duration, load func(ctx context.Context) float64) (*profile, error) {
	path, kind := "/debug/pprof/profile", "cpu"
	if allocs {
		path, kind = "/debug/pprof/allocs", "alloc_space"
	}
	type fetched struct {
		b   []byte
		err error
	}
	done := make(chan fetched, 1)
	go func() {
		b, err := h.fetchProfile(ctx, p.Admin, path+"?seconds="+strconv.Itoa(max(int(d.Seconds()), 1)), name)
		done <- fetched{b, err}
	}()
	rate := load(ctx)
	f := <-done
	if f.err != nil {
		return nil, f.err
	}
	pr, err := readProfile(f.b, kind)
	if err != nil {
		return nil, err
	}
	pr.Name, pr.Rate = name, rate
	return pr, nil
}

// samples parses a profile in pprof's format (as the runtime writes it:
// symbolized) and returns, per sample, its value of type kind ("cpu" is
// the last) and its stack's function names, innermost first, inlined calls
// included.
func samples(b []byte, kind string) (*pprofile.Profile, []float64, [][]string, error) {
	p, err := pprofile.ParseData(b)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read profile: %w", err)
	}
	index := len(p.SampleType) - 1 // CPU: [samples/count, cpu/nanoseconds]
	if kind != "cpu" {
		if index = slices.IndexFunc(p.SampleType, func(st *pprofile.ValueType) bool { return st.Type == kind }); index < 0 {
			return nil, nil, nil, fmt.Errorf("no %s values in the profile", kind)
		}
	}
	values, stacks := make([]float64, len(p.Sample)), make([][]string, len(p.Sample))
	for i, s := range p.Sample {
		values[i] = float64(s.Value[index])
		for _, loc := range s.Location {
			// A location's lines run from the innermost inlined call out.
			for _, l := range loc.Line {
				if l.Function != nil {
					stacks[i] = append(stacks[i], l.Function.Name)
				}
			}
		}
	}
	return p, values, stacks, nil
}

// readProfile reads a profile: each function's flat and cumulative share
// of the kind's values (CPU time, or allocated bytes for "alloc_space"),
// the flat share of each kind of code, and the share of each sample's
// innermost sidecar package.
func readProfile(b []byte, kind string) (*profile, error) {
	p, values, stacks, err := samples(b, kind)
	if err != nil {
		return nil, err
	}
	pr := &profile{Kind: kind}
	flat, cum := map[string]float64{}, map[string]float64{}
	owners := map[string]float64{}
	var total float64
	for i, names := range stacks {
		v := values[i]
		total += v
		if v == 0 || len(names) == 0 {
			continue
		}
		flat[names[0]] += v
		seen := map[string]bool{}
		owner := ""
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				cum[n] += v
			}
			if owner == "" {
				owner = ownerOf(n)
			}
		}
		if owner == "" {
			// No sidecar frame: name the stack by its outermost frame's
			// kind (the goroutine's entry: NATS server, net/http, …).
			owner = "none: " + categoryOf(names[len(names)-1])
		}
		owners[owner] += v
	}
	if total == 0 {
		return nil, errors.New("profile with no samples")
	}
	cats := map[string]float64{}
	for name, v := range flat {
		pct := 100 * v / total
		pr.Top = append(pr.Top, profileLine{Flat: pct, Cum: 100 * cum[name] / total, Name: name})
		cats[categoryOf(name)] += pct
	}
	slices.SortFunc(pr.Top, func(a, b profileLine) int {
		return cmp.Or(cmp.Compare(b.Flat, a.Flat), strings.Compare(a.Name, b.Name))
	})
	pr.Categories = sortedShares(cats)
	for k, v := range owners {
		owners[k] = 100 * v / total
	}
	pr.Owners = sortedShares(owners)
	if kind == "cpu" && p.DurationNanos > 0 {
		pr.Header = fmt.Sprintf("Duration: %s, Total samples = %s (%.2f%%)", time.Duration(p.DurationNanos).Round(time.Millisecond),
			time.Duration(total).Round(time.Millisecond), 100*total/float64(p.DurationNanos))
	}
	return pr, nil
}

// sumFlat returns the values of type kind whose innermost function is
// one of funcs (their flat total), from a profile.
func sumFlat(b []byte, kind string, funcs []string) (float64, error) {
	_, values, stacks, err := samples(b, kind)
	var sum float64
	for i, names := range stacks {
		if len(names) > 0 && slices.Contains(funcs, names[0]) {
			sum += values[i]
		}
	}
	return sum, err
}

func sortedShares(m map[string]float64) []share {
	var s []share
	for k, v := range m {
		s = append(s, share{k, v})
	}
	slices.SortFunc(s, func(a, b share) int { return cmp.Or(cmp.Compare(b.Pct, a.Pct), strings.Compare(a.Name, b.Name)) })
	return s
}

// benchProfile profiles the running binary under each load that has a
// target: webhook ingest (keep-alive), end to end at the target rate,
// SendEvent with SendCallers callers (CPU and allocations), and the stream
// drain. The measured runs are never profiled: profiling costs CPU.
func (h *harness) benchProfile(ctx context.Context) error {
	if !h.cfg.Profile {
		h.res.Notes = append(h.res.Notes, "profiling skipped (-profile=false)")
		return nil
	}
	d := max(h.cfg.Duration, 2*time.Second).Truncate(time.Second)
	p, err := h.startSidecar(ctx, sidecarEnv{Name: "profile", Sync: "1s"})
	if err != nil {
		return err
	}
	defer p.close()
	a, err := h.openApp(ctx, p, false)
	if err != nil {
		return err
	}
	defer a.close()
	add := func(name string, allocs bool, load func(ctx context.Context) float64) error {
		pr, err := h.profileDuring(ctx, p, name, allocs, d, load)
		if err != nil {
			return err
		}
		h.res.Profiles = append(h.res.Profiles, pr)
		h.logf("profiled %s: %.0f/s, %s", pr.Name, pr.Rate, pr.Header)
		return nil
	}
	if err := add(profIngest, false, func(ctx context.Context) float64 { return h.ingestRun(ctx, p.url(), modeKeepAlive, 0, d).Rate }); err != nil {
		return err
	}
	c, err := startConsumer(ctx, a.events, "profile", false)
	if err != nil {
		return err
	}
	a.cs = append(a.cs, c)
	if err := add(profE2E, false, func(ctx context.Context) float64 { r, _, _ := h.e2eRun(ctx, a, targetE2ERate, d); return r.Rate }); err != nil {
		return err
	}
	c.stop()
	a.cs = nil

	payload := makePayload(0, time.Now())
	send := func(ctx context.Context) float64 {
		r := closedLoop(ctx, h.cfg.SendCallers, 0, d, func(ctx context.Context) error {
			_, err := a.events.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload})
			return err
		})
		h.emu.ClearInbound()
		return r.Rate
	}
	if err := add(profSend, false, send); err != nil {
		return err
	}
	if err := add(profAllocs, true, send); err != nil {
		return err
	}

	// The stream drain: preload, then drain on new subscriptions for the
	// profile's duration.
	n := min(h.cfg.StreamEvents, 20000)
	if _, err := h.ingestN(ctx, p.url(), n); err != nil {
		return err
	}
	return add(profStream, false, func(ctx context.Context) float64 {
		end := time.Now().Add(d)
		var drained int64
		t0 := time.Now()
		for i := 0; time.Now().Before(end); i++ {
			c, err := startConsumer(ctx, a.events, fmt.Sprintf("profile-drain-%d", i), false)
			if err != nil {
				return 0
			}
			_, err = c.waitAcked(ctx, int64(n), time.Until(end))
			drained += c.acked.Load()
			c.stop()
			if err != nil {
				break
			}
		}
		return float64(drained) / time.Since(t0).Seconds()
	})
}
