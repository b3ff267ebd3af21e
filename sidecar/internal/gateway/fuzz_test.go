package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// FuzzSendEventBody feeds request bodies through the marshaler's decoder, the
// way the generated SendEvent handler does. Decoding must never panic; when it
// succeeds the payload is empty or valid UTF-8 JSON, and the request marshals
// back to JSON that decodes to the same request with the payload compacted.
func FuzzSendEventBody(f *testing.F) {
	for _, seed := range []string{
		`{"type":"manuscript.submitted","payload":{"a":1},"idempotencyKey":"k"}`,
		"{ \"payload\" :\n[ 1.0e3 , \"Zürich 🎉\" ] , \"type\":\"t\", \"async\":true }",
		`{"type":"t","payload":"aGVsbG8="}`,
		`{"type":"t","payload":null,"idempotency_key":"k"}`,
		`{"type":"t","payload":{},"payload":{}}`,
		`{"type":"t","bogus":1}`,
		`{"type":"t","payload":{"a":}`,
		"{\"payload\":\"\xff\"}",
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	m := newJSONMarshaler()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req sidecarv1.SendEventRequest
		err := m.NewDecoder(bytes.NewReader(body)).Decode(&req)
		if errors.Is(err, io.EOF) {
			return // An empty body: the handler sends an empty request.
		}
		if err != nil {
			return
		}
		payload := req.GetPayload()
		if len(payload) > 0 && (!json.Valid(payload) || !utf8.Valid(payload)) {
			t.Fatalf("Decode(%q) payload = %q, want valid UTF-8 JSON or empty", body, payload)
		}

		out, err := m.Marshal(&req)
		if err != nil {
			t.Fatalf("Marshal(Decode(%q)): %v", body, err)
		}
		if !json.Valid(out) {
			t.Fatalf("Marshal(Decode(%q)) = %q, not JSON", body, out)
		}
		var back sidecarv1.SendEventRequest
		if err := m.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(%q): %v", out, err)
		}
		var want bytes.Buffer
		if len(payload) > 0 {
			if err := json.Compact(&want, payload); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(back.GetPayload(), want.Bytes()) {
			t.Fatalf("round trip of %q: payload = %q, want %q", body, back.GetPayload(), want.Bytes())
		}
		if back.GetType() != req.GetType() || back.GetIdempotencyKey() != req.GetIdempotencyKey() || back.GetAsync() != req.GetAsync() {
			t.Fatalf("round trip of %q = %v, want %v", body, &back, &req)
		}
	})
}

// FuzzAckEventsBody feeds request bodies through the marshaler's decoder, the
// way the generated AckEvents handler does, which rewrites Go durations in
// redeliverDelay. Decoding must never panic; a body protojson accepts must
// decode to the same request; and a body decoded with a redelivery delay
// marshals back to one that decodes to the same request.
func FuzzAckEventsBody(f *testing.F) {
	for _, seed := range []string{
		`{"subscription":"s","eventIds":["a"],"reject":true,"redeliverDelay":"1m30s"}`,
		`{"eventIds":["a"],"redeliver_delay":"1.5s"}`,
		`{"eventIds":["a"],"redeliverDelay":"-1h"}`,
		`{"eventIds":["a"],"redeliverDelay":"9999999999h"}`,
		`{"eventIds":["a"],"redeliverDelay":60}`,
		`{"redeliverDelay":"1m","redeliverDelay":"2m"}`,
		`{"redeliverDelay":"1m",}`,
		`{"redeliverDelay":{"seconds":1}}`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	m := newJSONMarshaler()
	f.Fuzz(func(t *testing.T, body []byte) {
		var req sidecarv1.AckEventsRequest
		err := m.NewDecoder(bytes.NewReader(body)).Decode(&req)
		var plain sidecarv1.AckEventsRequest
		if perr := protojson.Unmarshal(body, &plain); perr == nil && json.Valid(body) {
			if err != nil {
				t.Fatalf("Decode(%q) = %v; protojson accepts it", body, err)
			}
			if !proto.Equal(&req, &plain) {
				t.Fatalf("Decode(%q) = %v, protojson gives %v", body, &req, &plain)
			}
		}
		if err != nil {
			return
		}
		out, err := m.Marshal(&req)
		if err != nil {
			t.Fatalf("Marshal(Decode(%q)): %v", body, err)
		}
		var back sidecarv1.AckEventsRequest
		if err := m.Unmarshal(out, &back); err != nil || !proto.Equal(&back, &req) {
			t.Fatalf("round trip of %q: %v, %v; want %v", body, &back, err, &req)
		}
	})
}
