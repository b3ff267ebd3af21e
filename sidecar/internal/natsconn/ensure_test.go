package natsconn

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// embedded starts an embedded store in a temporary directory and returns its
// JetStream.
func embedded(t *testing.T) jetstream.JetStream {
	t.Helper()
	e, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("StartEmbedded = %v", err)
	}
	t.Cleanup(e.Close)
	return e.JetStream()
}

func testStream(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       "CHRONOSHUB_TEST",
		Subjects:   []string{"test.a.>", "test.b.>"},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		MaxAge:     time.Hour,
		Duplicates: 10 * time.Minute,
		Replicas:   replicas,
	}
}

func TestEnsureStream(t *testing.T) {
	t.Parallel()
	js := embedded(t)
	ctx := t.Context()
	cfg := testStream(1)
	s, err := EnsureStream(ctx, js, cfg, nil)
	if err != nil {
		t.Fatalf("EnsureStream (missing) = %v", err)
	}
	if _, err := js.Publish(ctx, "test.a.1", []byte("x")); err != nil {
		t.Fatal(err)
	}

	// The same settings, in another order and with the defaults spelled out,
	// are the same.
	same := cfg
	same.Subjects = []string{"test.b.>", "test.a.>"}
	same.Replicas = 0
	same.Description = "another description is not a setting that matters"
	if _, err := EnsureStream(ctx, js, same, nil); err != nil {
		t.Fatalf("EnsureStream (same) = %v", err)
	}

	other := cfg
	other.Replicas = 3
	other.MaxAge = 2 * time.Hour
	other.Duplicates = 0 // the server's default, 2m, differs from 10m
	other.Subjects = []string{"test.a.>"}
	other.Retention = jetstream.WorkQueuePolicy
	other.MaxBytes = 1 << 20
	other.AllowMsgTTL = true
	_, err = EnsureStream(ctx, js, other, Settings{"max age": "CHRONOSHUB_RETENTION"})
	me, ok := errors.AsType[*MismatchError](err)
	if !ok {
		t.Fatalf("EnsureStream (mismatch) = %v, want a *MismatchError", err)
	}
	want := []Mismatch{
		{Field: "replicas", Have: "1", Want: "3", Setting: ReplicasSetting},
		{Field: "subjects", Have: "test.a.>, test.b.>", Want: "test.a.>"},
		{Field: "retention", Have: "Limits", Want: "WorkQueue"},
		{Field: "max age", Have: "1h0m0s", Want: "2h0m0s", Setting: "CHRONOSHUB_RETENTION"},
		{Field: "max bytes", Have: "unlimited", Want: "1048576"},
		{Field: "duplicate window", Have: "10m0s", Want: "2m0s"},
		{Field: "allow message TTL", Have: "false", Want: "true"},
	}
	if diff := cmp.Diff(want, me.Mismatches); diff != "" {
		t.Errorf("mismatches (-want +got):\n%s", diff)
	}
	const wantText = "stream CHRONOSHUB_TEST exists with replicas 1, this sidecar is configured for 3 (CHRONOSHUB_NATS_REPLICAS); "
	if !strings.HasPrefix(err.Error(), wantText) {
		t.Errorf("error = %q, want it to start with %q", err, wantText)
	}

	// Nothing changed.
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != time.Hour || info.Config.Duplicates != 10*time.Minute || len(info.Config.Subjects) != 2 || info.State.Msgs != 1 {
		t.Errorf("stream after the refused EnsureStream: %+v, state %+v; want it unchanged", info.Config, info.State)
	}
}

func TestEnsureStreamConcurrent(t *testing.T) {
	t.Parallel()
	js := embedded(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := EnsureStream(t.Context(), js, testStream(1), nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("EnsureStream = %v", err)
		}
	}
}

