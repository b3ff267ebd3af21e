package emulator_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

const (
	typeBadRequest   = "https://tools.ietf.org/html/rfc9110#section-15.5.1"
	typeUnauthorized = "https://tools.ietf.org/html/rfc9110#section-15.5.2"
	typeTooLarge     = "https://tools.ietf.org/html/rfc9110#section-15.5.14"
	typeUnsupported  = "https://tools.ietf.org/html/rfc9110#section-15.5.16"
	typeServerError  = "https://tools.ietf.org/html/rfc9110#section-15.6.1"
	typeTooMany      = "https://tools.ietf.org/html/rfc6585#section-4"
	titleValidation  = "One or more validation errors occurred."
	titleServerError = "An error occurred while processing your request."
)

func TestInbound(t *testing.T) {
	const payload = `{"manuscriptId":"MS-2026-001","title":"𝔸 café"}`
	good := map[string]string{"X-Api-Key": testAPIKey, "Content-Type": "application/json"}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for hk, hv := range h {
			out[hk] = hv
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	unauthorized := problemJSON(typeUnauthorized, "Unauthorized", 401, "The API key is missing or invalid.", nil)
	payloadProblem := func(msg string) map[string]any {
		return problemJSON(typeBadRequest, titleValidation, 400, "", map[string][]string{"payload": {msg}})
	}

	tests := []struct {
		name       string
		opts       emulator.Options
		header     map[string]string
		body       string
		wantStatus int
		wantType   string
		wantBody   any // nil for a 202, whose eventId is checked apart
	}{
		{"accepted", emulator.Options{}, good, payload, 202, "application/json", nil},
		{"accepted with charset", emulator.Options{}, with(good, "Content-Type", "application/json; charset=utf-8"), payload, 202, "application/json", nil},
		{"accepted empty object", emulator.Options{}, good, `{}`, 202, "application/json", nil},
		{"missing API key", emulator.Options{}, with(good, "X-Api-Key", ""), payload, 401, "application/problem+json", unauthorized},
		{"wrong API key", emulator.Options{}, with(good, "X-Api-Key", "ck_test_wrong"), payload, 401, "application/problem+json", unauthorized},
		{"API key in other case", emulator.Options{}, with(good, "X-Api-Key", strings.ToUpper(testAPIKey)), payload, 401, "application/problem+json", unauthorized},
		{"API key prefix", emulator.Options{}, with(good, "X-Api-Key", testAPIKey[:len(testAPIKey)-1]), payload, 401, "application/problem+json", unauthorized},
		{"API key with suffix", emulator.Options{}, with(good, "X-Api-Key", testAPIKey+"0"), payload, 401, "application/problem+json", unauthorized},
		{"missing content type", emulator.Options{}, with(good, "Content-Type", ""), payload, 415, "application/problem+json",
			problemJSON(typeUnsupported, "Unsupported Media Type", 415, "The Content-Type must be application/json.", nil)},
		{"text content type", emulator.Options{}, with(good, "Content-Type", "text/plain"), payload, 415, "application/problem+json",
			problemJSON(typeUnsupported, "Unsupported Media Type", 415, "The Content-Type must be application/json.", nil)},
		{"empty payload", emulator.Options{}, good, "", 400, "application/problem+json", payloadProblem("The payload is missing or empty.")},
		{"blank payload", emulator.Options{}, good, " \r\n\t", 400, "application/problem+json", payloadProblem("The payload is missing or empty.")},
		{"null payload", emulator.Options{}, good, "null", 400, "application/problem+json", payloadProblem("The payload is missing or empty.")},
		{"invalid JSON", emulator.Options{}, good, `{"manuscriptId":`, 400, "application/problem+json", payloadProblem("The payload is not valid JSON.")},
		{"payload too large", emulator.Options{MaxBodyBytes: 16}, good, payload, 413, "application/problem+json",
			problemJSON(typeTooLarge, "Request Entity Too Large", 413, "The payload is larger than 16 bytes.", nil)},
		{"inactive account", emulator.Options{InactiveAccount: true}, good, payload, 400, "application/problem+json",
			problemJSON(typeBadRequest, "Bad Request", 400, "The account is inactive.", nil)},
		{"inactive account wrong key", emulator.Options{InactiveAccount: true}, with(good, "X-Api-Key", "nope"), payload, 401, "application/problem+json", unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv, _ := startEmulator(t, tt.opts)
			resp := do(t, http.MethodPost, srv.URL+"/inbound/manuscript.submitted", tt.header, tt.body)

			if resp.status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", resp.status, tt.wantStatus, resp.body)
			}
			if got := resp.header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if bytes.Contains(resp.body, []byte(testAPIKey)) {
				t.Errorf("response body %s echoes the API key", resp.body)
			}
			got := e.Inbound()
			if tt.wantBody != nil {
				if diff := cmp.Diff(tt.wantBody, decodeJSON(t, resp.body)); diff != "" {
					t.Errorf("problem mismatch (-want +got):\n%s", diff)
				}
				if len(got) != 0 {
					t.Errorf("Inbound() = %d events after a rejected request, want 0", len(got))
				}
				return
			}
			var accepted struct{ EventID, Status string }
			if err := json.Unmarshal(resp.body, &accepted); err != nil {
				t.Fatalf("decode 202 body %s: %v", resp.body, err)
			}
			if _, err := uuid.Parse(accepted.EventID); err != nil || accepted.Status != "Accepted" {
				t.Errorf("202 body = %s, want {\"eventId\":\"<uuid>\",\"status\":\"Accepted\"}", resp.body)
			}
			if len(got) != 1 || got[0].EventID != accepted.EventID || string(got[0].Payload) != tt.body {
				t.Errorf("Inbound() = %+v, want the one event %s with payload %s", got, accepted.EventID, tt.body)
			}
		})
	}
}

