package main

import (
	"context"
	"fmt"
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
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
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

func (p *process) ready(t *testing.T) sidecar.Addrs {
	t.Helper()
	return addrsOf(p.stderr.waitLine(t, "ready"))
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// waitConsumerFlush waits until JetStream has written the subscription's
// consumer state (its acks) to disk after since, and then written nothing
// more for half a second. JetStream writes the state at most every 100 ms,
// from a copy taken just before the write: a write that ended after since
// may hold a copy taken before the acks (seen in CI: an acknowledged event
// came back after the kill), and the acks' own write then follows within
// about 100 ms.
func waitConsumerFlush(t *testing.T, dataDir, sub string, since time.Time) {
	t.Helper()
	const quiet = 500 * time.Millisecond
	pattern := filepath.Join(dataDir, "jetstream", "*", "streams", "CHRONOSHUB_EVENTS", "obs", sub, "o.dat")
	deadline := time.Now().Add(20 * time.Second)
	var matches []string
	for time.Now().Before(deadline) {
		matches, _ = filepath.Glob(pattern)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.ModTime().After(since) && time.Since(fi.ModTime()) >= quiet {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("consumer state of %s not written and then left alone within 20s (files %v)", sub, matches)
}

// TestKillRestart runs the built binary, kills it with SIGKILL after some
// events were acked and others not, and restarts it on the same data dir:
// acked events stay acked, unacked ones come back, a repeated webhook stores
// nothing.
func TestKillRestart(t *testing.T) {
	t.Parallel()
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
	// Attempts count offers (eventlog's offers record): a first offer is
	// recorded only once it is held past min(ack wait/2, 1 s), so one the
	// sidecar was killed sooner after may come back as attempt 1 — the
	// documented bound of one offer more than CHRONOSHUB_MAX_ATTEMPTS, which
	// eventlog's TestHeldOffersCount covers. What must hold here is that
	// every unacked event comes back.
	for _, id := range ids[2:] {
		if got[id] < 1 {
			t.Fatalf("after restart got %v, want unacked %s again", got, id)
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
	if strings.Contains(p.stderr.String(), "event store damaged") {
		t.Fatal("a restart after SIGKILL reported a damaged store")
	}
}

// TestDamagedStoreReported damages the store's files between two runs: the
// next start reports how many events JetStream dropped while repairing them,
// in the log and in a metric, instead of losing them silently.
func TestDamagedStoreReported(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	for range 40 {
		if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"title":"0123456789012345678901234567890123456789"}`, uuid.NewString()); st != http.StatusOK {
			t.Fatalf("webhook = %d", st)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	blks, _ := filepath.Glob(filepath.Join(env["CHRONOSHUB_DATA_DIR"], "jetstream", "*", "streams", "CHRONOSHUB_EVENTS", "msgs", "*.blk"))
	if len(blks) == 0 {
		t.Fatal("no message block files")
	}
	fi, err := os.Stat(blks[0])
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(blks[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage-garbage-garbage"), fi.Size()/2)
	f.Close()

	r = start(t, []string{"serve"}, env)
	a = r.ready(t)
	line := r.stderr.waitLine(t, "event store damaged: JetStream repaired its files at start by dropping events; they cannot be delivered (ChronosHub does not resend events it got a 2xx for)")
	lost, _ := line["events_lost"].(float64)
	if lost < 1 {
		t.Fatalf("damage report = %v, want events_lost ≥ 1", line)
	}
	if _, text := httpGet(t, "http://"+a.Admin+"/metrics"); !strings.Contains(text, fmt.Sprintf("chronoshub_sidecar_store_events_lost_total %g", lost)) {
		t.Fatalf("metrics lack chronoshub_sidecar_store_events_lost_total %g", lost)
	}
}
