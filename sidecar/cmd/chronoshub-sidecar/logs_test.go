package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// waitExit waits at most 60s for the process to exit after a signal.
func (p *process) waitExit(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit within 60s; output:\n%s", p.stderr.String())
	}
}

// TestServeLogsOnlyJSON runs the binary with a REST and a gRPC stream open,
// each holding an event, and a REST request whose Content-Type does not
// parse, then stops it with SIGTERM: every line on stderr is one JSON object
// (before, grpc-gateway wrote the Content-Type failure as plain text through
// grpclog's default logger, with the client's header verbatim), and the
// streams that the shutdown ended are logged at Info, not ERROR (before:
// "REST stream failed" at ERROR).
func TestServeLogsOnlyJSON(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	p := startProcess(t, env)
	a := p.ready(t)
	if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"m":1}`, uuid.NewString()); st != http.StatusOK {
		t.Fatalf("webhook = %d", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	grpcc, _ := grpcClient(t, a.GRPC)
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "grpc-app"})
	if err != nil {
		t.Fatal(err)
	}
	recvEvent(t, stream)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTP+"/v1/events:stream?subscription=rest-app", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan map[string]any, 10)
	go ndjson(resp.Body, lines)
	select {
	case <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("no event on the REST stream within 30s")
	}

	const badType = `text/plain; =INJECTED`
	bad, _ := http.NewRequest(http.MethodGet, "http://"+a.HTTP+"/v1/subscriptions", nil)
	bad.Header.Set("Content-Type", badType)
	if resp, err := http.DefaultClient.Do(bad); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	p.stderr.waitText(t, "Failed to parse Content-Type")

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t)
	out := p.stderr.String()
	var streamEnd bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("a line of stderr is not a JSON object: %q", line)
			continue
		}
		if l["level"] == "ERROR" {
			t.Errorf("a normal shutdown logged an ERROR: %s", line)
		}
		if l["msg"] == "REST stream failed" {
			streamEnd = l["level"] == "INFO"
		}
	}
	if !streamEnd {
		t.Errorf("no INFO line for the REST stream the shutdown ended; output:\n%s", out)
	}
}

// TestServeSIGHUPReloadsCredentials runs the binary with the API key in a
// file polled only once an hour, changes the file and sends SIGHUP: the key
// is re-read at once, serve keeps running and ready, and SIGTERM then stops
// it normally. Before, SIGHUP killed serve at once (exit status 129) with no
// drain.
func TestServeSIGHUPReloadsCredentials(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	keyFile := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte(testAPIKey), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(env, "CHRONOSHUB_API_KEY")
	env["CHRONOSHUB_API_KEY_FILE"] = keyFile
	env["CHRONOSHUB_CREDENTIALS_POLL_INTERVAL"] = "1h"
	p := startProcess(t, env)
	a := p.ready(t)
	if err := os.WriteFile(keyFile, []byte("sk_rotated_by_the_operator"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := p.stderr.waitLine(t, "credential reloaded")
	if l["credential"] != "api_key" {
		t.Errorf("reload line = %v, want the api_key", l)
	}
	if st, body := httpGet(t, "http://"+a.Admin+"/readyz"); st != http.StatusOK {
		t.Errorf("/readyz after SIGHUP = %d %s, want 200", st, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGHUP then SIGTERM = %d, want 0; output:\n%s", code, p.stderr.String())
	}
	if out := p.stderr.String(); strings.Contains(out, "sk_rotated_by_the_operator") {
		t.Errorf("the log holds the new API key:\n%s", out)
	}
}

// TestDevSIGHUPStops runs the dev binary and sends it SIGHUP, as a closed
// terminal does: the playground drains and exits 0, logging "stopped".
// Before, SIGHUP killed it at once.
func TestDevSIGHUPStops(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary(t), "dev", "--dir", filepath.Join(t.TempDir(), ".chronoshub-dev"),
		"--webhook-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	p := &process{cmd: cmd, stderr: newCapture()}
	cmd.Stderr, cmd.Stdout = p.stderr, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p.ready(t)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t)
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("dev exit status after SIGHUP = %d, want 0; output:\n%s", code, p.stderr.String())
	}
	p.stderr.waitLine(t, "stopped")
}
