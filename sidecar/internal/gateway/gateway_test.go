package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// recordSendEvent returns a SendEvent implementation that passes each request
// to got and accepts it.
func recordSendEvent(got chan<- *sidecarv1.SendEventRequest) func(context.Context, *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
	return func(_ context.Context, req *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
		got <- req
		return &sidecarv1.SendEventResponse{
			EventId:        "e-1",
			State:          sidecarv1.SentEventState_SENT_EVENT_STATE_ACCEPTED,
			IdempotencyKey: req.GetIdempotencyKey(),
		}, nil
	}
}

func TestSendEventPayload(t *testing.T) {
	got := make(chan *sidecarv1.SendEventRequest, 1)
	ts := startGateway(t, &eventService{sendEvent: recordSendEvent(got)}, Options{})

	tests := []struct {
		name string
		body string
		want *sidecarv1.SendEventRequest
	}{{
		name: "object",
		body: `{"type":"manuscript.submitted","payload":{"a":1},"idempotencyKey":"k"}`,
		want: &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{"a":1}`), IdempotencyKey: "k"},
	}, {
		name: "unusual spacing and key order",
		body: "{ \"payload\" :\t{ \"z\" : [ 1 , 2 ] ,\"a\":{ } ,  \"m\" :null } , \"type\" : \"t\" }",
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`{ "z" : [ 1 , 2 ] ,"a":{ } ,  "m" :null }`)},
	}, {
		name: "multi-line",
		body: "{\n  \"type\": \"t\",\n  \"payload\": {\n    \"a\": 1,\n    \"b\": [\n      true\n    ]\n  }\n}\n",
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte("{\n    \"a\": 1,\n    \"b\": [\n      true\n    ]\n  }")},
	}, {
		name: "non-ASCII, emoji and escapes",
		body: `{"type":"t","payload":{"title":"Zürich — 研究 🎉","escaped":"\u00fc\ud83c\udf89\n","ключ":"значение"}}`,
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`{"title":"Zürich — 研究 🎉","escaped":"\u00fc\ud83c\udf89\n","ключ":"значение"}`)},
	}, {
		name: "number spellings",
		body: `{"type":"t","payload":{"a":1.0e3,"b":-0.0,"c":1E-7,"d":123456789012345678901234567890,"e":10.50}}`,
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`{"a":1.0e3,"b":-0.0,"c":1E-7,"d":123456789012345678901234567890,"e":10.50}`)},
	}, {
		name: "string payload is not base64",
		body: `{"type":"t","payload":"aGVsbG8="}`,
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`"aGVsbG8="`)},
	}, {
		name: "array payload",
		body: `{"type":"t","payload":[1, "two"]}`,
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`[1, "two"]`)},
	}, {
		name: "number payload",
		body: `{"type":"t","payload":1.0e3}`,
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`1.0e3`)},
	}, {
		name: "missing payload",
		body: `{"type":"t","idempotencyKey":"k"}`,
		want: &sidecarv1.SendEventRequest{Type: "t", IdempotencyKey: "k"},
	}, {
		name: "null payload",
		body: `{"type":"t","payload":null}`,
		want: &sidecarv1.SendEventRequest{Type: "t"},
	}, {
		name: "proto field names and async",
		body: `{"type":"t","payload":{},"idempotency_key":"k2","async":true}`,
		want: &sidecarv1.SendEventRequest{Type: "t", Payload: []byte(`{}`), IdempotencyKey: "k2", Async: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, ts, "/v1/events:send", tt.body)
			if r.status != http.StatusOK {
				t.Fatalf("POST /v1/events:send %s: status %d, body %s", tt.body, r.status, r.body)
			}
			req := <-got
			if diff := cmp.Diff(tt.want, req, protocmp.Transform()); diff != "" {
				t.Errorf("SendEventRequest mismatch (-want +got):\n%s", diff)
			}
			if !bytes.Equal(req.GetPayload(), tt.want.GetPayload()) {
				t.Errorf("payload = %q, want %q", req.GetPayload(), tt.want.GetPayload())
			}
			want := `{"eventId":"e-1","state":"SENT_EVENT_STATE_ACCEPTED"}`
			if tt.want.GetIdempotencyKey() != "" {
				want = `{"eventId":"e-1","state":"SENT_EVENT_STATE_ACCEPTED","idempotencyKey":"` + tt.want.GetIdempotencyKey() + `"}`
			}
			if diff := cmp.Diff(jsonValue(t, want), jsonValue(t, r.body)); diff != "" {
				t.Errorf("response body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendEventRejected(t *testing.T) {
	const maxBody = 1024
	got := make(chan *sidecarv1.SendEventRequest, 1)
	ts := startGateway(t, &eventService{sendEvent: recordSendEvent(got)}, Options{MaxBodyBytes: maxBody})

	big := `{"type":"t","payload":"` + strings.Repeat("x", maxBody) + `"}`
	tests := []struct {
		name        string
		body        io.Reader
		status      int
		wantMessage string
	}{{
		name:        "unknown field",
		body:        strings.NewReader(`{"type":"t","payload":{},"bogus":1}`),
		status:      http.StatusBadRequest,
		wantMessage: `unknown field "bogus"`,
	}, {
		name:   "malformed JSON",
		body:   strings.NewReader(`{"type":"t","payload":{"a":}}`),
		status: http.StatusBadRequest,
	}, {
		name:   "truncated JSON",
		body:   strings.NewReader(`{"type":"t","payload":{"a":1}`),
		status: http.StatusBadRequest,
	}, {
		name:        "data after the value",
		body:        strings.NewReader(`{"type":"t","payload":{}} {}`),
		status:      http.StatusBadRequest,
		wantMessage: "after the JSON value",
	}, {
		name:        "duplicate payload",
		body:        strings.NewReader(`{"type":"t","payload":{},"payload":[]}`),
		status:      http.StatusBadRequest,
		wantMessage: "duplicate",
	}, {
		name:   "not an object",
		body:   strings.NewReader(`[{"type":"t"}]`),
		status: http.StatusBadRequest,
	}, {
		name:   "wrong type for a field",
		body:   strings.NewReader(`{"type":1,"payload":{}}`),
		status: http.StatusBadRequest,
	}, {
		name:        "payload not UTF-8",
		body:        strings.NewReader("{\"type\":\"t\",\"payload\":\"\xff\"}"),
		status:      http.StatusBadRequest,
		wantMessage: "UTF-8",
	}, {
		name:   "oversize with Content-Length",
		body:   strings.NewReader(big),
		status: http.StatusRequestEntityTooLarge,
	}, {
		name:   "oversize chunked",
		body:   iotest.HalfReader(strings.NewReader(big)), // no length: sent chunked
		status: http.StatusRequestEntityTooLarge,
	}, {
		name:   "oversize trailing whitespace",
		body:   io.MultiReader(strings.NewReader(`{"type":"t","payload":{}}`), strings.NewReader(strings.Repeat(" ", maxBody))),
		status: http.StatusRequestEntityTooLarge,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, http.MethodPost, "/v1/events:send", tt.body, http.Header{"Content-Type": {"application/json"}})
			e := wantError(t, r, tt.status, codes.InvalidArgument)
			if !strings.Contains(e.Message, tt.wantMessage) {
				t.Errorf("error message = %q, want it to contain %q", e.Message, tt.wantMessage)
			}
			// The gateway answers before calling: a call would have been
			// recorded before its response was written.
			select {
			case req := <-got:
				t.Errorf("SendEvent was called with %v", req)
			default:
			}
		})
	}
}

// testEvent returns an event with every field set.
func testEvent(id string, payload []byte) *sidecarv1.Event {
	return &sidecarv1.Event{
		Id:         id,
		Type:       "manuscript.submitted",
		Payload:    payload,
		SignedAt:   timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
		ReceivedAt: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 6, 500_000_000, time.UTC)),
		Attempt:    2,
		Sequence:   18446744073709551615,
	}
}

// eventJSON is testEvent's REST form with the given payload JSON.
func eventJSON(id, payload string) string {
	return `{"id":"` + id + `","type":"manuscript.submitted","payload":` + payload +
		`,"signedAt":"2025-01-02T03:04:05Z","receivedAt":"2025-01-02T03:04:06.500Z","attempt":2,"sequence":"18446744073709551615"}`
}

// readLines reads a stream response body, checking that it is NDJSON.
func readLines(t *testing.T, r response) []string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	if !strings.HasSuffix(r.body, "\n") {
		t.Errorf("stream body %q does not end with a newline", r.body)
	}
	lines := strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
	for i, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("line %d is not JSON: %q", i, l)
		}
	}
	return lines
}

func TestStreamEvents(t *testing.T) {
	events := []struct {
		name    string
		payload string
		want    string // the payload in the NDJSON line
	}{{
		name:    "non-ASCII",
		payload: `{"title":"Zürich — 研究 🎉","authors":["Ødegård","José"]}`,
		want:    `{"title":"Zürich — 研究 🎉","authors":["Ødegård","José"]}`,
	}, {
		name:    "multi-line",
		payload: "{\n  \"a\": 1.0e3,\n  \"b\": {\n    \"c\": [1, 2]\n  },\n  \"s\": \"line\\nbreak\"\n}\n",
		want:    `{"a":1.0e3,"b":{"c":[1,2]},"s":"line\nbreak"}`,
	}, {
		name:    "string",
		payload: `"just a string"`,
		want:    `"just a string"`,
	}, {
		name:    "not JSON falls back to a string",
		payload: "not {json}\n",
		want:    `"not {json}\n"`,
	}, {
		name:    "not UTF-8 falls back to a string",
		payload: "\"\xff\"",
		want:    `"\"\ufffd\""`,
	}}

	got := make(chan *sidecarv1.StreamEventsRequest, 1)
	ts := startGateway(t, &eventService{
		streamEvents: func(req *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			got <- req
			for _, e := range events {
				if err := stream.Send(&sidecarv1.StreamEventsResponse{Event: testEvent(e.name, []byte(e.payload))}); err != nil {
					return err
				}
			}
			return nil
		},
	}, Options{})

	r := do(t, ts, http.MethodGet, "/v1/events:stream?subscription=s&eventTypes=manuscript.*&startPosition=START_POSITION_NOW&maxInFlight=10", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	wantReq := &sidecarv1.StreamEventsRequest{
		Subscription:  "s",
		EventTypes:    []string{"manuscript.*"},
		StartPosition: sidecarv1.StartPosition_START_POSITION_NOW,
		MaxInFlight:   10,
	}
	if diff := cmp.Diff(wantReq, <-got, protocmp.Transform()); diff != "" {
		t.Errorf("StreamEventsRequest mismatch (-want +got):\n%s", diff)
	}
	lines := readLines(t, r)
	if len(lines) != len(events) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(events), r.body)
	}
	for i, e := range events {
		t.Run(e.name, func(t *testing.T) {
			want := `{"result":{"event":` + eventJSON(e.name, e.want) + `}}`
			if diff := cmp.Diff(jsonValue(t, want), jsonValue(t, lines[i])); diff != "" {
				t.Errorf("line %d mismatch (-want +got):\n%s", i, diff)
			}
			var line struct {
				Result struct {
					Event struct {
						Payload json.RawMessage `json:"payload"`
					} `json:"event"`
				} `json:"result"`
			}
			if err := json.Unmarshal([]byte(lines[i]), &line); err != nil {
				t.Fatal(err)
			}
			if got := string(line.Result.Event.Payload); got != e.want {
				t.Errorf("payload = %s, want %s", got, e.want)
			}
		})
	}
}

func TestStreamQueryParameters(t *testing.T) {
	got := make(chan *sidecarv1.StreamEventsRequest, 1)
	ts := startGateway(t, &eventService{
		streamEvents: func(req *sidecarv1.StreamEventsRequest, _ grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			got <- req
			return nil
		},
	}, Options{})

	full := &sidecarv1.StreamEventsRequest{
		Subscription:  "s-1",
		EventTypes:    []string{"manuscript.*", "review.>"},
		StartPosition: sidecarv1.StartPosition_START_POSITION_TIME,
		StartTime:     timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)),
		MaxInFlight:   10,
		MaxEvents:     3,
	}
	tests := []struct {
		name  string
		query string
		want  *sidecarv1.StreamEventsRequest // nil: refused with 400
	}{{
		name:  "camelCase",
		query: "subscription=s-1&eventTypes=manuscript.*&eventTypes=review.>&startPosition=START_POSITION_TIME&startTime=2025-01-02T03:04:05.6Z&maxInFlight=10&maxEvents=3",
		want:  full,
	}, {
		name:  "snake_case",
		query: "subscription=s-1&event_types=manuscript.*&event_types=review.>&start_position=START_POSITION_TIME&start_time=2025-01-02T03:04:05.6Z&max_in_flight=10&max_events=3",
		want:  full,
	}, {
		name:  "enum by number",
		query: "startPosition=2",
		want:  &sidecarv1.StreamEventsRequest{StartPosition: sidecarv1.StartPosition_START_POSITION_NOW},
	}, {
		name:  "unknown parameters ignored",
		query: "subscription=s&bogus=1",
		want:  &sidecarv1.StreamEventsRequest{Subscription: "s"},
	}, {
		name:  "both spellings of one field",
		query: "maxInFlight=1&max_in_flight=2",
	}, {
		name:  "bad enum",
		query: "startPosition=START_POSITION_LATER",
	}, {
		name:  "bad number",
		query: "maxInFlight=-1",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Encode the query as a client would ('>' and '*' escaped or not).
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			r := do(t, ts, http.MethodGet, "/v1/events:stream?"+q.Encode(), nil, nil)
			if tt.want == nil {
				wantError(t, r, http.StatusBadRequest, codes.InvalidArgument)
				return
			}
			if r.status != http.StatusOK || r.body != "" {
				t.Fatalf("status %d, body %q; want 200 and an empty stream", r.status, r.body)
			}
			if diff := cmp.Diff(tt.want, <-got, protocmp.Transform()); diff != "" {
				t.Errorf("StreamEventsRequest mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamEventsError(t *testing.T) {
	conflict := func() error {
		st, err := status.New(codes.FailedPrecondition, "filter conflict").WithDetails(&errdetails.ErrorInfo{
			Reason: "FILTER_CONFLICT", Domain: "chronoshub-sidecar", Metadata: map[string]string{"subscription": "s"},
		})
		if err != nil {
			panic(err)
		}
		return st.Err()
	}
	const errorJSON = `{"code":9,"message":"filter conflict","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",` +
		`"reason":"FILTER_CONFLICT","domain":"chronoshub-sidecar","metadata":{"subscription":"s"}}]}`

	tests := []struct {
		name      string
		sendFirst int // events sent before the error
		status    int
		want      []string
	}{{
		name:      "mid-stream",
		sendFirst: 2,
		status:    http.StatusOK,
		want: []string{
			`{"result":{"event":` + eventJSON("e-0", `{"n":0}`) + `}}`,
			`{"result":{"event":` + eventJSON("e-1", `{"n":1}`) + `}}`,
			`{"error":` + errorJSON + `}`,
		},
	}, {
		name:   "before the first event",
		status: http.StatusBadRequest,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startGateway(t, &eventService{
				streamEvents: func(_ *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
					for i := range tt.sendFirst {
						payload := []byte(`{"n":` + string(rune('0'+i)) + `}`)
						if err := stream.Send(&sidecarv1.StreamEventsResponse{Event: testEvent("e-"+string(rune('0'+i)), payload)}); err != nil {
							return err
						}
					}
					return conflict()
				},
			}, Options{})
			r := do(t, ts, http.MethodGet, "/v1/events:stream?subscription=s", nil, nil)
			if tt.want == nil {
				wantError(t, r, tt.status, codes.FailedPrecondition)
				if diff := cmp.Diff(jsonValue(t, errorJSON), jsonValue(t, r.body)); diff != "" {
					t.Errorf("error body mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if r.status != tt.status {
				t.Errorf("status = %d, want %d", r.status, tt.status)
			}
			lines := readLines(t, r)
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tt.want), r.body)
			}
			for i := range lines {
				if diff := cmp.Diff(jsonValue(t, tt.want[i]), jsonValue(t, lines[i])); diff != "" {
					t.Errorf("line %d mismatch (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestStreamClientDisconnect(t *testing.T) {
	sent := make(chan struct{})
	ended := make(chan error, 1)
	ts := startGateway(t, &eventService{
		streamEvents: func(_ *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			if err := stream.Send(&sidecarv1.StreamEventsResponse{Event: testEvent("e-1", []byte(`{}`))}); err != nil {
				return err
			}
			close(sent)
			<-stream.Context().Done()
			ended <- stream.Context().Err()
			return nil
		},
	}, Options{})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/events:stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The first line arrives while the stream is still open: it was flushed.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v", err)
	}
	<-sent
	if !json.Valid([]byte(line)) {
		t.Errorf("first line is not JSON: %q", line)
	}

	cancel()
	resp.Body.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("server stream context ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second): // A failure guard, not timing.
		t.Fatal("the server stream was not cancelled after the HTTP client went away")
	}
}

func TestListDeadLetters(t *testing.T) {
	got := make(chan *sidecarv1.ListDeadLettersRequest, 1)
	deadAt := timestamppb.New(time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC))
	ts := startGateway(t, &eventService{
		listDeadLetters: func(_ context.Context, req *sidecarv1.ListDeadLettersRequest) (*sidecarv1.ListDeadLettersResponse, error) {
			got <- req
			return &sidecarv1.ListDeadLettersResponse{
				DeadLetters: []*sidecarv1.DeadLetter{
					{Event: testEvent("d-1", []byte("{\n  \"nested\": {\"deep\": [1, {\"x\": \"ü\"}]}\n}")), DeadAt: deadAt},
					{Event: testEvent("d-2", []byte(`[true, null]`)), DeadAt: deadAt},
					{Event: testEvent("d-3", nil), DeadAt: deadAt},
				},
				NextPageToken: "next",
			}, nil
		},
	}, Options{})

	r := do(t, ts, http.MethodGet, "/v1/subscriptions/sub-1/dead-letters?pageSize=3&page_token=tok", nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	wantReq := &sidecarv1.ListDeadLettersRequest{Subscription: "sub-1", PageSize: 3, PageToken: "tok"}
	if diff := cmp.Diff(wantReq, <-got, protocmp.Transform()); diff != "" {
		t.Errorf("ListDeadLettersRequest mismatch (-want +got):\n%s", diff)
	}
	noPayload := strings.Replace(eventJSON("d-3", "null"), `"payload":null,`, "", 1)
	want := `{"deadLetters":[` +
		`{"event":` + eventJSON("d-1", `{"nested":{"deep":[1,{"x":"ü"}]}}`) + `,"deadAt":"2025-02-03T04:05:06Z"},` +
		`{"event":` + eventJSON("d-2", `[true,null]`) + `,"deadAt":"2025-02-03T04:05:06Z"},` +
		`{"event":` + noPayload + `,"deadAt":"2025-02-03T04:05:06Z"}` +
		`],"nextPageToken":"next"}`
	if diff := cmp.Diff(jsonValue(t, want), jsonValue(t, r.body)); diff != "" {
		t.Errorf("response mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.body, `"payload":{"nested":{"deep":[1,{"x":"ü"}]}}`) {
		t.Errorf("response %s does not carry the first payload compacted", r.body)
	}
}

func TestAckEvents(t *testing.T) {
	got := make(chan *sidecarv1.AckEventsRequest, 1)
	ts := startGateway(t, &eventService{
		ackEvents: func(_ context.Context, req *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error) {
			got <- req
			return &sidecarv1.AckEventsResponse{EventIds: req.GetEventIds()[:1], UnknownEventIds: req.GetEventIds()[1:]}, nil
		},
	}, Options{})

	r := post(t, ts, "/v1/events:ack", `{"subscription":"s","eventIds":["a","b"],"reject":true,"redeliverDelay":"1.5s"}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	wantReq := &sidecarv1.AckEventsRequest{
		Subscription:   "s",
		EventIds:       []string{"a", "b"},
		Reject:         true,
		RedeliverDelay: durationpb.New(1500 * time.Millisecond),
	}
	if diff := cmp.Diff(wantReq, <-got, protocmp.Transform()); diff != "" {
		t.Errorf("AckEventsRequest mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(jsonValue(t, `{"eventIds":["a"],"unknownEventIds":["b"]}`), jsonValue(t, r.body)); diff != "" {
		t.Errorf("response mismatch (-want +got):\n%s", diff)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

func TestErrors(t *testing.T) {
	withDetails := func(c codes.Code, msg string, details ...protoadapt.MessageV1) error {
		st, err := status.New(c, msg).WithDetails(details...)
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	fail := make(chan error, 1)
	ts := startGateway(t, &eventService{
		sendEvent: func(context.Context, *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
			return nil, <-fail
		},
		getSentEvent: func(context.Context, *sidecarv1.GetSentEventRequest) (*sidecarv1.GetSentEventResponse, error) {
			return nil, <-fail
		},
	}, Options{})

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		err    error // what the server returns; nil if it is not called
		status int
		want   string // the JSON body
	}{{
		name:   "InvalidArgument with BadRequest",
		method: http.MethodPost,
		path:   "/v1/events:send",
		body:   `{"type":"t","payload":{}}`,
		err: withDetails(codes.InvalidArgument, "invalid event",
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "payload.title", Description: "required"},
				{Field: "type", Description: "not allowed"},
			}}),
		status: http.StatusBadRequest,
		want: `{"code":3,"message":"invalid event","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[` +
			`{"field":"payload.title","description":"required"},{"field":"type","description":"not allowed"}]}]}`,
	}, {
		name:   "AlreadyExists with ErrorInfo",
		method: http.MethodPost,
		path:   "/v1/events:send",
		body:   `{"type":"t","payload":{},"idempotencyKey":"k"}`,
		err: withDetails(codes.AlreadyExists, "idempotency key already used",
			&errdetails.ErrorInfo{Reason: "IDEMPOTENCY_KEY_CONFLICT", Domain: "chronoshub-sidecar"}),
		status: http.StatusConflict,
		want: `{"code":6,"message":"idempotency key already used","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",` +
			`"reason":"IDEMPOTENCY_KEY_CONFLICT","domain":"chronoshub-sidecar"}]}`,
	}, {
		name:   "NotFound",
		method: http.MethodGet,
		path:   "/v1/sent-events/k-1",
		err:    status.Error(codes.NotFound, "no such event"),
		status: http.StatusNotFound,
		want:   `{"code":5,"message":"no such event"}`,
	}, {
		name:   "Unavailable",
		method: http.MethodGet,
		path:   "/v1/sent-events/k-1",
		err:    status.Error(codes.Unavailable, "shutting down"),
		status: http.StatusServiceUnavailable,
		want:   `{"code":14,"message":"shutting down"}`,
	}, {
		name:   "raw error is Unknown",
		method: http.MethodGet,
		path:   "/v1/sent-events/k-1",
		err:    errors.New("boom"),
		status: http.StatusInternalServerError,
		want:   `{"code":2,"message":"boom"}`,
	}, {
		name:   "unknown path",
		method: http.MethodGet,
		path:   "/v1/nope",
		status: http.StatusNotFound,
		want:   `{"code":5,"message":"Not Found"}`,
	}, {
		name:   "unknown verb",
		method: http.MethodPost,
		path:   "/v1/events:explode",
		body:   `{}`,
		status: http.StatusNotFound,
		want:   `{"code":5,"message":"Not Found"}`,
	}, {
		name:   "GET on a POST route",
		method: http.MethodGet,
		path:   "/v1/events:send",
		status: http.StatusMethodNotAllowed,
		want:   `{"code":12,"message":"Method Not Allowed"}`,
	}, {
		name:   "DELETE on a GET route",
		method: http.MethodDelete,
		path:   "/v1/subscriptions/s/dead-letters",
		status: http.StatusMethodNotAllowed,
		want:   `{"code":12,"message":"Method Not Allowed"}`,
	}, {
		name:   "form POST on the stream route",
		method: http.MethodPost,
		path:   "/v1/events:stream",
		body:   "subscription=s",
		status: http.StatusUnsupportedMediaType,
		want:   `{"code":3,"message":"Content-Type must be application/json"}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil {
				fail <- tt.err
			}
			header := http.Header{"Content-Type": {"application/json"}}
			if tt.method == http.MethodPost && !strings.HasPrefix(tt.body, "{") {
				header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			r := do(t, ts, tt.method, tt.path, strings.NewReader(tt.body), header)
			if r.status != tt.status {
				t.Errorf("%s %s: status = %d, want %d", tt.method, tt.path, r.status, tt.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if diff := cmp.Diff(jsonValue(t, tt.want), jsonValue(t, r.body)); diff != "" {
				t.Errorf("%s %s: body mismatch (-want +got):\n%s", tt.method, tt.path, diff)
			}
			select {
			case err := <-fail:
				t.Errorf("the server was not called with error %v", err)
			default:
			}
		})
	}
}

func TestHeadersForwarded(t *testing.T) {
	const token = "Bearer s3cret"
	requireToken := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) != 1 || v[0] != token {
			return status.Error(codes.Unauthenticated, "bearer token required")
		}
		return nil
	}
	gotMD := make(chan metadata.MD, 1)
	ts := startGateway(t, &eventService{
		getSentEvent: func(ctx context.Context, req *sidecarv1.GetSentEventRequest) (*sidecarv1.GetSentEventResponse, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			gotMD <- md
			return &sidecarv1.GetSentEventResponse{SentEvent: &sidecarv1.SentEvent{IdempotencyKey: req.GetIdempotencyKey()}}, nil
		},
		streamEvents: func(_ *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			gotMD <- md
			return nil
		},
	}, Options{},
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := requireToken(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := requireToken(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)

	tests := []struct {
		name   string
		path   string
		header http.Header
		status int
	}{{
		name:   "unary with token",
		path:   "/v1/sent-events/k",
		header: http.Header{"Authorization": {token}, "X-Custom": {"c"}, "Grpc-Metadata-Injected": {"i"}},
		status: http.StatusOK,
	}, {
		name:   "stream with token",
		path:   "/v1/events:stream",
		header: http.Header{"Authorization": {token}, "X-Custom": {"c"}, "Grpc-Metadata-Injected": {"i"}},
		status: http.StatusOK,
	}, {
		name:   "unary without token",
		path:   "/v1/sent-events/k",
		status: http.StatusUnauthorized,
	}, {
		name:   "stream with a wrong token",
		path:   "/v1/events:stream",
		header: http.Header{"Authorization": {"Bearer wrong"}},
		status: http.StatusUnauthorized,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, ts, http.MethodGet, tt.path, nil, tt.header)
			if tt.status != http.StatusOK {
				wantError(t, r, tt.status, codes.Unauthenticated)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			md := <-gotMD
			if diff := cmp.Diff([]string{token}, md.Get("authorization")); diff != "" {
				t.Errorf("metadata authorization mismatch (-want +got):\n%s", diff)
			}
			for _, k := range []string{"x-custom", "injected", "grpc-metadata-injected", "grpcgateway-x-custom"} {
				if v := md.Get(k); v != nil {
					t.Errorf("metadata %q = %q, want it not forwarded", k, v)
				}
			}
		})
	}
}

func TestNewRefusesBadArguments(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tests := []struct {
		name string
		conn *grpc.ClientConn
		opts Options
	}{
		{name: "nil connection", opts: Options{}},
		{name: "negative MaxBodyBytes", conn: conn, opts: Options{MaxBodyBytes: -1}},
		{name: "negative MaxMessageBytes", conn: conn, opts: Options{MaxMessageBytes: -1}},
		{name: "negative HeartbeatInterval", conn: conn, opts: Options{HeartbeatInterval: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(t.Context(), tt.conn, tt.opts); err == nil {
				t.Errorf("New(%v) succeeded, want an error", tt.opts)
			}
		})
	}
}

// TestBrowserRequestsRefused checks that what a web page could send to the
// local API without a CORS preflight is refused before the server is called:
// bodies not declared JSON, and (DNS rebinding) a Host that is not loopback.
func TestBrowserRequestsRefused(t *testing.T) {
	calls := make(chan *sidecarv1.SendEventRequest, 10)
	svc := &eventService{sendEvent: func(_ context.Context, req *sidecarv1.SendEventRequest) (*sidecarv1.SendEventResponse, error) {
		calls <- req
		return &sidecarv1.SendEventResponse{EventId: "e"}, nil
	}}
	ts := startGateway(t, svc, Options{LoopbackHostOnly: true})
	body := `{"type":"manuscript.submitted","payload":{}}`
	tests := []struct {
		name        string
		contentType string
		host        string
		status      int
	}{
		{"text/plain", "text/plain", "", http.StatusUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", "", http.StatusUnsupportedMediaType},
		{"multipart", "multipart/form-data; boundary=x", "", http.StatusUnsupportedMediaType},
		{"no content type", "", "", http.StatusUnsupportedMediaType},
		{"rebinding host", "application/json", "evil.example:50052", http.StatusForbidden},
		{"rebinding host without port", "application/json", "evil.example", http.StatusForbidden},
		{"JSON with charset", "application/json; charset=utf-8", "", http.StatusOK},
		{"localhost", "application/json", "localhost:50052", http.StatusOK},
		{"IPv6 loopback", "application/json", "[::1]:50052", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/v1/events:send", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			select {
			case <-calls:
				if tt.status != http.StatusOK {
					t.Fatal("the server was called")
				}
			default:
				if tt.status == http.StatusOK {
					t.Fatal("the server was not called")
				}
			}
		})
	}
}

// TestCrossOriginRefused checks that every route, safe methods included,
// refuses a request a web page of another origin made (Sec-Fetch-Site,
// Origin) with 403 before the server is called, and that programs, which
// send neither header, and same-origin requests get through.
func TestCrossOriginRefused(t *testing.T) {
	calls := make(chan string, 100)
	record := func(method string) { calls <- method }
	ts := startGateway(t, &eventService{}, Options{LoopbackHostOnly: true},
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			record(info.FullMethod)
			return handler(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			record(info.FullMethod)
			return handler(srv, ss)
		}))
	hostPort := strings.TrimPrefix(ts.URL, "http://")
	_, port, _ := strings.Cut(hostPort, ":")
	own := ts.URL

	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/v1/events:stream?subscription=app&eventTypes=other.*", ""},
		{http.MethodPost, "/v1/events:ack", `{"subscription":"app","eventIds":["e"]}`},
		{http.MethodPost, "/v1/events:send", `{"type":"manuscript.submitted","payload":{}}`},
		{http.MethodGet, "/v1/sent-events/k", ""},
		{http.MethodGet, "/v1/subscriptions/app/dead-letters", ""},
		{http.MethodPost, "/v1/subscriptions/app/dead-letters:replay", `{"all":true}`},
	}
	tests := []struct {
		name    string
		host    string // the Host header; empty means ts's
		origin  []string
		site    []string
		allowed bool
	}{
		{name: "no browser headers", allowed: true},
		{name: "typed into the address bar", site: []string{"none"}, allowed: true},
		{name: "same-origin", site: []string{"same-origin"}, allowed: true},
		{name: "own origin", origin: []string{own}, allowed: true},
		{name: "own origin and same-origin", origin: []string{own}, site: []string{"same-origin"}, allowed: true},
		{name: "own origin, host in another case", host: "localhost:" + port, origin: []string{"HTTP://LocalHost:" + port}, allowed: true},
		{name: "own origin, default port", host: "localhost", origin: []string{"http://localhost:80"}, allowed: true},
		{name: "own origin with a slash", origin: []string{own + "/"}, allowed: true},
		{name: "same-site", site: []string{"same-site"}},
		{name: "cross-site", site: []string{"cross-site"}},
		{name: "unknown Sec-Fetch-Site", site: []string{"bogus"}},
		{name: "empty Sec-Fetch-Site", site: []string{""}},
		{name: "two Sec-Fetch-Site", site: []string{"same-origin", "cross-site"}},
		{name: "other port", origin: []string{"http://127.0.0.1:1"}},
		{name: "localhost page to 127.0.0.1", origin: []string{"http://localhost:" + port}},
		{name: "127.0.0.1 page to localhost", host: "localhost:" + port, origin: []string{own}},
		{name: "other scheme", origin: []string{"https://" + hostPort}},
		{name: "opaque origin", origin: []string{"null"}},
		{name: "empty origin", origin: []string{""}},
		{name: "origin with a path", origin: []string{own + "/page"}},
		{name: "origin with user info", origin: []string{"http://u@" + hostPort}},
		{name: "remote site", origin: []string{"https://evil.example"}},
		{name: "two origins", origin: []string{own, "https://evil.example"}},
		{name: "own origin but cross-site", origin: []string{own}, site: []string{"cross-site"}},
		{name: "same-origin but another origin", origin: []string{"http://127.0.0.1:1"}, site: []string{"same-origin"}},
		{name: "no-cors GET from another site", site: []string{"same-site"}},
	}
	for _, tt := range tests {
		for _, rt := range routes {
			t.Run(tt.name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				h := http.Header{}
				if rt.body != "" {
					h.Set("Content-Type", "application/json")
				}
				h["Origin"] = tt.origin
				h["Sec-Fetch-Site"] = tt.site
				req, err := http.NewRequestWithContext(t.Context(), rt.method, ts.URL+rt.path, strings.NewReader(rt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header = h
				if tt.host != "" {
					req.Host = tt.host
				}
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				r := response{status: resp.StatusCode, header: resp.Header, body: string(b)}
				var called []string
				for len(calls) > 0 {
					called = append(called, <-calls)
				}
				if tt.allowed {
					if len(called) != 1 {
						t.Errorf("server calls = %q, want one (response %d %s)", called, r.status, r.body)
					}
					return
				}
				e := wantError(t, r, http.StatusForbidden, codes.PermissionDenied)
				if !strings.Contains(e.Message, "cross-origin") {
					t.Errorf("message = %q, want it to say cross-origin", e.Message)
				}
				if len(called) != 0 {
					t.Errorf("server calls = %q, want none", called)
				}
			})
		}
	}
	// A CORS preflight is refused too, and carries no CORS permission.
	r := do(t, ts, http.MethodOptions, "/v1/events:send", nil, http.Header{
		"Origin": {"http://127.0.0.1:1"}, "Sec-Fetch-Site": {"same-site"}, "Access-Control-Request-Method": {"POST"},
	})
	wantError(t, r, http.StatusForbidden, codes.PermissionDenied)
	if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("preflight answered Access-Control-Allow-Origin %q", v)
	}
}

// TestGetSentEventKeyPath checks that an idempotency key reaches
// GetSentEvent whole from the URL path, slashes included, whether the client
// writes them as "/" or "%2F".
func TestGetSentEventKeyPath(t *testing.T) {
	svc := &eventService{getSentEvent: func(_ context.Context, req *sidecarv1.GetSentEventRequest) (*sidecarv1.GetSentEventResponse, error) {
		return &sidecarv1.GetSentEventResponse{SentEvent: &sidecarv1.SentEvent{IdempotencyKey: req.GetIdempotencyKey()}}, nil
	}}
	ts := startGateway(t, svc, Options{})
	tests := []struct{ path, key string }{
		{"k", "k"},
		{"a/b", "a/b"},
		{"a%2Fb", "a/b"},
		{"a%2fb", "a/b"},
		{"order-1%2F2024/v2", "order-1/2024/v2"},
		{"x/y/z", "x/y/z"},
		{"a%252Fb", "a%2Fb"},
		{"with%20space", "with space"},
		{"a:b", "a:b"},
		{"%3Fq%23", "?q#"},
		{"a//b", "a//b"},
		{"a/", "a/"},
		{"/a", "/a"},
		{"../x", "../x"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, ts, http.MethodGet, "/v1/sent-events/"+tt.path, nil, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET /v1/sent-events/%s = %d %s, want 200", tt.path, r.status, r.body)
			}
			var got struct {
				SentEvent struct {
					IdempotencyKey string `json:"idempotencyKey"`
				} `json:"sentEvent"`
			}
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			if got.SentEvent.IdempotencyKey != tt.key {
				t.Errorf("GET /v1/sent-events/%s: the service got key %q, want %q", tt.path, got.SentEvent.IdempotencyKey, tt.key)
			}
		})
	}
}

// bigPayload returns a JSON object of n bytes.
func bigPayload(n int) []byte {
	const head, tail = `{"data":"`, `"}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// TestLargeMessages checks that a 5 MiB event, which the sidecar stores and
// gRPC delivers, goes through REST both ways: streamed to the app with the
// default limits (grpc-go's 4 MiB client default refused it), and sent by
// the app when MaxBodyBytes is set from a 10 MiB payload limit as the
// composition does. A lower MaxMessageBytes is applied to every call.
func TestLargeMessages(t *testing.T) {
	t.Parallel()
	const (
		size       = 5 << 20
		maxPayload = 10 << 20
	)
	payload := bigPayload(size)

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		svc := &eventService{streamEvents: func(_ *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			return stream.Send(&sidecarv1.StreamEventsResponse{Event: testEvent("big", payload)})
		}}
		ts := startGateway(t, svc, Options{})
		lines := readLines(t, do(t, ts, http.MethodGet, "/v1/events:stream?subscription=s", nil, nil))
		if len(lines) != 1 || !strings.Contains(lines[0], string(payload)) {
			n := 0
			if len(lines) > 0 {
				n = len(lines[0])
			}
			t.Fatalf("stream = %d lines (first %d bytes, starting %.200q), want one event with the %d-byte payload", len(lines), n, strings.Join(lines, "\n"), size)
		}
	})

	t.Run("stream over MaxMessageBytes", func(t *testing.T) {
		t.Parallel()
		svc := &eventService{streamEvents: func(_ *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			return stream.Send(&sidecarv1.StreamEventsResponse{Event: testEvent("big", payload)})
		}}
		ts := startGateway(t, svc, Options{MaxMessageBytes: size})
		// The stream was open (200 sent) when the event failed: the error is
		// its last line.
		r := do(t, ts, http.MethodGet, "/v1/events:stream?subscription=s", nil, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("stream = %d %q, want 200 application/x-ndjson", r.status, r.header.Get("Content-Type"))
		}
		var e errorBody
		if err := json.Unmarshal([]byte(streamError(t, r).body), &e); err != nil || e.Code != codes.ResourceExhausted {
			t.Errorf("last line %q, want an error with code %d (ResourceExhausted)", r.body, codes.ResourceExhausted)
		}
	})

	t.Run("send", func(t *testing.T) {
		t.Parallel()
		got := make(chan *sidecarv1.SendEventRequest, 1)
		limit := maxPayload + BodyOverheadBytes
		ts := startGateway(t, &eventService{sendEvent: recordSendEvent(got)}, Options{MaxBodyBytes: int64(limit)},
			grpc.MaxRecvMsgSize(limit))
		key := strings.Repeat("\u00e9", 128) // the longest JSON spelling of a 128-character key
		body := `{ "type" : "manuscript.submitted" , "idempotencyKey" : "` + key + `" , "async" : true , "payload" : ` + string(payload) + ` }`
		if r := post(t, ts, "/v1/events:send", body); r.status != http.StatusOK {
			t.Fatalf("POST of a %d-byte payload = %d %.300s, want 200", size, r.status, r.body)
		}
		if req := <-got; !bytes.Equal(req.GetPayload(), payload) {
			t.Fatalf("the service got a %d-byte payload, want the %d bytes sent", len(req.GetPayload()), size)
		}
		// A payload at the limit fits with the longest envelope.
		atLimit := bigPayload(maxPayload)
		body = `{ "type" : "manuscript.submitted" , "idempotencyKey" : "` + key + `" , "async" : true , "payload" : ` + string(atLimit) + ` }`
		if r := post(t, ts, "/v1/events:send", body); r.status != http.StatusOK {
			t.Fatalf("POST of a payload at the %d-byte limit = %d %.300s, want 200", maxPayload, r.status, r.body)
		}
		<-got
	})

	t.Run("send over the default MaxBodyBytes", func(t *testing.T) {
		t.Parallel()
		got := make(chan *sidecarv1.SendEventRequest, 1)
		ts := startGateway(t, &eventService{sendEvent: recordSendEvent(got)}, Options{})
		r := post(t, ts, "/v1/events:send", `{"type":"manuscript.submitted","payload":`+string(payload)+`}`)
		wantError(t, r, http.StatusRequestEntityTooLarge, codes.InvalidArgument)
		if len(got) != 0 {
			t.Fatal("the service was called")
		}
	})
}

// TestAckRedeliverDelayFormats checks the durations AckEvents accepts over
// REST: protojson's "90s" and Go's "1m30s", as the client command and the
// settings do (before, "1m" was refused with 400), under either field name;
// anything else is refused before the service is called.
func TestAckRedeliverDelayFormats(t *testing.T) {
	t.Parallel()
	got := make(chan *sidecarv1.AckEventsRequest, 1)
	ts := startGateway(t, &eventService{
		ackEvents: func(_ context.Context, req *sidecarv1.AckEventsRequest) (*sidecarv1.AckEventsResponse, error) {
			got <- req
			return &sidecarv1.AckEventsResponse{EventIds: req.GetEventIds()}, nil
		},
	}, Options{})
	tests := []struct {
		field, value string
		want         time.Duration // 0: refused with 400
	}{
		{"redeliverDelay", `"60s"`, time.Minute},
		{"redeliverDelay", `"1.5s"`, 1500 * time.Millisecond},
		{"redeliverDelay", `"1m"`, time.Minute},
		{"redeliver_delay", `"1m30s"`, 90 * time.Second},
		{"redeliverDelay", `"500ms"`, 500 * time.Millisecond},
		{"redeliverDelay", `"2h"`, 2 * time.Hour},
		{"redeliverDelay", `"1 minute"`, 0},
		{"redeliverDelay", `"1d"`, 0},
		{"redeliverDelay", `60`, 0},
		{"redeliverDelay", `""`, 0},
	}
	for _, tt := range tests {
		body := `{"subscription":"s","eventIds":["a"],"reject":true,"` + tt.field + `":` + tt.value + `}`
		r := post(t, ts, "/v1/events:ack", body)
		if tt.want == 0 {
			if r.status != http.StatusBadRequest {
				t.Errorf("POST %s = %d %s, want 400", body, r.status, r.body)
			}
			continue
		}
		if r.status != http.StatusOK {
			t.Errorf("POST %s = %d %s, want 200", body, r.status, r.body)
			continue
		}
		if d := (<-got).GetRedeliverDelay().AsDuration(); d != tt.want {
			t.Errorf("POST %s: redeliver_delay %s, want %s", body, d, tt.want)
		}
	}
	// A duplicate field is still refused, as protojson refuses it.
	if r := post(t, ts, "/v1/events:ack", `{"eventIds":["a"],"reject":true,"redeliverDelay":"1m","redeliverDelay":"2m"}`); r.status != http.StatusBadRequest {
		t.Errorf("duplicate redeliverDelay = %d %s, want 400", r.status, r.body)
	}
}
