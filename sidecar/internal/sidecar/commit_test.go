package sidecar

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
)

// TestWebhookWaitsForCommit checks that with group commit a webhook's
// append is answered only after a commit that began after it was appended,
// a duplicate included (its first copy may not be fsynced yet), and that a
// failed commit fails the append (the webhook answers 503).
func TestWebhookWaitsForCommit(t *testing.T) {
	t.Parallel()
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir(), Sync: natsconn.Sync{Always: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	ctx := t.Context()
	log, err := eventlog.Open(ctx, emb.Conn(), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// commit records how many events the log held when each commit began.
	var began []uint64
	var fail error
	commit := func(ctx context.Context) error {
		info, err := emb.JetStream().Stream(ctx, eventlog.EventsStream)
		if err != nil {
			return err
		}
		began = append(began, info.CachedInfo().State.Msgs)
		if fail != nil {
			return fail
		}
		return emb.Commit(ctx)
	}
	store := timedStore{log: log, commit: commit, met: metrics.New(prometheus.NewRegistry()), health: &storeHealth{}}
	ev := webhook.Event{ID: "0b7e3d6c-1a2b-4c3d-8e9f-000000000001", DedupKey: "0b7e3d6c-1a2b-4c3d-8e9f-000000000001",
		Type: "manuscript.submitted", Payload: []byte(`{}`), SignedAt: time.Now(), ReceivedAt: time.Now()}

	for i, want := range []struct {
		dup  bool
		msgs uint64
	}{{false, 1}, {true, 1}} {
		began = nil
		dup, err := store.Append(ctx, ev)
		if err != nil || dup != want.dup {
			t.Fatalf("Append %d = %v, %v, want %v, nil", i+1, dup, err, want.dup)
		}
		if len(began) != 1 || began[0] < want.msgs {
			t.Errorf("Append %d: commits began with %v events stored, want one with %d", i+1, began, want.msgs)
		}
	}

	fail = errors.New("fsync: input/output error")
	ev.ID, ev.DedupKey = "0b7e3d6c-1a2b-4c3d-8e9f-000000000002", "0b7e3d6c-1a2b-4c3d-8e9f-000000000002"
	if _, err := store.Append(ctx, ev); !errors.Is(err, fail) {
		t.Errorf("Append with a failing commit = %v, want %v", err, fail)
	}
}
