package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// eventService is a test EventServiceServer whose methods call the
// corresponding function field, or answer Unimplemented when it is nil.
type eventService struct {
	sidecarv1.UnimplementedEventServiceServer
	streamEvents    func(*sidecarv1.StreamEventsRequest, grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error
	ackEvents       func(context.Context, *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error)
	sendEvent       func(context.Context, *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error)
	getSentEvent    func(context.Context, *sidecarv1.GetSentEventRequest) (*sidecarv1.GetSentEventResponse, error)
	listDeadLetters func(context.Context, *sidecarv1.ListDeadLettersRequest) (*sidecarv1.ListDeadLettersResponse, error)
}

func unimplemented() error { return status.Error(codes.Unimplemented, "not in this test") }

func (s *eventService) StreamEvents(req *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
	if s.streamEvents == nil {
		return unimplemented()
	}
	return s.streamEvents(req, stream)
}

func (s *eventService) AckEvents(ctx context.Context, req *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error) {
	if s.ackEvents == nil {
		return nil, unimplemented()
	}
	return s.ackEvents(ctx, req)
}

func (s *eventService) SendEvent(ctx context.Context, req *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
	if s.sendEvent == nil {
		return nil, unimplemented()
	}
	return s.sendEvent(ctx, req)
}

func (s *eventService) GetSentEvent(ctx context.Context, req *sidecarv1.GetSentEventRequest) (*sidecarv1.GetSentEventResponse, error) {
	if s.getSentEvent == nil {
		return nil, unimplemented()
	}
	return s.getSentEvent(ctx, req)
}

func (s *eventService) ListDeadLetters(ctx context.Context, req *sidecarv1.ListDeadLettersRequest) (*sidecarv1.ListDeadLettersResponse, error) {
	if s.listDeadLetters == nil {
		return nil, unimplemented()
	}
	return s.listDeadLetters(ctx, req)
}

// startGateway serves svc on a loopback gRPC listener and returns an HTTP
// test server running New over a real client connection to it.
func startGateway(t *testing.T, svc sidecarv1.EventServiceServer, opts Options, serverOpts ...grpc.ServerOption) *httptest.Server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(serverOpts...)
	sidecarv1.RegisterEventServiceServer(gs, svc)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		gs.Stop()
		t.Fatal(err)
	}
	h, err := New(t.Context(), conn, opts)
	if err != nil {
		gs.Stop()
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		// Stop first: it cancels streams a test left open, which ends the
		// HTTP handlers that ts.Close waits for.
		gs.Stop()
		// ErrServerStopped: Stop came before the Serve goroutine ran (a test
		// that the gateway answered alone, on a loaded machine).
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("gRPC Serve: %v", err)
		}
		if err := conn.Close(); err != nil {
			t.Errorf("close gRPC connection: %v", err)
		}
		ts.Close()
	})
	return ts
}

// response is what a test reads of an HTTP response.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request to ts and reads the whole response.
func do(t *testing.T, ts *httptest.Server, method, path string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// post sends a JSON body.
func post(t *testing.T, ts *httptest.Server, path, body string) response {
	t.Helper()
	return do(t, ts, http.MethodPost, path, strings.NewReader(body), http.Header{"Content-Type": {"application/json"}})
}

// jsonValue decodes s, which the test itself wrote, into a generic value for
// comparing JSON regardless of key order and whitespace.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode JSON %q: %v", s, err)
	}
	return v
}

// errorBody is the JSON body of an error response: a google.rpc.Status.
type errorBody struct {
	Code    codes.Code        `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// wantError checks that r is a JSON error response with the HTTP status and
// gRPC code, and returns its body.
func wantError(t *testing.T, r response, httpStatus int, code codes.Code) errorBody {
	t.Helper()
	if r.status != httpStatus {
		t.Errorf("HTTP status = %d, want %d (body %s)", r.status, httpStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e errorBody
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Code != code || e.Message == "" {
		t.Errorf("error body = %s, want code %d (%v) and a message", r.body, code, code)
	}
	return e
}

// streamError checks that r, the answer to a stream that failed after it
// opened and before its first event, is the single line {"error":status},
// and returns r with the status as its body.
func streamError(t *testing.T, r response) response {
	t.Helper()
	var line struct {
		Error json.RawMessage `json:"error"`
	}
	body, ok := strings.CutSuffix(r.body, "\n")
	if !ok || strings.Contains(body, "\n") || json.Unmarshal([]byte(body), &line) != nil || line.Error == nil {
		t.Fatalf("stream error body = %q, want one line {\"error\":...}", r.body)
	}
	r.body = string(line.Error)
	return r
}
