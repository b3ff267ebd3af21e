package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// childBaseline is the harness's one child mode (the first argument): the
// baselines, in a process of their own as the sidecar is. The child logs
// the sidecar's {"msg":"ready",…} line with its addresses (the gRPC one
// with -pipeline or -forward) on stdout once it listens, and stops on
// SIGTERM or when its stdin closes (the harness closes it, or dies).
const childBaseline = "_baseline"

// The baselines are the least a webhook receiver does, and are deliberately
// not the sidecar:
//
//   - bare HTTPS: read the body, answer 200 (ingest).
//   - the minimal pipeline (-pipeline): the same handler hands the body to
//     an in-memory log, and a bare gRPC server-streaming service, the
//     sidecar's own proto (EventService.StreamEvents and AckEvents), streams
//     it to the app with the same in-flight window and acks (end to end,
//     stream drain). No signature, no store, no dedupe.
//   - the same over JetStream (-pipeline -store jetstream, stream drain):
//     the log is an embedded JetStream stream (jsLog), so that the drain's
//     ratio can be split into the store's share and the sidecar's.
//
// The HTTPS server has the webhook listener's settings (timeouts, header
// limit, connection cap) from package webhook's NewHTTPServer, so that the
// baseline pays the same per-connection costs and nothing is copied.

// baselineHandler reads the body, hands it to sink (if not nil) and
// answers 200 with a body of the sidecar's size and headers.
func baselineHandler(sink func(payload []byte)) http.Handler {
	const body = `{"status":"stored"}` + "\n"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if sink != nil {
			sink(payload)
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, body)
	})
}

// memLog is the minimal pipeline's event log: events in memory, each
// subscription a cursor from the oldest event, with at most maxInFlight
// unacknowledged events per stream.
type memLog struct {
	sidecarv1.UnimplementedEventServiceServer
	win *windows

	mu      sync.Mutex
	events  []*sidecarv1.Event
	changed chan struct{} // closed and replaced on every append
}

func newMemLog(maxInFlight int) *memLog {
	return &memLog{win: newWindows(maxInFlight), changed: make(chan struct{})}
}

// windows are the in-flight windows of a minimal pipeline's open streams,
// one stream per subscription: a stream takes a slot before each send and
// an acknowledgement frees one.
type windows struct {
	size  int
	mu    sync.Mutex
	slots map[string]chan struct{}
}

func newWindows(size int) *windows { return &windows{size: size, slots: map[string]chan struct{}{}} }

// open registers sub's stream and returns its slots and the function that
// ends it.
func (w *windows) open(sub string) (chan struct{}, func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, open := w.slots[sub]; open {
		return nil, nil, status.Error(codes.FailedPrecondition, "one stream per subscription")
	}
	slots := make(chan struct{}, w.size)
	w.slots[sub] = slots
	return slots, func() {
		w.mu.Lock()
		delete(w.slots, sub)
		w.mu.Unlock()
	}, nil
}

