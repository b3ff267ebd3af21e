package grpcapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// TestIdempotencyKeys checks the idempotency keys SendEvent and GetSentEvent
// accept, over gRPC and over REST: what sidecar.proto documents, up to 128
// printable ASCII characters, and nothing else, with a field violation
// naming idempotency_key.
func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rest := e.rest(t)

	tests := []struct {
		name  string
		key   string
		valid bool
	}{
		{"one character", "k", true},
		{"128 characters", strings.Repeat("k", 128), true},
		{"every printable ASCII character", asciiPrintable(), true},
		{"slashes", "order/2024/7", true},
		{"spaces and percent", "a b%2Fc", true},
		{"129 characters", strings.Repeat("k", 129), false},
		{"256 characters", strings.Repeat("k", 256), false},
		{"Latin-1 letter", "clé", false},
		{"Cyrillic", "ключ", false},
		{"emoji", "key-🔑", false},
		{"64 two-byte characters", strings.Repeat("é", 64), false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"DEL", "a\x7fb", false},
		{"NUL", "a\x00b", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			payload := `{"case":` + strings.Repeat("1", i+1) + `}`
			_, err := e.client.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(payload), IdempotencyKey: tt.key})
			checkKeyError(t, "gRPC SendEvent", err, tt.valid)
			_, err = e.client.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: tt.key})
			checkKeyError(t, "gRPC GetSentEvent", err, tt.valid)

			body, err := json.Marshal(map[string]any{"type": "manuscript.submitted", "payload": json.RawMessage(payload), "idempotencyKey": tt.key})
			if err != nil {
				t.Fatal(err)
			}
			status, out := restCall(t, rest, http.MethodPost, "/v1/events:send", string(body))
			checkRESTKeyError(t, "REST SendEvent", status, out, tt.valid)
			status, out = restCall(t, rest, http.MethodGet, "/v1/sent-events/"+url.PathEscape(tt.key), "")
			checkRESTKeyError(t, "REST GetSentEvent", status, out, tt.valid)
			if tt.valid && !strings.Contains(out, `"state":"SENT_EVENT_STATE_ACCEPTED"`) {
				t.Errorf("REST GetSentEvent %q = %s, want the accepted event", tt.key, out)
			}
		})
	}
	// A key with slashes reads the same written with "/" as with "%2F".
	status, out := restCall(t, rest, http.MethodGet, "/v1/sent-events/order/2024/7", "")
	if status != http.StatusOK || !strings.Contains(out, `"idempotencyKey":"order/2024/7"`) {
		t.Errorf("REST GET /v1/sent-events/order/2024/7 = %d %s, want the event sent with key order/2024/7", status, out)
	}
	if got, want := len(e.emu.Inbound()), 5; got != want {
		t.Errorf("ChronosHub received %d events, want %d (one per valid key)", got, want)
	}
}

// asciiPrintable is the 95 printable ASCII characters, space to tilde.
func asciiPrintable() string {
	var b strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

func checkKeyError(t *testing.T, what string, err error, valid bool) {
	t.Helper()
	if valid {
		if err != nil {
			t.Errorf("%s = %v, want success", what, err)
		}
		return
	}
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !hasField(st, "idempotency_key") {
		t.Errorf("%s = %v (details %v), want InvalidArgument naming idempotency_key", what, err, st.Details())
	}
}

func checkRESTKeyError(t *testing.T, what string, status int, body string, valid bool) {
	t.Helper()
	switch {
	case valid && status != http.StatusOK:
		t.Errorf("%s = %d %s, want 200", what, status, body)
	case !valid && (status != http.StatusBadRequest || !strings.Contains(body, `"field":"idempotency_key"`)):
		t.Errorf("%s = %d %s, want 400 naming idempotency_key", what, status, body)
	}
}

func restCall(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	code, b, _ := restDo(t, srv, method, path, body)
	return code, string(b)
}