func TestInboundListAndClear(t *testing.T) {
	e, srv, _ := startEmulator(t, emulator.Options{})
	submitted := emulator.DefaultPayload("manuscript.submitted")
	updated := emulator.DefaultPayload("manuscript.status.updated")

	var ids []string
	for _, ev := range []struct{ typ, payload string }{
		{"manuscript.submitted", string(submitted)},
		{"manuscript.status.updated", string(updated)},
	} {
		resp := do(t, http.MethodPost, srv.URL+"/inbound/"+ev.typ, map[string]string{
			"X-Api-Key":    testAPIKey,
			"Content-Type": "application/json",
			"X-Request-Id": "req-" + ev.typ,
		}, ev.payload)
		if resp.status != http.StatusAccepted {
			t.Fatalf("POST /inbound/%s = %d %s, want 202", ev.typ, resp.status, resp.body)
		}
		var accepted struct{ EventID string }
		if err := json.Unmarshal(resp.body, &accepted); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, accepted.EventID)
	}

	// The Go API keeps the payload byte for byte.
	got := e.Inbound()
	if len(got) != 2 || !bytes.Equal(got[0].Payload, submitted) || !bytes.Equal(got[1].Payload, updated) {
		t.Fatalf("Inbound() payloads = %q, want the two samples byte for byte", got)
	}

	list := do(t, http.MethodGet, srv.URL+"/_emulator/inbound", nil, "")
	if list.status != http.StatusOK || list.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /_emulator/inbound = %d %q, want 200 application/json", list.status, list.header.Get("Content-Type"))
	}
	if bytes.Contains(list.body, []byte(testAPIKey)) {
		t.Errorf("GET /_emulator/inbound = %s, contains the API key", list.body)
	}
	type listed struct {
		EventID    string          `json:"event_id"`
		EventType  string          `json:"event_type"`
		Payload    json.RawMessage `json:"payload"`
		Headers    http.Header     `json:"headers"`
		ReceivedAt time.Time       `json:"received_at"`
	}
	var events []listed
	if err := json.Unmarshal(list.body, &events); err != nil {
		t.Fatalf("decode %s: %v", list.body, err)
	}
	var trimmed []listed
	for _, ev := range events {
		if v := ev.Headers.Values("X-Api-Key"); v != nil {
			t.Errorf("event %s headers include X-Api-Key", ev.EventID)
		}
		trimmed = append(trimmed, listed{
			EventID:    ev.EventID,
			EventType:  ev.EventType,
			Payload:    ev.Payload,
			Headers:    http.Header{"X-Request-Id": ev.Headers.Values("X-Request-Id")},
			ReceivedAt: ev.ReceivedAt,
		})
	}
	want := []listed{
		{ids[0], "manuscript.submitted", compact(t, submitted), http.Header{"X-Request-Id": {"req-manuscript.submitted"}}, epoch},
		{ids[1], "manuscript.status.updated", compact(t, updated), http.Header{"X-Request-Id": {"req-manuscript.status.updated"}}, epoch},
	}
	if diff := cmp.Diff(want, trimmed); diff != "" {
		t.Errorf("GET /_emulator/inbound mismatch (-want +got):\n%s", diff)
	}

	if resp := do(t, http.MethodDelete, srv.URL+"/_emulator/inbound", nil, ""); resp.status != http.StatusNoContent {
		t.Errorf("DELETE /_emulator/inbound = %d, want 204", resp.status)
	}
	if resp := do(t, http.MethodGet, srv.URL+"/_emulator/inbound", nil, ""); string(resp.body) != "[]" {
		t.Errorf("GET /_emulator/inbound after DELETE = %s, want []", resp.body)
	}
}

