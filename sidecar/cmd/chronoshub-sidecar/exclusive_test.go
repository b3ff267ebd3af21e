package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/datadir"
)

// TestDataDirExclusive starts a second serve, as a process, on the data
// directory of a running one: it refuses at once, naming the directory and
// the process that holds it. After the holder is killed with SIGKILL, a new
// serve starts on the directory without waiting.
func TestDataDirExclusive(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	first := startProcess(t, env)
	first.ready(t)

	second := startProcess(t, env)
	done := make(chan error, 1)
	go func() { done <- second.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a second serve on the same data dir exited 0")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a second serve on the same data dir still runs after 30s:\n%s", second.stderr)
	}
	out := second.stderr.String()
	for _, want := range []string{env["CHRONOSHUB_DATA_DIR"], fmt.Sprintf("process %d", first.cmd.Process.Pid)} {
		if !strings.Contains(out, want) {
			t.Errorf("second serve's error lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"msg":"ready"`) {
		t.Fatal("the second serve became ready")
	}

	first.kill(t)
	third := startProcess(t, env)
	third.ready(t)
}

// TestDevDirExclusive runs two dev playgrounds on one --dir: the second
// refuses before it touches the first one's certificate.
func TestDevDirExclusive(t *testing.T) {
	t.Parallel()
	r, _, _, _, certFile, _, _ := startDev(t)
	before, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(filepath.Dir(certFile))
	err = run(t.Context(), []string{"dev", "--dir", dir,
		"--webhook-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0", "--regenerate"}, nil, newCapture(), newCapture())
	if !errors.Is(err, datadir.ErrLocked) {
		t.Fatalf("a second dev on %s = %v, want ErrLocked", dir, err)
	}
	after, err := os.ReadFile(certFile)
	if err != nil || string(after) != string(before) {
		t.Fatalf("the second dev changed the first one's certificate (%v)", err)
	}
	r.stop(t)
}

// TestDevCredentialsKept runs dev twice on one --dir: the second run reuses
// the first one's secret, API key and certificate, so that a trigger
// command copied from the first run still works; --regenerate replaces
// them.
func TestDevCredentialsKept(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".chronoshub-dev")
	devRun := func(extra ...string) (out string, stop func()) {
		args := append([]string{"dev", "--dir", dir,
			"--webhook-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--admin-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0"}, extra...)
		r := start(t, args, nil)
		r.ready(t)
		return r.stdout.waitText(t, "Ctrl-C stops everything"), func() { r.stop(t) }
	}
	secretOf := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "webhook" && f[1] == "secret" {
				return f[2]
			}
		}
		t.Fatalf("no webhook secret in:\n%s", out)
		return ""
	}
	certPath := filepath.Join(dir, "tls", "tls.crt")

	out1, stop := devRun()
	cert1, _ := os.ReadFile(certPath)
	stop()
	out2, stop := devRun()
	cert2, _ := os.ReadFile(certPath)
	stop()
	if secretOf(out1) != secretOf(out2) || string(cert1) != string(cert2) {
		t.Fatal("a second dev run changed the secret or the certificate")
	}
	if !strings.Contains(out2, "kept from an earlier run") {
		t.Errorf("the second run does not say its credentials are kept:\n%s", out2)
	}
	out3, stop := devRun("--regenerate")
	cert3, _ := os.ReadFile(certPath)
	stop()
	if secretOf(out3) == secretOf(out2) || string(cert3) == string(cert2) {
		t.Fatal("--regenerate kept the secret or the certificate")
	}
}

// devArgs are dev's flags for loopback :0 ports in a new dir.
func devArgs(t *testing.T) []string {
	return []string{"dev", "--dir", filepath.Join(t.TempDir(), ".chronoshub-dev"),
		"--webhook-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0"}
}

// TestDevRunsApp runs "dev -- app": the app sees the playground's addresses,
// can use them, and its exit status is dev's; the playground stops with it.
func TestDevRunsApp(t *testing.T) {
	t.Parallel()
	app := `echo "grpc=$CHRONOSHUB_GRPC_ADDR http=$CHRONOSHUB_HTTP_ADDR"; ` +
		`exec 3<>/dev/tcp/${CHRONOSHUB_HTTP_ADDR%:*}/${CHRONOSHUB_HTTP_ADDR##*:} && echo reached; exit 3`
	r := start(t, append(devArgs(t), "--", "bash", "-c", app), nil)
	a := r.ready(t)
	out := r.stdout.waitText(t, "reached")
	if !strings.Contains(out, "grpc="+a.GRPC+" http="+a.HTTP) {
		t.Errorf("the app saw other addresses than %v:\n%s", a, out)
	}
	select {
	case err := <-r.done:
		r.done <- err
		var code exitCodeError
		if !errors.As(err, &code) || code != 3 {
			t.Fatalf("dev -- app exiting 3 = %v, want exit status 3", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev still runs 30s after its app exited")
	}
	r.stderr.waitLine(t, "stopped")
}

// TestDevStopsApp cancels dev (as a signal does) while its app runs: the app
// gets SIGTERM, and dev returns its status.
func TestDevStopsApp(t *testing.T) {
	t.Parallel()
	r := start(t, append(devArgs(t), "--", "bash", "-c", `trap 'echo got-term; exit 7' TERM; echo waiting; while :; do sleep 0.1; done`), nil)
	r.ready(t)
	r.stdout.waitText(t, "waiting")
	err := r.stop(t)
	var code exitCodeError
	if !errors.As(err, &code) || code != 7 {
		t.Fatalf("dev stopped while the app runs = %v, want the app's status 7", err)
	}
	if !strings.Contains(r.stdout.String(), "got-term") {
		t.Fatal("the app did not get SIGTERM")
	}
}

// TestDevBusyAddresses starts dev with the emulator's and the webhook's
// addresses taken: both are reported at once, each naming its flag.
func TestDevBusyAddresses(t *testing.T) {
	t.Parallel()
	busy1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy1.Close()
	busy2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy2.Close()
	args := devArgs(t)
	for i, a := range args {
		switch a {
		case "--emulator-addr":
			args[i+1] = busy1.Addr().String()
		case "--webhook-addr":
			args[i+1] = busy2.Addr().String()
		}
	}
	err = run(t.Context(), args, nil, newCapture(), newCapture())
	if err == nil {
		t.Fatal("dev on busy addresses returned nil")
	}
	for _, want := range []string{"--emulator-addr", busy1.Addr().String(), "--webhook-addr", busy2.Addr().String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("dev on busy addresses = %q, want it to name %q", err, want)
		}
	}
}
