package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// section is one part of the harness, run in the order of sections. A new
// scenario is a method of harness (in its own file) and an entry here; its
// results go into results and its report into markdown.
type section struct {
	name string
	run  func(*harness, context.Context) error
}

var sections = []section{
	{"ingest", (*harness).benchIngest},
	{"e2e", (*harness).benchEndToEnd},
	{"send", (*harness).benchSend},
	{"footprint", (*harness).benchFootprint},
	{"stream", (*harness).benchStream},
	{"push", (*harness).benchPush},
	{"backlog", (*harness).benchBacklog},
	{"cluster", (*harness).benchCluster},
	{"scale", (*harness).benchScale},
	{"profile", (*harness).benchProfile},
}

// sectionNames are the names of sections, in order.
func sectionNames() []string {
	names := make([]string, len(sections))
	for i, s := range sections {
		names[i] = s.name
	}
	return names
}

// harness is one benchmark run: the built binary, the certificate, the
// emulator and the results so far.
type harness struct {
	cfg      *config
	log      io.Writer
	tmp      string
	bin      string
	self     string
	certFile string
	keyFile  string
	pool     *x509.CertPool
	emu      *emulator.Emulator
	emuURL   string
	res      *results
	nextRun  atomic.Int64
	emuConns atomic.Int64 // connections the emulator accepted
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func runHarness(ctx context.Context, cfg *config, stderr io.Writer) error {
	started := time.Now()
	loadBefore := loadAverage()
	tmp, err := os.MkdirTemp("", "chronoshub-bench-")
	if err != nil {
		return err
	}
	if cfg.Keep {
		fmt.Fprintln(stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	h := &harness{cfg: cfg, log: stderr, tmp: tmp, res: newResults(cfg)}
	if h.self, err = os.Executable(); err != nil {
		return err
	}
	if h.certFile, h.keyFile, h.pool, err = generateCert(tmp); err != nil {
		return err
	}
	if err := h.build(ctx); err != nil {
		return err
	}
	h.emu, err = emulator.New(emulator.Options{APIKey: benchAPIKey, WebhookSecret: []byte(benchSecret)})
	if err != nil {
		return err
	}
	defer h.emu.Close()
	emuSrv := httptest.NewUnstartedServer(h.emu.Handler())
	// Counting the emulator's new connections shows whether a client
	// reuses its connections to ChronosHub.
	emuSrv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			h.emuConns.Add(1)
		}
	}
	emuSrv.Start()
	defer emuSrv.Close()
	h.emuURL = emuSrv.URL
	h.res.Machine = describeMachine(ctx)
	h.res.Machine.LoadBefore = loadBefore

	for _, s := range sections {
		if len(cfg.Only) > 0 && !cfg.Only[s.name] {
			continue
		}
		t0 := time.Now()
		h.logf("== %s", s.name)
		if err := s.run(h, ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A failed section is reported, not fatal: the rest still runs.
			h.logf("%s failed: %v", s.name, err)
			h.res.Failures = append(h.res.Failures, fmt.Sprintf("%s: %v", s.name, err))
		}
		h.res.SectionTimes = append(h.res.SectionTimes, sectionTime{s.name, time.Since(t0)})
	}
	h.res.Elapsed = time.Since(started)
	h.res.Machine.LoadAfter = loadAverage()
	h.logf("done in %s; writing %s", h.res.Elapsed.Round(time.Second), cfg.Out)
	if err := writeReport(h.res, cfg.Out); err != nil {
		return err
	}
	if cfg.Save != "" {
		b, err := json.Marshal(h.res)
		if err != nil {
			return fmt.Errorf("-save: %w", err)
		}
		return os.WriteFile(cfg.Save, b, 0o644)
	}
	return nil
}

// reportFrom writes the report into out from results saved with -save.
func reportFrom(file, out string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if r.Cfg == nil {
		return fmt.Errorf("%s: no configuration saved", file)
	}
	return writeReport(&r, out)
}

// build compiles the sidecar (unless -bin) and also a stripped build of the
// release flags, for its size.
func (h *harness) build(ctx context.Context) error {
	if h.cfg.Bin != "" {
		h.bin = h.cfg.Bin
	} else {
		h.bin = filepath.Join(h.tmp, "chronoshub-sidecar")
		h.logf("go build -o %s ./sidecar/cmd/chronoshub-sidecar", h.bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.bin, "./sidecar/cmd/chronoshub-sidecar")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	fi, err := os.Stat(h.bin)
	if err != nil {
		return err
	}
	h.res.BinSize = fi.Size()
	stripped := filepath.Join(h.tmp, "chronoshub-sidecar-stripped")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", stripped, "./sidecar/cmd/chronoshub-sidecar")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		h.logf("stripped build failed (size not reported): %v %s", err, out)
	} else if fi, err := os.Stat(stripped); err == nil {
		h.res.BinSizeStripped = fi.Size()
	}
	return nil
}

// dataDir returns a new data directory under the temporary directory.
func (h *harness) dataDir(name string) string {
	return filepath.Join(h.tmp, fmt.Sprintf("data-%s-%d", name, h.nextRun.Add(1)))
}

// ingestN posts n webhooks to url with senders keep-alive connections and
// returns how long it took.
func (h *harness) ingestN(ctx context.Context, url string, n int) (time.Duration, error) {
	client := webhookClient(h.pool, true, h.cfg.Senders)
	defer client.CloseIdleConnections()
	t0 := time.Now()
	failed, lastErr := forN(ctx, h.cfg.Senders, n, func(ctx context.Context) error {
		return postWebhook(ctx, client, url, makePayload(0, time.Now()))
	})
	if failed > 0 {
		return 0, fmt.Errorf("%d of %d webhooks failed, last: %v", failed, n, lastErr)
	}
	return time.Since(t0), ctx.Err()
}

// machine describes where the benchmark ran.
type machine struct {
	CPUs, CPUModel, Memory, GoVersion, Kernel, OS string
	GOMAXPROCS                                    int
	// LoadBefore and LoadAfter are /proc/loadavg's 1-minute load before and
	// after the run: above 0 before the run, something else was using the
	// CPUs.
	LoadBefore, LoadAfter string
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func describeMachine(ctx context.Context) machine {
	m := machine{GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if out, err := exec.CommandContext(ctx, "nproc").Output(); err == nil {
		m.CPUs = strings.TrimSpace(string(out))
	}
	m.CPUModel, _ = procField("/proc/cpuinfo", "model name")
	if v, err := procField("/proc/meminfo", "MemTotal"); err == nil {
		var kb int64
		fmt.Sscan(v, &kb)
		m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file such as /proc/meminfo, trimmed.
func procField(file, key string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in %s", key, file)
}

// directClient is the keep-alive client of the direct SendEvent baseline:
// Go's default transport, as the sidecar's ChronosHub client uses, but with
// an idle connection per caller so that it never reconnects.
func directClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}