// take waits for a free slot.
func take(ctx context.Context, slots chan struct{}) error {
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// of returns the slots of sub's open stream.
func (w *windows) of(sub string) (chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if slots := w.slots[sub]; slots != nil {
		return slots, nil
	}
	return nil, status.Error(codes.NotFound, "no stream on the subscription")
}

// release frees n slots.
func release(slots chan struct{}, n int) {
	for range n {
		select {
		case <-slots:
		default:
		}
	}
}

func (l *memLog) append(payload []byte) {
	l.mu.Lock()
	l.events = append(l.events, &sidecarv1.Event{Id: uuid.NewString(), Type: benchEventType, Payload: payload, Sequence: uint64(len(l.events) + 1)})
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// StreamEvents sends every event from the oldest, holding at most
// maxInFlight unacknowledged.
func (l *memLog) StreamEvents(req *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
	ctx := stream.Context()
	slots, end, err := l.win.open(req.GetSubscription())
	if err != nil {
		return err
	}
	defer end()
	for pos := 0; ; pos++ {
		if err := take(ctx, slots); err != nil {
			return err
		}
		var e *sidecarv1.Event
		for e == nil {
			l.mu.Lock()
			changed := l.changed
			if pos < len(l.events) {
				e = l.events[pos]
			}
			l.mu.Unlock()
			if e == nil {
				select {
				case <-changed:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if err := stream.Send(&sidecarv1.StreamEventsResponse{Event: e}); err != nil {
			return err
		}
	}
}

// AckEvents frees one in-flight slot per id.
func (l *memLog) AckEvents(_ context.Context, req *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error) {
	slots, err := l.win.of(req.GetSubscription())
	if err != nil {
		return nil, err
	}
	release(slots, len(req.GetEventIds()))
	return &sidecarv1.AckEventsResponse{EventIds: req.GetEventIds()}, nil
}

// forwarder is the minimal SendEvent, the baseline of the sidecar's: a bare
// gRPC service that posts the payload to ChronosHub's inbound endpoint with
// the API key and returns the event id ChronosHub answers. No validation,
// idempotency record, retries, metrics or tracing.
type forwarder struct {
	sidecarv1.UnimplementedEventServiceServer
	url, apiKey string
	client      *http.Client
}

func (f *forwarder) SendEvent(ctx context.Context, req *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url+"/inbound/"+req.GetType(), bytes.NewReader(req.GetPayload()))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Api-Key", f.apiKey)
	resp, err := f.client.Do(hreq)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	defer resp.Body.Close()
	var answer struct {
		EventID string `json:"eventId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusAccepted {
		return nil, status.Errorf(codes.Unavailable, "ChronosHub answered %d (%v)", resp.StatusCode, err)
	}
	return &sidecarv1.SendEventResponse{EventId: answer.EventID, State: sidecarv1.SentEventState_SENT_EVENT_STATE_ACCEPTED}, nil
}

// runBaselineChild serves the baselines until stdin closes.
func runBaselineChild(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(childBaseline, flag.ContinueOnError)
	certFile := fs.String("cert", "", "certificate")
	keyFile := fs.String("key", "", "key")
	pipeline := fs.Bool("pipeline", false, "also hand each body to an in-memory log streamed over gRPC")
	store := fs.String("store", "memory", "the pipeline's log: memory, or jetstream (an embedded JetStream stream, acks confirmed)")
	forward := fs.String("forward", "", "instead of the pipeline, serve the minimal SendEvent over gRPC, posting to this ChronosHub base URL")
	apiKey := fs.String("api-key", "", "the API key the minimal SendEvent sends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The webhook listener's TLS configuration, as the sidecar sets it.
	cert, err := credentials.NewCertificate(*certFile, *keyFile)
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.GetCertificate}
	var sink func([]byte)
	var svc sidecarv1.EventServiceServer
	switch {
	case *pipeline:
		// The sidecar's default in-flight window, as the bench's app gets.
		n, err := sidecarInFlight()
		if err != nil {
			return err
		}
		switch *store {
		case "memory":
			log := newMemLog(n)
			sink, svc = log.append, log
		case "jetstream":
			log, err := newJSLog(n)
			if err != nil {
				return err
			}
			defer log.close()
			sink, svc = log.append, log
		default:
			return fmt.Errorf("-store %q: want memory or jetstream", *store)
		}
	case *forward != "":
		svc = &forwarder{url: *forward, apiKey: *apiKey, client: directClient(64)}
	}
	ready := readyLine{Msg: "ready"}
	if svc != nil {
		grpcSrv := grpc.NewServer()
		sidecarv1.RegisterEventServiceServer(grpcSrv, svc)
		grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() { _ = grpcSrv.Serve(grpcLis) }()
		defer grpcSrv.Stop()
		ready.GRPC = grpcLis.Addr().String()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv, lis := webhook.NewHTTPServer(baselineHandler(sink), lis, webhook.ServerOptions{TLSConfig: tlsCfg})
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(lis, "", "") }()
	ready.Webhook = lis.Addr().String()
	if err := json.NewEncoder(stdout).Encode(ready); err != nil {
		return err
	}
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(stdinClosed)
	}()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
