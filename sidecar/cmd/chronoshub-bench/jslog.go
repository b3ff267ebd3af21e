package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
)

// jsLog is the minimal pipeline over JetStream (-pipeline -store
// jetstream): memLog's service with the events in a stream of an embedded
// JetStream (the sidecar's own embedded server, file storage fsynced every
// second as the drained sidecar's) and each subscription a durable pull
// consumer whose acks JetStream confirms before AckEvents returns, sent at
// once for a call's ids as the sidecar sends them. It is the store's cost
// alone: no signature, dedupe, attempts, filters, dead letters, tracing or
// metrics.
type jsLog struct {
	sidecarv1.UnimplementedEventServiceServer
	win *windows
	emb *natsconn.Embedded
	dir string

	mu   sync.Mutex
	held map[string]map[string]jetstream.Msg // subscription → event id → message
}

const jsLogSubject = "events.bench"

func newJSLog(maxInFlight int) (*jsLog, error) {
	dir, err := os.MkdirTemp("", "chronoshub-bench-jslog-")
	if err != nil {
		return nil, err
	}
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: dir, Sync: natsconn.Sync{Interval: time.Second}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := emb.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage}); err != nil {
		emb.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return &jsLog{win: newWindows(maxInFlight), emb: emb, dir: dir, held: map[string]map[string]jetstream.Msg{}}, nil
}

func (l *jsLog) close() {
	l.emb.Close()
	os.RemoveAll(l.dir)
}

// append stores payload and returns once JetStream acknowledged it.
func (l *jsLog) append(payload []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = l.emb.JetStream().Publish(ctx, jsLogSubject, payload)
}

// StreamEvents sends the subscription's events from the oldest (or the next
// one, with START_POSITION_NOW), holding at
// most the window's size unacknowledged.
func (l *jsLog) StreamEvents(req *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
	ctx := stream.Context()
	sub := req.GetSubscription()
	deliver := jetstream.DeliverAllPolicy
	if req.GetStartPosition() == sidecarv1.StartPosition_START_POSITION_NOW {
		deliver = jetstream.DeliverNewPolicy
	}
	cons, err := l.emb.JetStream().CreateOrUpdateConsumer(ctx, "BENCH", jetstream.ConsumerConfig{
		Durable: sub, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000, AckWait: 30 * time.Second, DeliverPolicy: deliver,
	})
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	slots, end, err := l.win.open(sub)
	if err != nil {
		return err
	}
	defer end()
	l.mu.Lock()
	l.held[sub] = map[string]jetstream.Msg{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.held, sub)
		l.mu.Unlock()
	}()
	it, err := cons.Messages(jetstream.PullMaxMessages(l.win.size))
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	defer it.Stop()
	for {
		if err := take(ctx, slots); err != nil {
			return err
		}
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		meta, err := m.Metadata()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		id := strconv.FormatUint(meta.Sequence.Stream, 10)
		l.mu.Lock()
		l.held[sub][id] = m
		l.mu.Unlock()
		e := &sidecarv1.Event{Id: id, Type: benchEventType, Payload: m.Data(), Sequence: meta.Sequence.Stream}
		if err := stream.Send(&sidecarv1.StreamEventsResponse{Event: e}); err != nil {
			return err
		}
	}
}

// AckEvents acknowledges the ids' messages, all at once, and returns once
// JetStream confirmed every one; each frees an in-flight slot.
func (l *jsLog) AckEvents(ctx context.Context, req *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error) {
	sub := req.GetSubscription()
	slots, err := l.win.of(sub)
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	l.mu.Lock()
	held := l.held[sub]
	for _, id := range req.GetEventIds() {
		if m, ok := held[id]; ok {
			msgs = append(msgs, m)
			delete(held, id)
		}
	}
	l.mu.Unlock()
	err = l.ackAll(ctx, msgs)
	release(slots, len(msgs))
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &sidecarv1.AckEventsResponse{EventIds: req.GetEventIds()}, nil
}

// ackAll sends +ACK to every message as a request and waits for every
// answer.
func (l *jsLog) ackAll(ctx context.Context, msgs []jetstream.Msg) error {
	nc := l.emb.Conn()
	inbox := nc.NewInbox()
	replies := make(chan *nats.Msg, len(msgs))
	s, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		return err
	}
	defer s.Unsubscribe()
	for i, m := range msgs {
		if err := nc.PublishRequest(m.Reply(), inbox+"."+strconv.Itoa(i), []byte("+ACK")); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for range msgs {
		select {
		case <-replies:
		case <-ctx.Done():
			return fmt.Errorf("acks not confirmed: %w", ctx.Err())
		}
	}
	return nil
}
