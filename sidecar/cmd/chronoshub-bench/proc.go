package main

import (
	"bufio"
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

// sidecarProc is the chronoshub-sidecar binary running "serve".
type sidecarProc struct {
	cmd     *exec.Cmd
	log     *logWatch
	dataDir string
	exited  chan struct{}

	Webhook, GRPC, Admin string
	// Startup is the time from exec to the first 200 from /readyz.
	Startup time.Duration
}

// sidecarEnv is the serve configuration of one sidecar process.
type sidecarEnv struct {
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
func (h *harness) startSidecar(ctx context.Context, e sidecarEnv) (*sidecarProc, error) {
	admin, err := freePort()
	if err != nil {
		return nil, err
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
	for k, v := range env {
		if v == "" { // unset, such as the data dir and sync with an external NATS
			delete(env, k)
		}
	}
	cmd := exec.Command(h.bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &sidecarProc{cmd: cmd, log: newLogWatch(), dataDir: e.DataDir, exited: make(chan struct{}), Admin: admin}
	cmd.Stderr, cmd.Stdout = p.log, p.log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if readyz(ctx, client, admin) {
			p.Startup = time.Since(start)
			break
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("sidecar exited before ready:\n%s", p.log.tail())
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("sidecar not ready after 90s:\n%s", p.log.tail())
		}
	}
	line, err := p.log.waitReady(ctx, 10*time.Second)
	if err != nil {
		p.kill()
		return nil, err
	}
	p.Webhook, p.GRPC = line.Webhook, line.GRPC
	return p, nil
}

func readyz(ctx context.Context, c *http.Client, admin string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
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

// stop asks the sidecar to shut down (SIGTERM) and waits, killing it after
// 15 s.
func (p *sidecarProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *sidecarProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// rss returns the process's resident set size from /proc/<pid>/status.
func (p *sidecarProc) rss() (int64, error) { return rssOf(p.cmd.Process.Pid) }

func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

// sampleRSS samples the process's RSS every 50 ms until stop is closed and
// returns the peak.
func (p *sidecarProc) sampleRSS(stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := p.rss(); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// readyLine is the sidecar's {"msg":"ready",…} log line.
type readyLine struct {
	Msg     string `json:"msg"`
	Webhook string `json:"webhook_addr"`
	GRPC    string `json:"grpc_addr"`
}

// logWatch keeps the tail of a process's output and finds its ready line.
type logWatch struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	part  []byte
	ready *readyLine
	wake  chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{wake: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.buf.Len() > 256<<10 {
		tail := bytes.Clone(w.buf.Bytes()[w.buf.Len()-64<<10:])
		w.buf.Reset()
		w.buf.Write(tail)
	}
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		var l readyLine
		if w.ready == nil && json.Unmarshal(w.part[:i], &l) == nil && l.Msg == "ready" {
			w.ready = &l
			close(w.wake)
		}
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

func (w *logWatch) waitReady(ctx context.Context, timeout time.Duration) (readyLine, error) {
	select {
	case <-w.wake:
	case <-ctx.Done():
		return readyLine{}, ctx.Err()
	case <-time.After(timeout):
		return readyLine{}, fmt.Errorf("no ready log line:\n%s", w.tail())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return *w.ready, nil
}

// tail returns the last few KiB of output.
func (w *logWatch) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf.Bytes()
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

// child is one of the harness's own child processes (see child.go).
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	Addr   string
	GRPC   string // the minimal pipeline's or forwarder's gRPC address
	exited chan error
}

// startChild re-executes this program in a child mode and waits for its
// address.
func (h *harness) startChild(mode string, args ...string) (*child, error) {
	cmd := exec.Command(h.self, append([]string{mode}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, exited: make(chan error, 1)}
	rd := bufio.NewReader(stdout)
	for c.Addr == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("%s: %w: %s", mode, err, stderr.String())
		}
		if v, ok := strings.CutPrefix(line, "grpc "); ok {
			c.GRPC = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "addr "); ok {
			c.Addr = strings.TrimSpace(v)
		}
	}
	go func() {
		_, _ = io.Copy(io.Discard, rd)
		c.exited <- cmd.Wait()
	}()
	return c, nil
}

// stop closes the child's stdin and waits for it to exit.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case err := <-c.exited:
		return err
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		return <-c.exited
	}
}

func (c *child) rss() (int64, error) { return rssOf(c.cmd.Process.Pid) }
