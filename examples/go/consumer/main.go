// Command consumer is an example app that receives ChronosHub events from
// chronoshub-sidecar over gRPC.
//
// It opens StreamEvents on a named subscription with an event-type filter,
// prints one JSON line per event on stdout ({"id","type","attempt","payload",
// "action"}), and settles each event with AckEvents while the stream is open:
// it acknowledges what it handled and rejects, with a redelivery delay, what it
// cannot handle (a payload that is not a JSON object, or a type named by
// -reject-type), so that the sidecar offers it again later. When the stream
// breaks or ends (the sidecar restarting, for example) it reconnects with
// exponential backoff and full jitter. SIGINT or SIGTERM stops it cleanly.
//
// Tracing: each event carries its W3C trace context (Event.traceparent: the
// sidecar's span that delivered it, or ChronosHub's when the sidecar exports
// no spans; empty when there is none). The consumer continues that trace: it
// starts its "process <type>" span with it as the parent, and its gRPC calls
// made inside that span (AckEvents here; SendEvent in a real app) carry the
// traceparent metadata through otelgrpc, so that the sidecar's spans of those
// calls join the trace. The spans are started with OpenTelemetry's global
// TracerProvider: a no-op that still passes the trace context on, until the
// app installs an SDK provider with an exporter (otel.SetTracerProvider).
//
// Flags win over the environment: -addr (CHRONOSHUB_GRPC_ADDR, default
// 127.0.0.1:50051), -subscription (CHRONOSHUB_SUBSCRIPTION, default
// "example-go"), -types (CHRONOSHUB_EVENT_TYPES, comma-separated, default
// "manuscript.>"). CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token
// (needed only when the sidecar's API listens on a non-loopback address).
//
//	go run ./examples/go/consumer -subscription my-app -types 'manuscript.>'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // -h printed the usage: success
	default:
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

type config struct {
	addr           string
	subscription   string
	types          []string
	rejectType     string
	redeliverDelay time.Duration
	maxEvents      int
	token          string
}

func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; -h is printed by parseFlags
	addr := fs.String("addr", envOr(getenv, "CHRONOSHUB_GRPC_ADDR", "127.0.0.1:50051"), "the sidecar's gRPC address (env CHRONOSHUB_GRPC_ADDR)")
	sub := fs.String("subscription", envOr(getenv, "CHRONOSHUB_SUBSCRIPTION", "example-go"), "subscription name (env CHRONOSHUB_SUBSCRIPTION)")
	types := fs.String("types", envOr(getenv, "CHRONOSHUB_EVENT_TYPES", "manuscript.>"), "comma-separated event-type filters; empty for all (env CHRONOSHUB_EVENT_TYPES)")
	rejectType := fs.String("reject-type", "", "reject every event of this type (to see redelivery)")
	delay := fs.Duration("redeliver-delay", 10*time.Second, "how long the sidecar waits before offering a rejected event again")
	maxEvents := fs.Int("max-events", 0, "exit after handling this many events (0: run until stopped)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // -h: the usage on stdout, and main exits 0
			fmt.Fprintln(stdout, "Usage of consumer:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var filters []string
	for t := range strings.SplitSeq(*types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			filters = append(filters, t)
		}
	}
	return config{
		addr: *addr, subscription: *sub, types: filters, rejectType: *rejectType,
		redeliverDelay: *delay, maxEvents: *maxEvents, token: getenv("CHRONOSHUB_API_TOKEN"),
	}, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// grpc.NewClient connects lazily and reconnects by itself; the loop below
	// only has to reopen the stream.
	// otelgrpc sends the trace context of each call's ctx as traceparent
	// metadata.
	conn, err := grpc.NewClient(cfg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithPropagators(propagation.TraceContext{}))))
	if err != nil {
		return fmt.Errorf("dial %s: %w", cfg.addr, err)
	}
	defer conn.Close()
	if cfg.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.token)
	}

	c := &consumer{client: sidecarv1.NewEventServiceClient(conn), cfg: cfg, out: json.NewEncoder(stdout), log: stderr}
	failures := 0
	for {
		received, err := c.stream(ctx)
		switch {
		case errors.Is(err, errDone):
			return nil
		case ctx.Err() != nil:
			fmt.Fprintln(stderr, "consumer: stopping")
			return nil
		case isPermanent(err):
			return fmt.Errorf("stream %q: %w", cfg.subscription, err)
		}
		if received > 0 {
			failures = 0 // the connection worked: start the backoff over
		}
		wait := backoff(failures)
		failures++
		if err == nil {
			err = errors.New("stream ended")
		}
		fmt.Fprintf(stderr, "consumer: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "consumer: stopping")
			return nil
		case <-time.After(wait):
		}
	}
}

