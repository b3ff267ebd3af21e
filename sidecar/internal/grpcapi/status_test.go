package grpcapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStoreFailuresAreUnavailable: what the store says when it cannot serve
// (a cluster's time limit with no deadline from the caller, no responders, a
// key-value bucket's error, a 5xx answer) reaches the app as UNAVAILABLE,
// which apps retry, and is logged as a warning, not as an internal error.
func TestStoreFailuresAreUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"cluster timeout", fmt.Errorf("subscription s: %w", context.DeadlineExceeded)},
		{"no responders", fmt.Errorf("settle event e: %w", nats.ErrNoResponders)},
		{"bucket", fmt.Errorf("read attempts of event e: %w", jetstream.ErrNoStreamResponse)},
		{"nats timeout", fmt.Errorf("store: %w", nats.ErrTimeout)},
		{"no leader", fmt.Errorf("list subscriptions: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			s := &Service{logger: slog.New(slog.NewJSONHandler(&logs, nil))}
			got := status.Code(s.toStatus(tc.err))
			if got != codes.Unavailable {
				t.Errorf("toStatus(%v) = %v, want Unavailable", tc.err, got)
			}
			if strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("toStatus(%v) logged at Error: %s", tc.err, logs.String())
			}
		})
	}
}
