package natsconn

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

// freezer is a loopback TCP proxy in front of one server that can freeze:
// its connections stay open and carry nothing more, as with a server whose
// process or VM is paused.
type freezer struct {
	ln     net.Listener
	target string
	frozen chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func startFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, frozen: make(chan struct{})}
	var conns []net.Conn
	var mu sync.Mutex
	f.wg.Go(func() {
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
			f.wg.Go(func() { f.pipe(up, c) })
			f.wg.Go(func() { f.pipe(c, up) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// pipe copies src to dst until either closes; once frozen, it reads and
// drops, so that nothing reaches dst.
func (f *freezer) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		select {
		case <-f.frozen:
			continue
		default:
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (f *freezer) freeze() { f.once.Do(func() { close(f.frozen) }) }

// TestFrozenServerIsLeft: a sidecar connected to a server that stops
// answering without closing the connection (a paused node) notices within
// seconds and carries on through another server of the cluster.
func TestFrozenServerIsLeft(t *testing.T) {
	t.Parallel()
	c := natstest.Start(t, natstest.Options{Nodes: 3})
	f := startFreezer(t, strings.TrimPrefix(c.URL(0), "nats://"))
	nc, js, err := ConnectExternal(t.Context(), ExternalOptions{URL: "nats://" + f.ln.Addr().String(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("ConnectExternal = %v", err)
	}
	defer nc.Close()
	f.freeze()
	start := time.Now()
	// Within 15 s (nats.go's default would hold it for minutes), it is on
	// another server and JetStream answers.
	for deadline := start.Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still on the frozen server after %v (connected to %s)", time.Since(start).Round(time.Second), nc.ConnectedAddr())
		}
		if nc.ConnectedAddr() == "" || nc.ConnectedAddr() == f.ln.Addr().String() {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	t.Logf("moved to %s %v after the freeze", nc.ConnectedAddr(), time.Since(start).Round(100*time.Millisecond))
}
