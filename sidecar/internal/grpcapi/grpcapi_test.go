package grpcapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/chronoshub"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/gateway"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/outbox"
)

const apiKey = "sk_live_grpcapi_test_0123456789"

// env is a service over a real event log, outbox and emulated ChronosHub,
// served on a loopback listener.
type env struct {
	log    *eventlog.Log
	svc    *grpcapi.Service
	emu    *emulator.Emulator
	client sidecarv1.EventServiceClient
	conn   *grpc.ClientConn
}

// rest serves a REST gateway over the env's client connection, closed at
// the end of the test.
func (e *env) rest(t *testing.T) *httptest.Server {
	t.Helper()
	gw, err := gateway.New(t.Context(), e.conn, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rest := httptest.NewServer(gw)
	t.Cleanup(rest.Close)
	return rest
}

func newEnv(t *testing.T, token string) *env {
	t.Helper()
	return newEnvWith(t, envOptions{token: token})
}

// envOptions are the optional settings of newEnvWith.
type envOptions struct {
	token      string              // bearer token the server requires; "" for none
	logger     *slog.Logger        // the event log's and the service's; nil discards
	serverOpts []grpc.ServerOption // more options of the gRPC server
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	token := o.token
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	ctx := context.Background()
	log, err := eventlog.Open(ctx, emb.Conn(), eventlog.Options{AckWait: time.Minute, Logger: o.logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(log.Close)
	emu, err := emulator.New(emulator.Options{APIKey: apiKey, WebhookSecret: []byte("s")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	hub := httptest.NewServer(emu.Handler())
	t.Cleanup(hub.Close)
	client, err := chronoshub.NewClient(hub.URL, func() string { return apiKey }, chronoshub.Options{
		MaxAttempts:    3,
		InitialBackoff: time.Millisecond,
		MaxBackoff:     5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := outbox.Open(ctx, log.JetStream(), client, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check, err := eventcheck.New(eventcheck.Options{AllowedTypes: []string{"manuscript.submitted", "manuscript.status.updated"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := grpcapi.New(log, out, check, grpcapi.Options{Logger: o.logger})

	opts := o.serverOpts
	if token != "" {
		unary, stream := grpcapi.BearerAuth(func() string { return token })
		opts = append(opts, grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))
	}
	srv := grpc.NewServer(opts...)
	sidecarv1.RegisterEventServiceServer(srv, svc)
	grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{log: log, svc: svc, emu: emu, client: sidecarv1.NewEventServiceClient(conn), conn: conn}
}

func (e *env) appendEvent(t *testing.T, id, typ, payload string) {
	t.Helper()
	_, err := e.log.Append(context.Background(), eventlog.Event{ID: id, Type: typ, Payload: []byte(payload), SignedAt: time.Unix(1763900000, 0), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}

// recv returns the next event of a stream, failing after 10s.
func recv(t *testing.T, s grpc.ServerStreamingClient[sidecarv1.StreamEventsResponse]) *sidecarv1.Event {
	t.Helper()
	type result struct {
		r   *sidecarv1.StreamEventsResponse
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := s.Recv()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("Recv = %v", res.err)
		}
		return res.r.GetEvent()
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return nil
	}
}

func TestStreamAndAck(t *testing.T) {
	e := newEnv(t, "")
	payload := "{\"title\":\"Über 𝔸𝕓𝒞 🧬 \u4e2d\u6587\",\n \"n\": 1.50}"
	e.appendEvent(t, "11111111-1111-4111-8111-111111111111", "manuscript.submitted", payload)
	e.appendEvent(t, "22222222-2222-4222-8222-222222222222", "invoice.paid", `{}`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app", EventTypes: []string{"manuscript.*"}})
	if err != nil {
		t.Fatal(err)
	}
	got := recv(t, s)
	if got.GetId() != "11111111-1111-4111-8111-111111111111" || got.GetType() != "manuscript.submitted" || string(got.GetPayload()) != payload ||
		got.GetAttempt() != 1 || got.GetSignedAt().AsTime().Unix() != 1763900000 || got.GetReceivedAt() == nil || got.GetSequence() == 0 {
		t.Fatalf("event = %v", got)
	}
	resp, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: []string{got.GetId(), "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &sidecarv1.AckEventsResponse{EventIds: []string{got.GetId()}, UnknownEventIds: []string{"nope"}}
	if diff := cmp.Diff(want.String(), resp.String()); diff != "" {
		t.Fatalf("AckEvents (-want +got):\n%s", diff)
	}
}

func TestRejectRedeliversWithAttempt(t *testing.T) {
	e := newEnv(t, "")
	e.appendEvent(t, "e1", "manuscript.submitted", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first := recv(t, s)
	if _, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{EventIds: []string{first.GetId()}, Reject: true, RedeliverDelay: durationpb.New(10 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if again := recv(t, s); again.GetId() != "e1" || again.GetAttempt() != 2 {
		t.Fatalf("redelivery = %v, want e1 attempt 2", again)
	}
}

func TestInvalidRequests(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	long := strings.Repeat("k", 257)
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string // the BadRequest field, when there is one
	}{
		{"ack without ids", func() error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{})
			return err
		}, codes.InvalidArgument, "event_ids"},
		{"ack too many ids", func() error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{EventIds: make([]string, 1001)})
			return err
		}, codes.InvalidArgument, "event_ids"},
		{"ack delay without reject", func() error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{EventIds: []string{"a"}, RedeliverDelay: durationpb.New(time.Second)})
			return err
		}, codes.InvalidArgument, "redeliver_delay"},
		{"ack negative delay", func() error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{EventIds: []string{"a"}, Reject: true, RedeliverDelay: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "redeliver_delay"},
		{"ack bad subscription", func() error {
			_, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "a b", EventIds: []string{"a"}})
			return err
		}, codes.InvalidArgument, ""},
		{"send empty type", func() error {
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Payload: []byte(`{}`)})
			return err
		}, codes.InvalidArgument, "type"},
		{"send type not allowed", func() error {
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "invoice.paid", Payload: []byte(`{}`)})
			return err
		}, codes.InvalidArgument, "type"},
		{"send empty payload", func() error {
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted"})
			return err
		}, codes.InvalidArgument, "payload"},
		{"send bad JSON", func() error {
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{"a":`)})
			return err
		}, codes.InvalidArgument, "payload"},
		{"send long key", func() error {
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{}`), IdempotencyKey: long})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"send control char key", func() error {
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{}`), IdempotencyKey: "a\nb"})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"get without key", func() error {
			_, err := e.client.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"get unknown key", func() error {
			_, err := e.client.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: "never-used"})
			return err
		}, codes.NotFound, ""},
		{"dead letters bad page size", func() error {
			_, err := e.client.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{PageSize: 5000})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"dead letters bad token", func() error {
			_, err := e.client.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{PageToken: "xyz"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"replay neither ids nor all", func() error {
			_, err := e.client.ReplayDeadLetters(ctx, &sidecarv1.ReplayDeadLettersRequest{})
			return err
		}, codes.InvalidArgument, "event_ids"},
		{"replay both ids and all", func() error {
			_, err := e.client.ReplayDeadLetters(ctx, &sidecarv1.ReplayDeadLettersRequest{EventIds: []string{"a"}, All: true})
			return err
		}, codes.InvalidArgument, "event_ids"},
		{"get subscription bad name", func() error {
			_, err := e.client.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "a.b"})
			return err
		}, codes.InvalidArgument, ""},
		{"get unknown subscription", func() error {
			_, err := e.client.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "never"})
			return err
		}, codes.NotFound, ""},
		{"delete unknown subscription", func() error {
			_, err := e.client.DeleteSubscription(ctx, &sidecarv1.DeleteSubscriptionRequest{Subscription: "never"})
			return err
		}, codes.NotFound, ""},
		{"delete subscription bad name", func() error {
			_, err := e.client.DeleteSubscription(ctx, &sidecarv1.DeleteSubscriptionRequest{Subscription: strings.Repeat("s", 65)})
			return err
		}, codes.InvalidArgument, ""},
		{"update unknown subscription", func() error {
			_, err := e.client.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: "never", EventTypes: []string{"manuscript.*"}})
			return err
		}, codes.NotFound, ""},
		{"update bad filter", func() error {
			_, err := e.client.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: "never", EventTypes: []string{"a..b"}})
			return err
		}, codes.InvalidArgument, ""},
		{"update overlapping filters", func() error {
			_, err := e.client.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: "never", EventTypes: []string{"a.*", "a.b"}})
			return err
		}, codes.InvalidArgument, ""},
		{"update too many filters", func() error {
			types := make([]string, 33)
			for i := range types {
				types[i] = "t" + strconv.Itoa(i)
			}
			_, err := e.client.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: "never", EventTypes: types})
			return err
		}, codes.InvalidArgument, ""},
		{"stream too many filters", func() error {
			types := make([]string, 33)
			for i := range types {
				types[i] = "t" + strconv.Itoa(i)
			}
			return streamErr(e, &sidecarv1.StreamEventsRequest{EventTypes: types})
		}, codes.InvalidArgument, ""},
		{"dead letters of unknown subscription", func() error {
			_, err := e.client.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{Subscription: "never"})
			return err
		}, codes.NotFound, ""},
		{"replay unknown subscription", func() error {
			_, err := e.client.ReplayDeadLetters(ctx, &sidecarv1.ReplayDeadLettersRequest{Subscription: "never", All: true})
			return err
		}, codes.NotFound, ""},
		{"stream bad filter", func() error { return streamErr(e, &sidecarv1.StreamEventsRequest{EventTypes: []string{"Bad Type"}}) }, codes.InvalidArgument, ""},
		{"stream time without start", func() error {
			return streamErr(e, &sidecarv1.StreamEventsRequest{StartPosition: sidecarv1.StartPosition_START_POSITION_TIME})
		}, codes.InvalidArgument, "start_time"},
		{"stream time in future", func() error {
			return streamErr(e, &sidecarv1.StreamEventsRequest{StartPosition: sidecarv1.StartPosition_START_POSITION_TIME, StartTime: timestamppb.New(time.Now().Add(time.Hour))})
		}, codes.InvalidArgument, ""},
		{"stream start time with now", func() error {
			return streamErr(e, &sidecarv1.StreamEventsRequest{StartPosition: sidecarv1.StartPosition_START_POSITION_NOW, StartTime: timestamppb.Now()})
		}, codes.InvalidArgument, "start_time"},
		{"stream unknown position", func() error {
			return streamErr(e, &sidecarv1.StreamEventsRequest{StartPosition: 42})
		}, codes.InvalidArgument, "start_position"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tt.code)
			}
			if tt.field != "" && !hasField(st, tt.field) {
				t.Fatalf("details %v do not name field %q", st.Details(), tt.field)
			}
		})
	}
	if n := len(e.emu.Inbound()); n != 0 {
		t.Fatalf("emulator received %d events from invalid requests, want 0", n)
	}
}

func streamErr(e *env, req *sidecarv1.StreamEventsRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.client.StreamEvents(ctx, req)
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

func hasField(st *status.Status, field string) bool {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}

func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

func TestSendEvent(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	payload := `{"manuscriptId":"M-1","title":"𝔸 study of ü"}`
	resp, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(payload), IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetEventId() == "" || resp.GetState() != sidecarv1.SentEventState_SENT_EVENT_STATE_ACCEPTED || resp.GetIdempotencyKey() != "k1" {
		t.Fatalf("SendEvent = %v", resp)
	}
	again, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(payload), IdempotencyKey: "k1"})
	if err != nil || again.GetEventId() != resp.GetEventId() {
		t.Fatalf("repeat SendEvent = %v, %v; want event id %s", again, err, resp.GetEventId())
	}
	in := e.emu.Inbound()
	if len(in) != 1 || string(in[0].Payload) != payload || in[0].EventType != "manuscript.submitted" {
		t.Fatalf("emulator received %+v, want one byte-exact event", in)
	}
	_, err = e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{"other":1}`), IdempotencyKey: "k1"})
	if st := status.Convert(err); st.Code() != codes.AlreadyExists || errorInfo(st).GetReason() != grpcapi.ReasonKeyConflict {
		t.Fatalf("key reused for another event: %v, want AlreadyExists %s", err, grpcapi.ReasonKeyConflict)
	}
	got, err := e.client.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: "k1"})
	if err != nil || got.GetSentEvent().GetEventId() != resp.GetEventId() || got.GetSentEvent().GetState() != sidecarv1.SentEventState_SENT_EVENT_STATE_ACCEPTED {
		t.Fatalf("GetSentEvent = %v, %v", got, err)
	}

	async, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"s":1}`), Async: true})
	if err != nil || async.GetState() != sidecarv1.SentEventState_SENT_EVENT_STATE_QUEUED || async.GetIdempotencyKey() == "" {
		t.Fatalf("async SendEvent = %v, %v; want QUEUED with a generated key", async, err)
	}
}

func TestSendEventErrorMapping(t *testing.T) {
	tests := []struct {
		name   string
		faults emulator.Faults
		key    string
		code   codes.Code
		reason string
	}{
		{"ChronosHub down", emulator.Faults{ErrorRate: 1}, apiKey, codes.Unavailable, grpcapi.ReasonUnavailable},
		{"rate limited", emulator.Faults{RateLimitRate: 1, RetryAfterSeconds: 0}, apiKey, codes.Unavailable, grpcapi.ReasonUnavailable},
		{"rejected", emulator.Faults{FailNext: 1, FailNextStatus: 400}, apiKey, codes.InvalidArgument, grpcapi.ReasonEventRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			if err := e.emu.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			_, err := e.client.SendEvent(context.Background(), &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{}`)})
			st := status.Convert(err)
			if st.Code() != tt.code || errorInfo(st).GetReason() != tt.reason {
				t.Fatalf("SendEvent = %v (%v), want %v %s", st.Code(), err, tt.code, tt.reason)
			}
			if strings.Contains(err.Error(), apiKey) || strings.Contains(errorInfo(st).String(), apiKey) {
				t.Fatal("the API key appears in the status")
			}
		})
	}
}

