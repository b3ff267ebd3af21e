package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

// capture is an io.Writer that keeps everything written to it and lets a
// test wait for a JSON log line.
type capture struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wake  chan struct{}
	lines []map[string]any
	part  []byte
}

func newCapture() *capture { return &capture{wake: make(chan struct{})} }

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	c.part = append(c.part, p...)
	for {
		i := bytes.IndexByte(c.part, '\n')
		if i < 0 {
			break
		}
		var m map[string]any
		if json.Unmarshal(c.part[:i], &m) == nil {
			c.lines = append(c.lines, m)
		}
		c.part = c.part[i+1:]
	}
	close(c.wake)
	c.wake = make(chan struct{})
	return len(p), nil
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor returns the first JSON line whose msg is msg, or the first text
// for which match is true, failing after 30s.
func (c *capture) waitLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if l["msg"] == msg {
				c.mu.Unlock()
				return l
			}
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no log line %q within 30s; output:\n%s", msg, c.String())
		}
	}
}

// waitText waits until the output contains s.
func (c *capture) waitText(t *testing.T, s string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		out := c.buf.String()
		wake := c.wake
		c.mu.Unlock()
		if strings.Contains(out, s) {
			return out
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("output has no %q within 30s:\n%s", s, out)
		}
	}
}

// running is run() started in the background.
type running struct {
	stdout, stderr *capture
	cancel         context.CancelFunc
	done           chan error
}

// start runs run(args) with env until the test ends.
func start(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stdout: newCapture(), stderr: newCapture(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, args, func(k string) string { return env[k] }, r.stdout, r.stderr) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels run, as SIGTERM would, and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return within 60s of cancellation")
		return nil
	}
}

// ready waits for the "ready" log line and returns the bound addresses.
func (r *running) ready(t *testing.T) sidecar.Addrs {
	t.Helper()
	return addrsOf(r.stderr.waitLine(t, "ready"))
}

// addrsOf reads the bound addresses from the "ready" log line.
func addrsOf(l map[string]any) sidecar.Addrs {
	return sidecar.Addrs{Webhook: l["webhook_addr"].(string), GRPC: l["grpc_addr"].(string), HTTP: l["http_addr"].(string), Admin: l["admin_addr"].(string)}
}

// tlsFiles writes a self-signed certificate for loopback and returns its
// files and a client that trusts it.
func tlsFiles(t *testing.T) (certFile, keyFile string, client *http.Client) {
	t.Helper()
	certFile, keyFile, err := devcert.Generate([]string{"localhost", "127.0.0.1"}, filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	client, err = webhookClient(certFile, false)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, client
}

// grpcDial connects to an app-facing gRPC address (host:port or unix://).
func grpcDial(addr string) (*grpc.ClientConn, error) {
	target := addr
	if !strings.HasPrefix(addr, "unix://") {
		target = "passthrough:///" + addr
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// grpcClient dials the app-facing gRPC address for the rest of the test.
func grpcClient(t *testing.T, addr string) (sidecarv1.EventServiceClient, *grpc.ClientConn) {
	t.Helper()
	conn, err := grpcDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return sidecarv1.NewEventServiceClient(conn), conn
}

// post sends one signed webhook and returns its status.
func post(t *testing.T, client *http.Client, url, secret, eventType, payload, id string) int {
	t.Helper()
	status, body, err := emulator.SendWebhook(context.Background(), client, url, []byte(secret), eventType, []byte(payload), id, time.Now())
	if err != nil {
		t.Fatalf("webhook %s: %v", id, err)
	}
	_ = body
	return status
}

// sendSigned posts one signed webhook of a small event, reporting errors
// instead of failing, for goroutines.
func sendSigned(client *http.Client, url, secret, id string) (int, []byte, error) {
	return emulator.SendWebhook(context.Background(), client, url, []byte(secret), "manuscript.submitted", []byte(`{"load":true}`), id, time.Now())
}

// recvEvent returns the next event of a stream, failing after 20s.
func recvEvent(t *testing.T, s grpc.ServerStreamingClient[sidecarv1.StreamEventsResponse]) *sidecarv1.Event {
	t.Helper()
	type result struct {
		r   *sidecarv1.StreamEventsResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := s.Recv()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("Recv = %v", res.err)
		}
		return res.r.GetEvent()
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
		return nil
	}
}

// ndjson reads NDJSON lines from r into ch until r ends.
func ndjson(r io.Reader, ch chan<- map[string]any) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			ch <- m
		}
	}
	close(ch)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func httpPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
