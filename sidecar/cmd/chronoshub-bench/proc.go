package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the harness started: the chronoshub-sidecar binary
// running "serve", or this program in its baseline child mode (child.go).
// Both log a JSON {"msg":"ready",…} line with their addresses once they
// listen; a child also stops when its stdin closes (as when the harness
// dies).
type proc struct {
	cmd    *exec.Cmd
	log    *logWatch
	stdin  io.Closer
	exited chan struct{}
	ownDir string // a data directory to remove on close

	// Webhook and GRPC are the addresses of the ready line (GRPC is the
	// minimal pipeline's or forwarder's in a child), Admin the sidecar's.
	Webhook, GRPC, Admin string
	// Startup is, for a sidecar, the time from exec to the first 200 from
	// /readyz.
	Startup time.Duration
}

// startProc starts cmd with its output kept by a logWatch.
func startProc(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, log: newLogWatch(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// url is the process's webhook URL.
func (p *proc) url() string { return "https://" + p.Webhook + "/webhook" }

// sidecarEnv is the serve configuration of one sidecar process.
type sidecarEnv struct {
	// Name, if set, is that of a new data directory under the temporary
	// one, removed by close; else DataDir is the data directory.
	Name    string
	DataDir string
	Sync    string // "1s" or "always"
	// BaseURL is ChronosHub's; empty means the harness's emulator.
	BaseURL string
	// Extra are more CHRONOSHUB_… settings, as NAME=value.
	Extra []string
}

// startSidecar execs the binary with env configuration on loopback ports
// and waits until /readyz answers 200. The admin port is picked first so
// that readiness can be polled from the moment of exec.
func (h *harness) startSidecar(ctx context.Context, e sidecarEnv) (*proc, error) {
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	if e.Name != "" {
		e.DataDir = h.dataDir(e.Name)
	}
	env := map[string]string{
		"CHRONOSHUB_BASE_URL":       cmp.Or(e.BaseURL, h.emuURL),
		"CHRONOSHUB_API_KEY":        benchAPIKey,
		"CHRONOSHUB_WEBHOOK_SECRET": benchSecret,
		"CHRONOSHUB_TLS_CERT_FILE":  h.certFile,
		"CHRONOSHUB_TLS_KEY_FILE":   h.keyFile,
		"CHRONOSHUB_WEBHOOK_ADDR":   "127.0.0.1:0",
		"CHRONOSHUB_GRPC_ADDR":      "127.0.0.1:0",
		"CHRONOSHUB_HTTP_ADDR":      "127.0.0.1:0",
		"CHRONOSHUB_ADMIN_ADDR":     admin,
		"CHRONOSHUB_DATA_DIR":       e.DataDir,
		"CHRONOSHUB_SYNC":           e.Sync,
		"CHRONOSHUB_SHUTDOWN_GRACE": "1s",
		// The profiler, on the loopback admin listener: the profile section
		// reads the binary's own profiles; unused, it costs nothing.
		"CHRONOSHUB_PPROF": "loopback",
	}
	for _, kv := range e.Extra {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	cmd := exec.Command(h.bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		if v != "" { // unset, such as the data dir and sync with an external NATS
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	start := time.Now()
	p, err := startProc(cmd)
	if err != nil {
		return nil, err
	}
	p.Admin = admin
	if e.Name != "" {
		p.ownDir = e.DataDir
	}
	err = poll(ctx, 90*time.Second, 2*time.Millisecond, func() (bool, error) {
		select {
		case <-p.exited:
			return false, errors.New("sidecar exited before ready")
		default:
			return readyz(ctx, admin), nil
		}
	})
	p.Startup = time.Since(start)
	if err == nil {
		err = p.waitReady(ctx)
	}
	if err != nil {
		p.kill()
		os.RemoveAll(p.ownDir)
		return nil, fmt.Errorf("start sidecar: %w:\n%s", err, p.log.tail())
	}
	return p, nil
}

// startChild re-executes this program in its baseline child mode with
// the bench certificate and args, and waits for its ready line.
func (h *harness) startChild(ctx context.Context, args ...string) (*proc, error) {
	p, err := startProc(exec.Command(h.self, append([]string{childBaseline, "-cert", h.certFile, "-key", h.keyFile}, args...)...))
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx); err != nil {
		p.kill()
		return nil, fmt.Errorf("start baseline: %w:\n%s", err, p.log.tail())
	}
	return p, nil
}

func readyz(ctx context.Context, admin string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := adminGet(ctx, admin, "/readyz")
	return err == nil
}

// adminGet GETs path from the admin listener at addr and returns the body
// of a 200.
func adminGet(ctx context.Context, addr, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %.512s", path, resp.Status, b)
	}
	return b, err
}

// freePort returns a loopback address that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stop asks the process to shut down (SIGTERM, and stdin closed) and
// waits, killing it after 20 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// close stops the process and removes the data directory it was started
// with by name.
func (p *proc) close() {
	p.stop()
	os.RemoveAll(p.ownDir) // "" removes nothing
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// rss returns the process's resident set size from /proc/<pid>/status.
func (p *proc) rss() (int64, error) {
	v, err := procField("/proc/"+strconv.Itoa(p.cmd.Process.Pid)+"/status", "VmRSS")
	kb, ok := strings.CutSuffix(v, " kB")
	if err != nil || !ok {
		return 0, fmt.Errorf("VmRSS %q: %v", v, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
	return n << 10, err
}

// peakRSS runs f while sampling the process's RSS every 50 ms and returns
// the peak, in bytes.
func (p *proc) peakRSS(f func()) float64 {
	done := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := p.rss(); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	return float64(peak)
}

// poll calls done every interval until it says true or fails, or until
// timeout has passed (errNotReceived).
func poll(ctx context.Context, timeout, interval time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := done(); ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errNotReceived
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// readyLine is the {"msg":"ready",…} log line of a sidecar or child.
type readyLine struct {
	Msg     string `json:"msg"`
	Webhook string `json:"webhook_addr"`
	GRPC    string `json:"grpc_addr"`
}

// logWatch keeps the tail of a process's output and finds its ready line.
type logWatch struct {
	mu    sync.Mutex
	out   []byte // the output's last 64 KiB or more
	ready *readyLine
	wake  chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{wake: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := bytes.LastIndexByte(w.out, '\n') + 1 // the start of the line being written
	w.out = append(w.out, p...)
	for i := bytes.IndexByte(w.out[line:], '\n'); i >= 0 && w.ready == nil; i = bytes.IndexByte(w.out[line:], '\n') {
		var l readyLine
		if json.Unmarshal(w.out[line:line+i], &l) == nil && l.Msg == "ready" {
			w.ready = &l
			close(w.wake)
		}
		line += i + 1
	}
	if len(w.out) > 256<<10 {
		w.out = bytes.Clone(w.out[len(w.out)-64<<10:])
	}
	return len(p), nil
}

// waitReady waits up to 10 s for the ready line and takes its addresses.
func (p *proc) waitReady(ctx context.Context) error {
	select {
	case <-p.log.wake:
	case <-p.exited:
		return errors.New("exited before its ready line")
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		return errors.New("no ready line in 10s")
	}
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	p.Webhook, p.GRPC = p.log.ready.Webhook, p.log.ready.GRPC
	return nil
}

// tail returns the last few KiB of output.
func (w *logWatch) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.out[max(len(w.out)-4<<10, 0):])
}
