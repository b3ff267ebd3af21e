package main

import (
	"context"
	"encoding/json"
	"net/http"
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