// errDone reports that -max-events events were handled.
var errDone = errors.New("max events handled")

// backoff is the wait before reconnect attempt n (0-based): exponential from
// 250ms, capped at 30s, with full jitter so that many consumers restarted
// together do not reconnect in lockstep.
func backoff(n int) time.Duration {
	ceiling := 250 * time.Millisecond << min(n, 7) // 250ms … 32s
	ceiling = min(ceiling, 30*time.Second)
	return ceiling/2 + rand.N(ceiling/2)
}

// isPermanent reports errors that reconnecting cannot fix: a bad request or
// credentials. FAILED_PRECONDITION (another stream holds different filters on
// the subscription) is retried: it clears when that stream ends.
func isPermanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented:
		return true
	}
	return false
}

type consumer struct {
	client  sidecarv1.EventServiceClient
	cfg     config
	out     *json.Encoder
	log     io.Writer
	handled int
}

// stream reads one stream until it breaks, and returns how many events it
// received. A nil error means the sidecar ended the stream (it is shutting
// down).
func (c *consumer) stream(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream; the sidecar offers unsettled events again
	s, err := c.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{
		Subscription: c.cfg.subscription,
		EventTypes:   c.cfg.types,
	})
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(c.log, "consumer: streaming subscription %q, types %q\n", c.cfg.subscription, c.cfg.types)
	received := 0
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return received, nil
		}
		if err != nil {
			return received, err
		}
		received++
		if err := c.handle(ctx, resp.GetEvent()); err != nil {
			return received, err
		}
		c.handled++
		if c.cfg.maxEvents > 0 && c.handled >= c.cfg.maxEvents {
			return received, errDone
		}
	}
}

// handle processes one event and settles it. The sidecar delivers at least
// once, so a real app de-duplicates on ev.Id before acting on an event.
func (c *consumer) handle(ctx context.Context, ev *sidecarv1.Event) error {
	// Continue the trace the event belongs to: the sidecar's span that
	// delivered it is the parent of this app's processing span.
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{
		"traceparent": ev.GetTraceparent(),
		"tracestate":  ev.GetTracestate(),
	})
	ctx, span := otel.Tracer("chronoshub-example-consumer").Start(ctx, "process "+ev.GetType(), trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()

	action := "ack"
	if err := process(ev, c.cfg.rejectType); err != nil {
		action = "reject"
		fmt.Fprintf(c.log, "consumer: rejecting %s (%s, attempt %d): %v\n", ev.GetId(), ev.GetType(), ev.GetAttempt(), err)
	}
	payload := json.RawMessage(ev.GetPayload())
	if !json.Valid(payload) { // never from the sidecar, but keep stdout JSON
		payload, _ = json.Marshal(string(payload))
	}
	if err := c.out.Encode(eventLine{
		ID: ev.GetId(), Type: ev.GetType(), Attempt: ev.GetAttempt(),
		Payload: payload, Action: action, TraceParent: ev.GetTraceparent(),
	}); err != nil {
		return err
	}
	req := &sidecarv1.AckEventsRequest{Subscription: c.cfg.subscription, EventIds: []string{ev.GetId()}}
	if action == "reject" {
		req.Reject = true
		req.RedeliverDelay = durationpb.New(c.cfg.redeliverDelay)
	}
	ackCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.client.AckEvents(ackCtx, req)
	if err != nil {
		// Not fatal: an event that is not settled comes back after its ack
		// deadline. Reconnecting gets a fresh stream.
		return fmt.Errorf("ack %s: %w", ev.GetId(), err)
	}
	if len(resp.GetUnknownEventIds()) > 0 {
		// Its ack deadline passed before we settled it; it is (or will be)
		// delivered again and that delivery must be settled.
		fmt.Fprintf(c.log, "consumer: %s was no longer held by this stream\n", ev.GetId())
	}
	return nil
}

// eventLine is what the consumer prints for each event.
type eventLine struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Attempt uint32          `json:"attempt"`
	Payload json.RawMessage `json:"payload"`
	Action  string          `json:"action"`
	// TraceParent is the event's W3C traceparent ("" when it has none).
	TraceParent string `json:"traceparent"`
}

// process is the app's business logic. Here it only checks that the payload
// is a JSON object, as every ChronosHub event is.
func process(ev *sidecarv1.Event, rejectType string) error {
	if rejectType != "" && ev.GetType() == rejectType {
		return fmt.Errorf("type %s is rejected by -reject-type", ev.GetType())
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(ev.GetPayload(), &fields); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return nil
}
