package tracing

import (
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// errorEvery is the least time between two logged errors of the
// OpenTelemetry SDK: an unreachable collector fails every export batch.
const errorEvery = time.Minute

// newErrorHandler returns an otel.ErrorHandler that logs the SDK's errors (an
// export that failed, a span dropped) through log at Warn, instead of the
// SDK's default of the standard library's log package, which bypasses the
// sidecar's log format. After one error it logs at most one a minute, with
// how many it left out meanwhile.
func newErrorHandler(log *slog.Logger, now func() time.Time) otel.ErrorHandler {
	return &errorHandler{log: log, now: now}
}

type errorHandler struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (h *errorHandler) Handle(err error) {
	h.mu.Lock()
	now := h.now()
	if !h.last.IsZero() && now.Sub(h.last) < errorEvery {
		h.skipped++
		h.mu.Unlock()
		return
	}
	skipped := h.skipped
	h.last, h.skipped = now, 0
	h.mu.Unlock()
	args := []any{"err", err}
	if skipped > 0 {
		args = append(args, "errors_not_logged", skipped)
	}
	h.log.Warn("tracing", args...)
}

// LogErrors makes newErrorHandler(log) the process's handler of the SDK's
// errors.
func LogErrors(log *slog.Logger) { otel.SetErrorHandler(newErrorHandler(log, time.Now)) }
