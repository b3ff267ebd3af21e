package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

// TestLoggerDurations checks that durations read 20s in both formats, at
// the top level, in groups and in With attributes.
func TestLoggerDurations(t *testing.T) {
	t.Parallel()
	log := func(format config.LogFormat) string {
		var buf bytes.Buffer
		l := newFormatLogger(&buf, format, slog.LevelInfo).With("grace", 20*time.Second)
		l.Info("stopping", "waited", 1500*time.Millisecond, slog.Group("retry", "backoff", 2*time.Minute), "any", any(time.Hour))
		return buf.String()
	}

	var m map[string]any
	out := log(config.LogJSON)
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("JSON log line %q: %v", out, err)
	}
	retry, _ := m["retry"].(map[string]any)
	if m["grace"] != "20s" || m["waited"] != "1.5s" || retry["backoff"] != "2m0s" || m["any"] != "1h0m0s" {
		t.Errorf("JSON durations = %v %v %v %v, want 20s 1.5s 2m0s 1h0m0s: %s", m["grace"], m["waited"], retry["backoff"], m["any"], out)
	}

	out = log(config.LogText)
	for _, want := range []string{"level=INFO", "msg=stopping", "grace=20s", "waited=1.5s", "retry.backoff=2m0s", "any=1h0m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("text log line lacks %s: %s", want, out)
		}
	}
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("text log line is JSON: %s", out)
	}
}

func TestLoggerLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := newFormatLogger(&buf, config.LogText, slog.LevelWarn)
	l.Info("hidden")
	l.Warn("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Errorf("warn-level log = %q, want only the warning", out)
	}
}

func TestWarnUnknownVariables(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	warnUnknownVariables(newLogger(&buf, slog.LevelInfo), []string{
		"CHRONOSHUB_WEBHOOK_SECERT=whsec_do_not_log", "CHRONOSHUB_BASE_URL=https://x", "OTEL_SERVICE_NAME=x", "CHRONOSHUB_NOTHING_LIKE_IT=1",
	})
	out := buf.String()
	if strings.Contains(out, "whsec_do_not_log") {
		t.Fatalf("the warning logged a value: %s", out)
	}
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 ||
		lines[0]["variable"] != "CHRONOSHUB_NOTHING_LIKE_IT" || lines[0]["did_you_mean"] != nil ||
		lines[1]["variable"] != "CHRONOSHUB_WEBHOOK_SECERT" || lines[1]["did_you_mean"] != "CHRONOSHUB_WEBHOOK_SECRET" || lines[1]["level"] != "WARN" {
		t.Fatalf("warnings = %s, want one per unknown variable, sorted, with the closest name", out)
	}
}
