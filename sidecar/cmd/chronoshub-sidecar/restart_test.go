package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds chronoshub-sidecar once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chronoshub-sidecar-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chronoshub-sidecar")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("go build: %s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build binary: %v", buildErr)
	}
	return binPath
}

// process is the binary running serve.
type process struct {
	cmd    *exec.Cmd
	stderr *capture
}

func startProcess(t *testing.T, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, stderr: newCapture()}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

func (p *process) ready(t *testing.T) Addrs {
	t.Helper()
	l := p.stderr.waitLine(t, "ready")
	return Addrs{Webhook: l["webhook_addr"].(string), GRPC: l["grpc_addr"].(string), HTTP: l["http_addr"].(string), Admin: l["admin_addr"].(string)}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// waitConsumerFlush waits until JetStream has written the subscription's
// consumer state (its acks) to disk after since.
func waitConsumerFlush(t *testing.T, dataDir, sub string, since time.Time) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dataDir, "jetstream", "*", "streams", "CHRONOSHUB_EVENTS", "obs", sub, "o.dat"))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if len(matches) == 0 {
			matches, _ = filepath.Glob(filepath.Join(dataDir, "jetstream", "*", "streams", "CHRONOSHUB_EVENTS", "obs", sub, "o.dat"))
		}
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.ModTime().After(since) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("consumer state of %s not written within 20s (files %v)", sub, matches)
}

// TestKillRestart runs the built binary, kills it with SIGKILL after some
// events were acked and others not, and restarts it on the same data dir:
// acked events stay acked, unacked ones come back, a repeated webhook stores
// nothing.
func TestKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["CHRONOSHUB_ACK_WAIT"] = "2s"
	dataDir := env["CHRONOSHUB_DATA_DIR"]

	p := startProcess(t, env)
	a := p.ready(t)
	url := "https://" + a.Webhook + "/webhook"
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = uuid.NewString()
		if st := post(t, client, url, testSecret, "manuscript.submitted", `{"n":`+string(rune('0'+i))+`,"t":"é𝔸"}`, ids[i]); st != http.StatusOK {
			t.Fatalf("webhook %d = %d", i, st)
		}
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if got := recvEvent(t, s); got.GetId() != ids[i] {
			t.Fatalf("event %d = %s, want %s", i, got.GetId(), ids[i])
		}
	}
	ackedAt := time.Now()
	if resp, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: ids[:2]}); err != nil || len(resp.GetEventIds()) != 2 {
		t.Fatalf("AckEvents = %v, %v", resp, err)
	}
	waitConsumerFlush(t, dataDir, "app", ackedAt)
	p.kill(t)
	cancel()

	p = startProcess(t, env)
	a = p.ready(t)
	url = "https://" + a.Webhook + "/webhook"
	if st := post(t, client, url, testSecret, "manuscript.submitted", `{"n":0,"t":"é𝔸"}`, ids[0]); st/100 != 2 {
		t.Fatalf("repeated webhook after restart = %d, want 2xx", st)
	}
	grpcc, _ = grpcClient(t, a.GRPC)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	s, err = grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for range 2 {
		e := recvEvent(t, s)
		got[e.GetId()] = e.GetAttempt()
	}
	for _, id := range ids[2:] {
		if got[id] < 2 {
			t.Fatalf("after restart got %v, want unacked %s again with attempt ≥ 2", got, id)
		}
	}
	if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: ids[2:]}); err != nil {
		t.Fatal(err)
	}
	fresh := uuid.NewString()
	if st := post(t, client, url, testSecret, "manuscript.submitted", `{"fresh":true}`, fresh); st != http.StatusOK {
		t.Fatalf("new webhook = %d", st)
	}
	if e := recvEvent(t, s); e.GetId() != fresh {
		t.Fatalf("next event = %s (attempt %d), want the new %s: an acked or repeated event came back", e.GetId(), e.GetAttempt(), fresh)
	}
	if out := p.stderr.String(); strings.Contains(out, testSecret) || strings.Contains(out, testAPIKey) {
		t.Fatal("the log contains a secret")
	}
}