func compact(t *testing.T, b []byte) json.RawMessage {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts emulator.Options
		want []string
	}{
		{"no credentials", emulator.Options{}, []string{"APIKey is required", "WebhookSecret is required"}},
		{"bad faults", emulator.Options{APIKey: "k", WebhookSecret: []byte("s"), Faults: emulator.Faults{ErrorRate: 1.5, FailNextStatus: 200}},
			[]string{"error_rate 1.5", "fail_next_status 200"}},
		{"negative durations", emulator.Options{APIKey: "k", WebhookSecret: []byte("s"), RetryBase: -1, RetryMax: -1},
			[]string{"RetryBase", "RetryMax"}},
		{"bad event type pattern", emulator.Options{APIKey: "k", WebhookSecret: []byte("s"), EventTypes: []string{"manuscript.submitted", "a..b"}},
			[]string{"EventTypes: event type pattern"}},
		{"no event type", emulator.Options{APIKey: "k", WebhookSecret: []byte("s"), EventTypes: []string{}},
			[]string{"EventTypes is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := emulator.New(tt.opts)
			if err == nil {
				e.Close()
				t.Fatalf("New(%+v) = nil error, want one", tt.opts)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestInboundRefusesUnauthorisedTypes: with the catalogue authorised, as
// emulate and dev run it, the misspellings that were all accepted before
// (manuscript_submitted, manuscript.submittd, Manuscript.Submitted, x) get
// ChronosHub's 400 ValidationProblemDetails naming eventType, and nothing is
// stored; the catalogue's types and a pattern's matches are accepted.
func TestInboundRefusesUnauthorisedTypes(t *testing.T) {
	good := map[string]string{"X-Api-Key": testAPIKey, "Content-Type": "application/json"}
	for _, tt := range []struct {
		name      string
		types     []string
		eventType string
		accepted  bool
	}{
		{"catalogue submitted", emulator.DefaultEventTypes(), "manuscript.submitted", true},
		{"catalogue status updated", emulator.DefaultEventTypes(), "manuscript.status.updated", true},
		{"underscore", emulator.DefaultEventTypes(), "manuscript_submitted", false},
		{"typo", emulator.DefaultEventTypes(), "manuscript.submittd", false},
		{"case", emulator.DefaultEventTypes(), "Manuscript.Submitted", false},
		{"one letter", emulator.DefaultEventTypes(), "x", false},
		{"not a valid type", emulator.DefaultEventTypes(), "manuscript..submitted", false},
		{"pattern match", []string{"manuscript.*"}, "manuscript.withdrawn", true},
		{"pattern one segment only", []string{"manuscript.*"}, "manuscript.status.updated", false},
		{"any", []string{">"}, "x", true},
		{"nil accepts any", nil, "x", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, srv, _ := startEmulator(t, emulator.Options{EventTypes: tt.types})
			resp := do(t, http.MethodPost, srv.URL+"/inbound/"+tt.eventType, good, `{"manuscriptId":"M-1"}`)
			if tt.accepted {
				if resp.status != http.StatusAccepted || len(e.Inbound()) != 1 {
					t.Errorf("POST /inbound/%s = %d %s with %d stored, want 202 and 1", tt.eventType, resp.status, resp.body, len(e.Inbound()))
				}
				return
			}
			want := problemJSON(typeBadRequest, titleValidation, 400, "", map[string][]string{"eventType": {
				fmt.Sprintf("The account is not authorised to send events of type %q. Authorised: %s.", tt.eventType, strings.Join(tt.types, ", ")),
			}})
			if resp.status != http.StatusBadRequest || resp.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("POST /inbound/%s = %d %s, want 400 application/problem+json", tt.eventType, resp.status, resp.header.Get("Content-Type"))
			}
			if diff := cmp.Diff(want, decodeJSON(t, resp.body)); diff != "" {
				t.Errorf("problem mismatch (-want +got):\n%s", diff)
			}
			if got := e.Inbound(); len(got) != 0 {
				t.Errorf("Inbound() = %d events after a refused type, want 0", len(got))
			}
		})
	}
}
