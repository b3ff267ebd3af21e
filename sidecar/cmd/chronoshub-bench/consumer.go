package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// ackBatch is the most event ids one AckEvents call carries. The acker
// sends whatever has arrived since its last call, up to this many: under
// light load that is one id per call, under heavy load a batch.
const ackBatch = 256

// consumer is an app: one gRPC stream on a subscription that records, per
// run, the latency from each event's scheduled send time (in its payload)
// to its receipt, and acknowledges every event through a batching acker.
type consumer struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lat   map[int]latencies
	err   error
	first time.Time // first receipt

	received atomic.Int64
	acked    atomic.Int64
	ackCalls atomic.Int64
}

// dialEvents connects to the EventService at addr (host:port, or a
// unix:// target).
func dialEvents(addr string) (sidecarv1.EventServiceClient, *grpc.ClientConn, error) {
	if !strings.HasPrefix(addr, "unix://") {
		addr = "passthrough:///" + addr
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return sidecarv1.NewEventServiceClient(conn), conn, nil
}

// app is what the end-to-end runs drive: consumers on one gRPC connection
// to the service and a keep-alive client posting webhooks to url.
type app struct {
	events sidecarv1.EventServiceClient
	conn   *grpc.ClientConn
	client *http.Client
	url    string
	cs     []*consumer
}

// openApp connects to the process p and opens a consumer on each of subs,
// from the next event with fromNow, else from the oldest.
func (h *harness) openApp(ctx context.Context, p *proc, fromNow bool, subs ...string) (*app, error) {
	events, conn, err := dialEvents(p.GRPC)
	if err != nil {
		return nil, err
	}
	a := &app{events: events, conn: conn, client: webhookClient(h.pool, true, h.cfg.Senders), url: p.url()}
	for _, sub := range subs {
		c, err := startConsumer(ctx, events, sub, fromNow)
		if err != nil {
			a.close()
			return nil, err
		}
		a.cs = append(a.cs, c)
	}
	return a, nil
}

func (a *app) close() {
	for _, c := range a.cs {
		c.stop()
	}
	a.conn.Close()
	a.client.CloseIdleConnections()
}

// startConsumer opens the stream and returns once it is open. A new
// subscription starts at the oldest event, or with fromNow at the next one.
func startConsumer(ctx context.Context, client sidecarv1.EventServiceClient, sub string, fromNow bool) (*consumer, error) {
	ctx, cancel := context.WithCancel(ctx)
	req := &sidecarv1.StreamEventsRequest{Subscription: sub}
	if fromNow {
		req.StartPosition = sidecarv1.StartPosition_START_POSITION_NOW
	}
	stream, err := client.StreamEvents(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &consumer{cancel: cancel, done: make(chan struct{}), lat: map[int]latencies{}}
	ids := make(chan string, 4096)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ids)
		for {
			resp, err := stream.Recv()
			if err != nil {
				c.fail(err)
				return
			}
			now := time.Now()
			e := resp.GetEvent()
			if run, sent, ok := parsePayload(e.GetPayload()); ok {
				c.mu.Lock()
				if c.first.IsZero() {
					c.first = now
				}
				c.lat[run] = append(c.lat[run], now.Sub(sent))
				c.mu.Unlock()
			}
			c.received.Add(1)
			ids <- e.GetId()
		}
	})
	wg.Go(func() {
		batch := make([]string, 0, ackBatch)
		for id := range ids {
			batch = append(batch[:0], id)
		more:
			for len(batch) < ackBatch {
				select {
				case id, ok := <-ids:
					if !ok {
						break more
					}
					batch = append(batch, id)
				default:
					break more
				}
			}
			resp, err := client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: sub, EventIds: batch})
			if err != nil {
				c.fail(err)
				cancel()
				continue // drain ids until the receiver stops
			}
			c.ackCalls.Add(1)
			c.acked.Add(int64(len(resp.GetEventIds())))
		}
	})
	go func() { wg.Wait(); close(c.done) }()
	return c, nil
}

func (c *consumer) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// stop ends the stream and waits for the consumer's goroutines.
func (c *consumer) stop() {
	c.cancel()
	<-c.done
}

// runLatencies returns the latencies recorded for run so far.
func (c *consumer) runLatencies(run int) latencies {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(latencies(nil), c.lat[run]...)
}

// waitRun waits until n events of run were received, or timeout.
func (c *consumer) waitRun(ctx context.Context, run, n int, timeout time.Duration) error {
	return poll(ctx, timeout, 5*time.Millisecond, func() (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.lat[run]) < n && c.err != nil && !errors.Is(ctx.Err(), context.Canceled) {
			return false, c.err
		}
		return len(c.lat[run]) >= n, nil
	})
}

// waitAcked waits until n events were acknowledged, or timeout, and returns
// when the last acknowledgement was confirmed.
func (c *consumer) waitAcked(ctx context.Context, n int64, timeout time.Duration) (time.Time, error) {
	err := poll(ctx, timeout, time.Millisecond, func() (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.acked.Load() >= n {
			return true, nil
		}
		return false, c.err
	})
	return time.Now(), err
}