func TestShutdownLetsStreamsSettleThenCancels(t *testing.T) {
	e := newEnv(t, "")
	e.appendEvent(t, "e1", "manuscript.submitted", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got := recv(t, s)
	if n := e.svc.OpenStreams(); n != 1 {
		t.Fatalf("OpenStreams = %d, want 1", n)
	}
	e.log.Quiesce()
	if _, err := e.client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "a", EventIds: []string{got.GetId()}}); err != nil {
		t.Fatalf("AckEvents while draining = %v", err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("stream after draining and acking ended with %v, want io.EOF", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := e.svc.WaitStreams(wctx); err != nil {
		t.Fatalf("WaitStreams = %v", err)
	}
	if err := streamErr(e, &sidecarv1.StreamEventsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("new stream while draining = %v, want Unavailable", err)
	}
}

func TestCancelStreams(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil { // the stream is open once headers arrive
		t.Fatal(err)
	}
	e.svc.CancelStreams()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv after CancelStreams = %v, want Unavailable", err)
	}
}

func TestBearerAuth(t *testing.T) {
	e := newEnv(t, "t0ken")
	tests := []struct {
		name string
		md   metadata.MD
		want codes.Code
	}{
		{"no token", nil, codes.Unauthenticated},
		{"wrong token", metadata.Pairs("authorization", "Bearer nope"), codes.Unauthenticated},
		{"not bearer", metadata.Pairs("authorization", "Basic t0ken"), codes.Unauthenticated},
		{"right token", metadata.Pairs("authorization", "Bearer t0ken"), codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.NewOutgoingContext(context.Background(), tt.md)
			_, err := e.client.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: "x"})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("GetSentEvent = %v, want %v", err, tt.want)
			}
			if tt.want == codes.Unauthenticated && strings.Contains(err.Error(), "t0ken") {
				t.Fatal("error echoes the token")
			}
		})
	}
	if _, err := grpc_health_v1.NewHealthClient(e.conn).Check(context.Background(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check without token = %v, want allowed", err)
	}
	if _, err := e.client.StreamEvents(context.Background(), &sidecarv1.StreamEventsRequest{}); err != nil {
		t.Fatal(err) // the error arrives on Recv
	}
	if err := streamErr(e, &sidecarv1.StreamEventsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream without token = %v, want Unauthenticated", err)
	}
}

