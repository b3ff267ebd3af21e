package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built binary with args and only env (and PATH, HOME)
// until it exits, at most 60s, and returns its stderr and exit status.
func runBinary(t *testing.T, args []string, env map[string]string) (stderr string, status int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out strings.Builder
	cmd.Stderr = &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("%v: %v; stderr:\n%s", args, err, out.String())
		return "", 0
	}
}

// TestServeReportsEveryProblemAtOnce runs the binary with an invalid log
// format, an invalid OpenTelemetry sampler and a misspelt variable that
// leaves the webhook secret unset: one run reports all of them. Before, the
// sampler was reported only after a restart with the log format fixed, and
// the misspelling was warned about only when the configuration was valid,
// so never when it was the cause.
func TestServeReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	delete(env, "CHRONOSHUB_WEBHOOK_SECRET")
	env["CHRONOSHUB_WEBHOOK_SECERT"] = testSecret
	env["CHRONOSHUB_LOG_FORMAT"] = "yaml"
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4317"
	env["OTEL_TRACES_SAMPLER"] = "bogus"
	stderr, status := runBinary(t, []string{"serve"}, env)
	if status != 1 {
		t.Errorf("exit status = %d, want 1; stderr:\n%s", status, stderr)
	}
	for _, want := range []string{
		"CHRONOSHUB_LOG_FORMAT",
		"OTEL_TRACES_SAMPLER",
		"CHRONOSHUB_WEBHOOK_SECRET or CHRONOSHUB_WEBHOOK_SECRET_FILE (--webhook-secret-file): required to verify webhooks",
		"CHRONOSHUB_WEBHOOK_SECERT is not a chronoshub-sidecar setting; did you mean CHRONOSHUB_WEBHOOK_SECRET?",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, testSecret) {
		t.Errorf("stderr holds the misspelt variable's value:\n%s", stderr)
	}
	if strings.Contains(stderr, `"msg":"starting"`) {
		t.Errorf("serve started with an invalid configuration:\n%s", stderr)
	}
}

// TestServeStopErrorIsJSON runs the binary on a webhook address that is
// taken: the error that stops it, after the JSON "starting" line, is a JSON
// log line too (before, main printed it as plain text), and every line on
// stderr is one JSON object.
func TestServeStopErrorIsJSON(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	env["CHRONOSHUB_WEBHOOK_ADDR"] = taken.Addr().String()
	stderr, status := runBinary(t, []string{"serve"}, env)
	if status != 1 {
		t.Errorf("exit status = %d, want 1; stderr:\n%s", status, stderr)
	}
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		last = nil
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Errorf("a line of stderr is not a JSON object: %q", line)
		}
	}
	if last["level"] != "ERROR" || last["msg"] != "stopped" || !strings.Contains(last["err"].(string), "CHRONOSHUB_WEBHOOK_ADDR") {
		t.Errorf("last line = %v, want the ERROR that stopped serve, naming CHRONOSHUB_WEBHOOK_ADDR", last)
	}
}