func TestEnsureKeyValue(t *testing.T) {
	t.Parallel()
	js := embedded(t)
	ctx := t.Context()
	cfg := jetstream.KeyValueConfig{Bucket: "CHRONOSHUB_TEST_KV", History: 1, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Minute}
	kv, err := EnsureKeyValue(ctx, js, cfg, nil)
	if err != nil {
		t.Fatalf("EnsureKeyValue (missing) = %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	same := cfg
	same.Description = "described"
	kv2, err := EnsureKeyValue(ctx, js, same, nil)
	if err != nil {
		t.Fatalf("EnsureKeyValue (same) = %v", err)
	}
	if e, err := kv2.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Errorf("Get after EnsureKeyValue (same) = %v, %v; want v", e, err)
	}

	other := cfg
	other.History = 5
	other.TTL = time.Hour
	other.Replicas = 3
	other.LimitMarkerTTL = 0
	_, err = EnsureKeyValue(ctx, js, other, Settings{"ttl": "CHRONOSHUB_IDEMPOTENCY_WINDOW"})
	me, ok := errors.AsType[*MismatchError](err)
	if !ok {
		t.Fatalf("EnsureKeyValue (mismatch) = %v, want a *MismatchError", err)
	}
	want := []Mismatch{
		{Field: "replicas", Have: "1", Want: "3", Setting: ReplicasSetting},
		{Field: "max age", Have: "unlimited", Want: "1h0m0s", Setting: "CHRONOSHUB_IDEMPOTENCY_WINDOW"},
		{Field: "max messages per subject", Have: "1", Want: "5"},
		{Field: "allow message TTL", Have: "true", Want: "false"},
		{Field: "limit marker TTL", Have: "1m0s", Want: "off"},
	}
	if diff := cmp.Diff(want, me.Mismatches); diff != "" {
		t.Errorf("mismatches (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(err.Error(), "bucket CHRONOSHUB_TEST_KV exists with replicas 1, this sidecar is configured for 3") {
		t.Errorf("error = %q", err)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.History() != 1 || st.TTL() != 0 {
		t.Errorf("Status after the refused EnsureKeyValue = %+v, %v; want unchanged", st, err)
	}
}

// TestEnsureOnCluster creates R3 resources on a three-node cluster, accepts
// them again, and refuses a sidecar configured for R1: it must not scale the
// fleet's log down.
func TestEnsureOnCluster(t *testing.T) {
	t.Parallel()
	c := natstest.StartCluster(t, 3)
	_, js := c.Connect(t)
	ctx := t.Context()
	cfg := testStream(3)
	s, err := EnsureStream(ctx, js, cfg, nil)
	if err != nil {
		t.Fatalf("EnsureStream (missing) = %v", err)
	}
	if _, err := EnsureStream(ctx, js, cfg, nil); err != nil {
		t.Fatalf("EnsureStream (same) = %v", err)
	}
	_, err = EnsureStream(ctx, js, testStream(0), nil)
	if me, ok := errors.AsType[*MismatchError](err); !ok || len(me.Mismatches) != 1 || me.Mismatches[0].Field != "replicas" {
		t.Fatalf("EnsureStream (R1 on R3) = %v, want a replicas mismatch only", err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
		t.Errorf("Info = %+v, %v; want R3 unchanged", info, err)
	}

	kvCfg := jetstream.KeyValueConfig{Bucket: "CHRONOSHUB_TEST_KV", Replicas: 3, Storage: jetstream.FileStorage, LimitMarkerTTL: time.Minute}
	if _, err := EnsureKeyValue(ctx, js, kvCfg, nil); err != nil {
		t.Fatalf("EnsureKeyValue (missing) = %v", err)
	}
	if _, err := EnsureKeyValue(ctx, js, kvCfg, nil); err != nil {
		t.Fatalf("EnsureKeyValue (same) = %v", err)
	}
	kvCfg.Replicas = 1
	if _, err := EnsureKeyValue(ctx, js, kvCfg, nil); !strings.Contains(fmtErr(err), "replicas 3, this sidecar is configured for 1") {
		t.Errorf("EnsureKeyValue (R1 on R3) = %v, want the replicas mismatch", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
