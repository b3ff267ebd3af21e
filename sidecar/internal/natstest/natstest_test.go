package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestClusterSurvivesKill writes to an R3 stream, kills the stream's leader,
// keeps writing once a new leader is elected, and restarts the node, which
// catches up.
func TestClusterSurvivesKill(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, 3)
	t.Logf("cluster ready in %v", time.Since(start))
	_, js := c.Connect(t)
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatalf("CreateStream = %v", err)
	}
	// A new R3 stream answers writes once its replicas elected a leader.
	publish(t, js, "t.1")
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Node(info.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("stream leader %q is not a node of the cluster", info.Cluster.Leader)
	}
	c.Kill(leader)
	killAt := time.Now()
	// Writes resume once the two others elect a leader.
	publish(t, js, "t.2")
	restartAt := time.Now()
	killed := time.Now()
	c.Restart(leader)
	t.Logf("writes resumed %v after the kill; node restarted in %v", restartAt.Sub(killAt), time.Since(killed))
	info, err = s.Info(t.Context())
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("Info = %+v, %v; want 2 messages", info, err)
	}
}

// publish writes one message to subject, retrying while the stream has no
// leader to answer (a new stream, or one whose leader was killed), for up to
// 30 seconds.
func publish(t *testing.T, js jetstream.JetStream, subject string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := js.Publish(t.Context(), subject, []byte(subject))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish(%s) = %v", subject, err)
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not a wait for timing
	}
}

// TestAccountsAreSeparate creates a stream of one name in two accounts of a
// cluster: each account sees only its own messages.
func TestAccountsAreSeparate(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Nodes: 3, Accounts: 2})
	for a := 1; a <= 2; a++ {
		_, js := c.ConnectAccount(t, a, a)
		s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
		if err != nil {
			t.Fatalf("account %d: CreateStream = %v", a, err)
		}
		for range a {
			publish(t, js, "t.x")
		}
		info, err := s.Info(t.Context())
		if err != nil || info.State.Msgs != uint64(a) {
			t.Fatalf("account %d: Info = %+v, %v; want %d messages", a, info, err, a)
		}
	}
	// The default account has no such stream.
	_, js := c.Connect(t)
	if _, err := js.Stream(t.Context(), "T"); err == nil {
		t.Fatal("default account sees stream T of another account")
	}
}
