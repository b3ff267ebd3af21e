package tracing

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestErrorHandler: the SDK's errors reach the sidecar's log, at most one a
// minute, the next one saying how many were left out.
func TestErrorHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := newErrorHandler(slog.New(slog.NewJSONHandler(&buf, nil)), func() time.Time { return now })
	h.Handle(errors.New("export failed: connection refused"))
	h.Handle(errors.New("export failed again"))
	now = now.Add(30 * time.Second)
	h.Handle(errors.New("export failed a third time"))
	now = now.Add(31 * time.Second)
	h.Handle(errors.New("export failed: deadline exceeded"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`"level":"WARN","msg":"tracing","err":"export failed: connection refused"}`,
		`"msg":"tracing","err":"export failed: deadline exceeded","errors_not_logged":2}`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %s, want it to contain %s", i+1, lines[i], want)
		}
	}
}
