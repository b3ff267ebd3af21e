package eventlog_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

// stallProxy is a loopback TCP proxy that can stall: its connections stay
// open and carry nothing more, as with a store that stopped answering.
type stallProxy struct {
	ln      net.Listener
	stalled atomic.Bool
	dropped atomic.Int64 // bytes dropped since the stall
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	pipe := func(dst io.Writer, src io.Reader) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if p.stalled.Load() {
				p.dropped.Add(int64(n))
				continue
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() { pipe(up, c) })
			wg.Go(func() { pipe(c, up) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// TestNoLockAcrossStoreCalls: while a stream's attach waits for a store that
// does not answer, the log's other work (here Holding, which every graceful
// shutdown and scrape uses) is not held behind it.
func TestNoLockAcrossStoreCalls(t *testing.T) {
	t.Parallel()
	c := natstest.Start(t, natstest.Options{})
	p := startStallProxy(t, strings.TrimPrefix(c.URL(0), "nats://"))
	nc, err := nats.Connect("nats://"+p.ln.Addr().String(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := openOn(t, nc, eventlog.Options{})
	p.stalled.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- l.Stream(ctx, eventlog.StreamRequest{Subscription: "s"}, func(eventlog.Event) error { return nil })
	}()
	// The attach has sent its request to the store, which does not answer.
	for deadline := time.Now().Add(10 * time.Second); p.dropped.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream sent nothing to the store")
		}
	}
	held := make(chan struct{})
	go func() {
		l.Holding()
		close(held)
	}()
	select {
	case <-held:
	case err := <-streamDone:
		t.Fatalf("the stream ended (%v) before Holding returned: the test proves nothing", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Holding waited for the attach's store call: the log's lock is held across it")
	}
	cancel()
	<-streamDone
}