func TestSubscriptions(t *testing.T) {
	e := newEnv(t, "")
	e.appendEvent(t, "held", "manuscript.status.updated", `{}`)
	e.appendEvent(t, "waiting", "manuscript.status.updated", `{}`)
	e.appendEvent(t, "kept", "manuscript.submitted", `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "subs", EventTypes: []string{"manuscript.>"}, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, s); got.GetId() != "held" {
		t.Fatalf("first event %v", got)
	}
	got, err := e.client.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "subs"})
	if err != nil {
		t.Fatal(err)
	}
	sub := got.GetSubscription()
	if sub.GetName() != "subs" || !cmp.Equal(sub.GetEventTypes(), []string{"manuscript.>"}) || sub.GetPendingCount() != 2 || sub.GetUnackedCount() != 1 ||
		sub.GetOpenStreams() != 1 || sub.GetDeadLetterCount() != 0 || sub.GetOldestUnackedTime() == nil || sub.GetCreateTime() == nil {
		t.Fatalf("GetSubscription = %v", sub)
	}
	list, err := e.client.ListSubscriptions(ctx, &sidecarv1.ListSubscriptionsRequest{})
	if err != nil || len(list.GetSubscriptions()) != 1 || list.GetSubscriptions()[0].GetName() != "subs" {
		t.Fatalf("ListSubscriptions = %v, %v", list, err)
	}

	// A narrower filter on a stream is refused, saying what to do.
	err = streamErr(e, &sidecarv1.StreamEventsRequest{Subscription: "subs", EventTypes: []string{"manuscript.submitted"}})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "manuscript.>") || !strings.Contains(st.Message(), "UpdateSubscription") {
		t.Fatalf("narrower stream: %v; want FAILED_PRECONDITION naming the filter and UpdateSubscription", err)
	}

	// Narrowing explicitly dead-letters the excluded events: the pending
	// one at once, the held one when its stream ends.
	upd, err := e.client.UpdateSubscription(ctx, &sidecarv1.UpdateSubscriptionRequest{Subscription: "subs", EventTypes: []string{"manuscript.submitted"}})
	if err != nil || upd.GetDeadLetteredCount() != 1 || !cmp.Equal(upd.GetSubscription().GetEventTypes(), []string{"manuscript.submitted"}) {
		t.Fatalf("UpdateSubscription = %v, %v", upd, err)
	}
	cancel()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	s, err = e.client.StreamEvents(ctx2, &sidecarv1.StreamEventsRequest{Subscription: "subs"})
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, s); got.GetId() != "kept" {
		t.Fatalf("after narrowing got %v, want kept", got)
	}
	var dead *sidecarv1.ListDeadLettersResponse
	for deadline := time.Now().Add(10 * time.Second); len(dead.GetDeadLetters()) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters = %v, want held and waiting", dead)
		}
		if dead, err = e.client.ListDeadLetters(ctx2, &sidecarv1.ListDeadLettersRequest{Subscription: "subs"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dead.GetDeadLetters() {
		if d.GetReason() != eventlog.ReasonFilterNarrowed {
			t.Errorf("dead letter %s reason %q, want %q", d.GetEvent().GetId(), d.GetReason(), eventlog.ReasonFilterNarrowed)
		}
	}

	// Deleting ends the stream with NOT_FOUND and removes everything.
	if _, err := e.client.DeleteSubscription(ctx2, &sidecarv1.DeleteSubscriptionRequest{Subscription: "subs"}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := s.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.NotFound {
			t.Fatalf("stream on a deleted subscription ended with %v, want NOT_FOUND", err)
		}
		break
	}
	if _, err := e.client.GetSubscription(ctx2, &sidecarv1.GetSubscriptionRequest{Subscription: "subs"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetSubscription(deleted) = %v, want NOT_FOUND", err)
	}
}
