package eventlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// TestJetStreamDomain runs the log through a JetStream domain: every API
// call, pull and acknowledgement goes through the domain's prefix, and a
// domain that does not exist fails at Open.
func TestJetStreamDomain(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{JetStream: true, JetStreamDomain: "hub", StoreDir: t.TempDir(), DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready within 10s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := eventlog.Open(ctx, nc, eventlog.Options{Domain: "elsewhere"}); err == nil {
		t.Fatal("Open(domain elsewhere) = nil, want an error: the domain must be used")
	}
	l, err := eventlog.Open(ctx, nc, eventlog.Options{Domain: "hub", MaxAttempts: 1})
	if err != nil {
		t.Fatalf("Open(domain hub) = %v", err)
	}
	defer l.Close()
	appendAll(t, l, event("d1", "manuscript.submitted", `{}`), event("d2", "manuscript.submitted", `{}`))
	ch, stop := stream(t, l, eventlog.StreamRequest{Subscription: "dom", MaxInFlight: 1})
	settle(t, l, eventlog.Settlement{Subscription: "dom", IDs: []string{next(t, ch).ID}})
	e := next(t, ch)
	settle(t, l, eventlog.Settlement{Subscription: "dom", IDs: []string{e.ID}, Reject: true})
	waitFor(t, "rejected event dead-lettered", func() bool { return len(deadLetters(t, l, "dom")) == 1 })
	stop()
	if s := getSub(t, l, "dom"); s.DeadLetters != 1 || s.Pending != 0 {
		t.Fatalf("GetSubscription = %+v", s)
	}
}
