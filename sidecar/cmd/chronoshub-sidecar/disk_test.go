package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/health/grpc_health_v1"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

// tmpfs mounts a small tmpfs at a new directory for the test. Mounting needs
// root (CI runs as root); where it cannot, the test fails saying so rather
// than skipping silently.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs (the full-disk tests need root, as in CI): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file, dir/filler, that takes all free space of dir.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			return path
		}
	}
}

// TestDiskFull fills the data dir's file system, or makes it read-only,
// under a running sidecar:
// webhooks get 503 (never 2xx), readiness goes false at once and liveness
// after CHRONOSHUB_STORE_FAILURE_LIMIT, so that an orchestrator restarts it; after space
// returns and the restart, webhooks are stored again and every event ever
// answered 2xx is delivered.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		break_, heal func(t *testing.T, dir string)
	}{
		{"full", func(t *testing.T, dir string) { fill(t, dir) }, func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testDiskTrouble(t, tt.break_, tt.heal) })
	}
}

// TestReadOnlyDataDir starts the sidecar on a read-only file system: it
// refuses to start, saying why, rather than taking webhooks it cannot store.
func TestReadOnlyDataDir(t *testing.T) {
	t.Parallel()
	dir := tmpfs(t, "8m")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	remount(t, dir, "ro")
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	env["CHRONOSHUB_DATA_DIR"] = filepath.Join(dir, "data")
	stderr := newCapture()
	err := run(t.Context(), []string{"serve"}, func(k string) string { return env[k] }, newCapture(), stderr)
	if err == nil {
		t.Fatal("serve on a read-only data dir returned nil")
	}
	if !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("serve on a read-only data dir = %v, want it to say the data dir is not writable", err)
	}
	if strings.Contains(stderr.String(), `"msg":"ready"`) {
		t.Fatal("the sidecar became ready on a read-only data dir")
	}
}

func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", mode, dir, err, out)
	}
}

func testDiskTrouble(t *testing.T, breakDisk, healDisk func(t *testing.T, dir string)) {
	dataDir := tmpfs(t, "64m")
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["CHRONOSHUB_DATA_DIR"] = filepath.Join(dataDir, "data")
	const failureLimit = 2 * time.Second
	env["CHRONOSHUB_STORE_FAILURE_LIMIT"] = failureLimit.String()
	env["CHRONOSHUB_WEBHOOK_STORE_TIMEOUT"] = "1s"
	p := startProcess(t, env)
	a := p.ready(t)
	payload := `{"pad":"` + strings.Repeat("x", 4000) + `"}`
	var accepted []string
	send := func(a sidecar.Addrs) int {
		id := uuid.NewString()
		st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", payload, id)
		if st/100 == 2 {
			accepted = append(accepted, id)
		}
		return st
	}
	if st := send(a); st != http.StatusOK {
		t.Fatalf("webhook before the disk is full = %d", st)
	}

	breakDisk(t, dataDir)
	for i := range 3 {
		if st := send(a); st != http.StatusServiceUnavailable && st != http.StatusOK {
			t.Fatalf("webhook %d with the disk full = %d, want 503", i, st)
		}
	}
	if st, body := httpGet(t, "http://"+a.Admin+"/readyz"); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the disk full = %d %s, want 503", st, body)
	}
	// gRPC health follows the same store health as /readyz.
	_, conn := grpcClient(t, a.GRPC)
	hc := grpc_health_v1.NewHealthClient(conn)
	hdeadline := time.Now().Add(10 * time.Second)
	for {
		res, err := hc.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{})
		if err == nil && res.GetStatus() == grpc_health_v1.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(hdeadline) {
			t.Fatalf("gRPC health with the disk full = %v, %v; want NOT_SERVING", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(failureLimit + 30*time.Second)
	for {
		st, body := httpGet(t, "http://"+a.Admin+"/healthz")
		if st == http.StatusServiceUnavailable && strings.Contains(body, "event store failing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d %q after the store failed for %s", st, body, failureLimit)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Space returns; the orchestrator restarts the unhealthy sidecar.
	healDisk(t, dataDir)
	p.kill(t)
	p = startProcess(t, env)
	a = p.ready(t)
	if st := send(a); st != http.StatusOK {
		t.Fatalf("webhook after space returned and a restart = %d", st)
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	stream, err := grpcc.StreamEvents(t.Context(), &sidecarv1.StreamEventsRequest{Subscription: "disk"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < len(accepted) {
		got[recvEvent(t, stream).GetId()] = true
	}
	for _, id := range accepted {
		if !got[id] {
			t.Fatalf("accepted event %s not delivered", id)
		}
	}
}
