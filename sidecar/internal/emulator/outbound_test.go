package emulator_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
)

// received is a request a test webhook got.
type received struct {
	header http.Header
	body   []byte
}

// webhook is a partner's endpoint that answers the i-th request with statuses[i], and 200
// after them (or always statuses' last value when repeatLast is set).
type webhook struct {
	*httptest.Server
	statuses   []int
	repeatLast bool

	mu       sync.Mutex
	requests []received
}

func startWebhook(t *testing.T, repeatLast bool, statuses ...int) *webhook {
	t.Helper()
	wh := &webhook{statuses: statuses, repeatLast: repeatLast}
	wh.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("webhook read body: %v", err)
		}
		wh.mu.Lock()
		i := len(wh.requests)
		wh.requests = append(wh.requests, received{header: r.Header.Clone(), body: body})
		wh.mu.Unlock()
		status := http.StatusOK
		switch {
		case i < len(statuses):
			status = statuses[i]
		case repeatLast && len(statuses) > 0:
			status = statuses[len(statuses)-1]
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", i+1)
	}))
	t.Cleanup(wh.Close)
	return wh
}

func (wh *webhook) Requests() []received {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]received(nil), wh.requests...)
}

// wait waits for the delivery with id to end.
func wait(t *testing.T, e *emulator.Emulator, id string) emulator.Delivery {
	t.Helper()
	d, err := e.WaitDelivery(t.Context(), id)
	if err != nil {
		t.Fatalf("WaitDelivery(%s) = %v", id, err)
	}
	return d
}

// independentSignature computes X-Hub-Signature-256 as the C# reference does, without the
// signature package: the length is in UTF-16 code units.
func independentSignature(secret string, body []byte, eventType, eventID, timestamp string) string {
	length := len(utf16.Encode([]rune(string(body))))
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d:%s|%s|%s|%s", length, body, eventType, eventID, timestamp)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// checkSigned checks that req carries every header of the reference for one event, signed
// with testSecret, and the payload byte for byte.
func checkSigned(t *testing.T, req received, eventType, eventID, timestamp string, payload []byte) {
	t.Helper()
	want := map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "ChronosHub-Integration-Framework/1.0",
		"X-Event-Type":        eventType,
		"X-Event-Id":          eventID,
		"X-Timestamp":         timestamp,
		"X-Hub-Signature-256": independentSignature(testSecret, payload, eventType, eventID, timestamp),
	}
	got := map[string]string{}
	for k := range want {
		if v := req.header.Values(k); len(v) == 1 {
			got[k] = v[0]
		} else {
			got[k] = fmt.Sprintf("%q", v)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("webhook headers mismatch (-want +got):\n%s", diff)
	}
	if !bytes.Equal(req.body, payload) {
		t.Errorf("webhook body = %q, want %q byte for byte", req.body, payload)
	}
	err := signature.Verify([][]byte{[]byte(testSecret)}, req.body, req.header.Get("X-Event-Type"),
		req.header.Get("X-Event-Id"), req.header.Get("X-Timestamp"), req.header.Get("X-Hub-Signature-256"))
	if err != nil {
		t.Errorf("signature.Verify() = %v, want nil", err)
	}
}

func TestDeliverRetrySchedule(t *testing.T) {
	const always = true
	tests := []struct {
		name         string
		opts         emulator.Options
		statuses     []int
		repeatLast   bool
		wantState    emulator.DeliveryState
		wantStatuses []int
		wantSleeps   []time.Duration
	}{
		{"success first", emulator.Options{}, nil, false, emulator.DeliveryDelivered, []int{200}, nil},
		{"202 is success", emulator.Options{}, []int{202}, false, emulator.DeliveryDelivered, []int{202}, nil},
		{"two failures then success", emulator.Options{}, []int{500, 503}, false, emulator.DeliveryDelivered,
			[]int{500, 503, 200}, []time.Duration{time.Second, 2 * time.Second}},
		{"4xx and 3xx are retried", emulator.Options{}, []int{400, 304}, false, emulator.DeliveryDelivered,
			[]int{400, 304, 200}, []time.Duration{time.Second, 2 * time.Second}},
		{"success on the last retry", emulator.Options{}, []int{500, 500, 500, 500, 500}, false, emulator.DeliveryDelivered,
			[]int{500, 500, 500, 500, 500, 200}, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}},
		{"five retries then failed", emulator.Options{}, []int{500}, always, emulator.DeliveryFailed,
			[]int{500, 500, 500, 500, 500, 500}, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}},
		{"configured retries, base and cap", emulator.Options{MaxRetries: 4, RetryBase: 100 * time.Millisecond, RetryMax: 250 * time.Millisecond},
			[]int{429}, always, emulator.DeliveryFailed, []int{429, 429, 429, 429, 429},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}},
		{"default cap", emulator.Options{MaxRetries: 8, RetryBase: 10 * time.Second}, []int{500}, always, emulator.DeliveryFailed,
			[]int{500, 500, 500, 500, 500, 500, 500, 500, 500},
			[]time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute}},
		{"no retries", emulator.Options{MaxRetries: -1}, []int{500}, always, emulator.DeliveryFailed, []int{500}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := startWebhook(t, tt.repeatLast, tt.statuses...)
			e, _, clock := startEmulator(t, tt.opts)
			payload := emulator.DefaultPayload("manuscript.submitted")

			d := wait(t, e, e.Deliver(t.Context(), wh.URL, "manuscript.submitted", payload, ""))

			var gotStatuses []int
			for _, a := range d.Attempts {
				gotStatuses = append(gotStatuses, a.StatusCode)
			}
			if d.State != tt.wantState {
				t.Errorf("State = %q (%s), want %q", d.State, d.Error, tt.wantState)
			}
			if diff := cmp.Diff(tt.wantStatuses, gotStatuses); diff != "" {
				t.Errorf("attempt statuses mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSleeps, clock.Sleeps()); diff != "" {
				t.Errorf("backoff mismatch (-want +got):\n%s", diff)
			}
			if n := len(wh.Requests()); n != len(tt.wantStatuses) {
				t.Errorf("webhook got %d requests, want %d", n, len(tt.wantStatuses))
			}
			if tt.wantState == emulator.DeliveryFailed && !strings.Contains(d.Error, fmt.Sprintf("after %d attempts", len(tt.wantStatuses))) {
				t.Errorf("Error = %q, want it to say after %d attempts", d.Error, len(tt.wantStatuses))
			}
		})
	}
}

// TestDeliverHeaders checks every attempt: the same X-Event-Id, a new X-Timestamp, the
// signature recomputed, the body byte for byte.
func TestDeliverHeaders(t *testing.T) {
	for _, tt := range []struct {
		name    string
		eventID string
	}{
		{"given event ID", "d4e5f6a7-b8c9-0123-4567-89abcdef0123"},
		{"generated event ID", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wh := startWebhook(t, false, 500, 500)
			e, _, _ := startEmulator(t, emulator.Options{})
			payload := emulator.DefaultPayload("manuscript.submitted") // non-ASCII, outside the BMP too

			d := wait(t, e, e.Deliver(t.Context(), wh.URL, "manuscript.submitted", payload, tt.eventID))

			if tt.eventID != "" && d.EventID != tt.eventID {
				t.Errorf("EventID = %q, want %q", d.EventID, tt.eventID)
			}
			if _, err := uuid.Parse(d.EventID); err != nil {
				t.Errorf("EventID %q is not a UUID: %v", d.EventID, err)
			}
			reqs := wh.Requests()
			// The fake clock moves on by the backoff only: 1s, then 2s.
			wantTimestamps := []string{"1740000000", "1740000001", "1740000003"}
			if len(reqs) != len(wantTimestamps) || len(d.Attempts) != len(wantTimestamps) {
				t.Fatalf("got %d requests and %d attempts, want %d", len(reqs), len(d.Attempts), len(wantTimestamps))
			}
			for i, req := range reqs {
				checkSigned(t, req, "manuscript.submitted", d.EventID, wantTimestamps[i], payload)
				if got := d.Attempts[i].Timestamp; got != wantTimestamps[i] {
					t.Errorf("Attempts[%d].Timestamp = %q, want %q", i, got, wantTimestamps[i])
				}
				if want := fmt.Sprintf("answer %d", i+1); d.Attempts[i].ResponseBody != want {
					t.Errorf("Attempts[%d].ResponseBody = %q, want %q", i, d.Attempts[i].ResponseBody, want)
				}
			}
			if reqs[0].header.Get("X-Hub-Signature-256") == reqs[1].header.Get("X-Hub-Signature-256") {
				t.Errorf("attempts 1 and 2 carry the same signature; it must be recomputed with X-Timestamp")
			}
		})
	}
}

func TestDeliverNetworkError(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close()
	e, _, clock := startEmulator(t, emulator.Options{MaxRetries: 1})

	d := wait(t, e, e.Deliver(t.Context(), url, "manuscript.submitted", []byte(`{}`), ""))

	if d.State != emulator.DeliveryFailed || len(d.Attempts) != 2 {
		t.Fatalf("delivery = %q with %d attempts, want failed with 2", d.State, len(d.Attempts))
	}
	for i, a := range d.Attempts {
		if a.StatusCode != 0 || a.Error == "" {
			t.Errorf("Attempts[%d] = status %d, error %q; want status 0 and a network error", i, a.StatusCode, a.Error)
		}
	}
	if diff := cmp.Diff([]time.Duration{time.Second}, clock.Sleeps()); diff != "" {
		t.Errorf("backoff mismatch (-want +got):\n%s", diff)
	}
}

func TestDeliveriesAPI(t *testing.T) {
	wh := startWebhook(t, false, 503)
	e, srv, _ := startEmulator(t, emulator.Options{})
	const payload = `{ "manuscriptId" : "MS-1",  "title": "é 𝔸" }`

	start := do(t, http.MethodPost, srv.URL+"/_emulator/deliveries", nil,
		`{"url":"`+wh.URL+`/hook","event_type":"manuscript.status.updated","event_id":"evt-1","payload":`+payload+`}`)
	if start.status != http.StatusAccepted {
		t.Fatalf("POST /_emulator/deliveries = %d %s, want 202", start.status, start.body)
	}
	var started struct {
		ID      string `json:"id"`
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(start.body, &started); err != nil {
		t.Fatal(err)
	}
	if got, want := start.header.Get("Location"), "/_emulator/deliveries/"+started.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	wait(t, e, started.ID)

	// The payload is delivered exactly as it appeared in the request.
	reqs := wh.Requests()
	if len(reqs) != 2 {
		t.Fatalf("webhook got %d requests, want 2", len(reqs))
	}
	checkSigned(t, reqs[1], "manuscript.status.updated", "evt-1", "1740000001", []byte(payload))

	got := do(t, http.MethodGet, srv.URL+"/_emulator/deliveries/"+started.ID, nil, "")
	want := map[string]any{
		"id":         started.ID,
		"url":        wh.URL + "/hook",
		"event_type": "manuscript.status.updated",
		"event_id":   "evt-1",
		"payload":    map[string]any{"manuscriptId": "MS-1", "title": "é 𝔸"},
		"state":      "delivered",
		"created_at": "2025-02-19T21:20:00Z",
		"attempts": []any{
			map[string]any{"at": "2025-02-19T21:20:00Z", "timestamp": "1740000000", "status_code": 503.0, "duration_ms": 0.0, "response_body": "answer 1"},
			map[string]any{"at": "2025-02-19T21:20:01Z", "timestamp": "1740000001", "status_code": 200.0, "duration_ms": 0.0, "response_body": "answer 2"},
		},
	}
	if diff := cmp.Diff(want, decodeJSON(t, got.body)); diff != "" {
		t.Errorf("GET /_emulator/deliveries/{id} mismatch (-want +got):\n%s", diff)
	}
	list := do(t, http.MethodGet, srv.URL+"/_emulator/deliveries", nil, "")
	if diff := cmp.Diff([]any{want}, decodeJSON(t, list.body)); diff != "" {
		t.Errorf("GET /_emulator/deliveries mismatch (-want +got):\n%s", diff)
	}

	t.Run("default payload", func(t *testing.T) {
		start := do(t, http.MethodPost, srv.URL+"/_emulator/deliveries", nil, `{"url":"`+wh.URL+`","event_type":"manuscript.submitted"}`)
		if start.status != http.StatusAccepted {
			t.Fatalf("POST /_emulator/deliveries = %d %s, want 202", start.status, start.body)
		}
		var started struct{ ID string }
		if err := json.Unmarshal(start.body, &started); err != nil {
			t.Fatal(err)
		}
		d := wait(t, e, started.ID)
		if want := emulator.DefaultPayload("manuscript.submitted"); !bytes.Equal(d.Payload, want) {
			t.Errorf("Payload = %s, want the sample %s", d.Payload, want)
		}
	})

	t.Run("unknown delivery", func(t *testing.T) {
		resp := do(t, http.MethodGet, srv.URL+"/_emulator/deliveries/nope", nil, "")
		want := problemJSON("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found", 404, "There is no delivery with this id.", nil)
		if diff := cmp.Diff(want, decodeJSON(t, resp.body)); resp.status != http.StatusNotFound || diff != "" {
			t.Errorf("GET unknown delivery = %d, want 404; problem mismatch (-want +got):\n%s", resp.status, diff)
		}
	})

	for _, tt := range []struct {
		name string
		body string
		want map[string]any
	}{
		{"no url or type", `{"payload":{}}`, problemJSON(typeBadRequest, titleValidation, 400, "", map[string][]string{
			"url": {"The url must be an absolute http or https URL."}, "event_type": {"The event_type is required."},
		})},
		{"relative url", `{"url":"/hook","event_type":"x","payload":{}}`, problemJSON(typeBadRequest, titleValidation, 400, "", map[string][]string{
			"url": {"The url must be an absolute http or https URL."},
		})},
		{"no sample for type", `{"url":"http://127.0.0.1:1/","event_type":"journal.created"}`, problemJSON(typeBadRequest, titleValidation, 400, "", map[string][]string{
			"payload": {"The payload is required: there is no sample payload for this event_type."},
		})},
		{"unknown field", `{"url":"http://127.0.0.1:1/","event_type":"x","payload":{},"secret":"s"}`,
			problemJSON(typeBadRequest, "Bad Request", 400, `The request body is not valid: json: unknown field "secret"`, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, http.MethodPost, srv.URL+"/_emulator/deliveries", nil, tt.body)
			if resp.status != http.StatusBadRequest {
				t.Errorf("POST /_emulator/deliveries %s = %d, want 400", tt.body, resp.status)
			}
			if diff := cmp.Diff(any(tt.want), decodeJSON(t, resp.body)); diff != "" {
				t.Errorf("problem mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCloseStopsInFlightDelivery(t *testing.T) {
	arrived := make(chan struct{}, 1)
	wh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// With the body read, the server notices the client hanging up and cancels r.Context().
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done() // Hang until the emulator gives up.
	}))
	t.Cleanup(wh.Close)
	e, _, _ := startEmulator(t, emulator.Options{})

	id := e.Deliver(t.Context(), wh.URL, "manuscript.submitted", []byte(`{}`), "")
	<-arrived
	if n := deliverGoroutines(); n != 1 {
		t.Fatalf("%d delivery goroutines before Close, want 1", n)
	}
	e.Close()

	if n := deliverGoroutines(); n != 0 {
		t.Errorf("%d delivery goroutines after Close, want 0", n)
	}
	d, _ := e.Delivery(id)
	if d.State != emulator.DeliveryFailed || d.Error != "stopped: emulator closed" || len(d.Attempts) != 1 || d.Attempts[0].Error == "" {
		t.Errorf("delivery after Close = %+v, want failed, stopped by Close, one attempt with an error", d)
	}
}

func TestStopDuringBackoff(t *testing.T) {
	tests := []struct {
		name      string
		stop      func(e *emulator.Emulator, cancel context.CancelFunc)
		wantError string
	}{
		{"Close", func(e *emulator.Emulator, _ context.CancelFunc) { e.Close() }, "stopped: emulator closed"},
		{"caller's context", func(_ *emulator.Emulator, cancel context.CancelFunc) { cancel() }, "stopped: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := startWebhook(t, true, 500)
			sleeping := make(chan time.Duration, 1)
			// The real wait would be an hour: only stopping can end it.
			block := func(ctx context.Context, d time.Duration) error {
				sleeping <- d
				<-ctx.Done()
				return ctx.Err()
			}
			e, _, _ := startEmulator(t, emulator.Options{Sleep: block, RetryBase: time.Hour, RetryMax: time.Hour})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()

			id := e.Deliver(ctx, wh.URL, "manuscript.submitted", []byte(`{}`), "")
			if d := <-sleeping; d != time.Hour {
				t.Errorf("backoff = %v, want 1h", d)
			}
			tt.stop(e, cancel)

			d := wait(t, e, id)
			if d.State != emulator.DeliveryFailed || d.Error != tt.wantError || len(d.Attempts) != 1 {
				t.Errorf("delivery = %q %q with %d attempts, want failed %q with 1", d.State, d.Error, len(d.Attempts), tt.wantError)
			}
			e.Close()
			if n := deliverGoroutines(); n != 0 {
				t.Errorf("%d delivery goroutines after Close, want 0", n)
			}
		})
	}
}

func TestDeliverAfterClose(t *testing.T) {
	e, srv, _ := startEmulator(t, emulator.Options{})
	e.Close()
	e.Close() // Idempotent.

	d, ok := e.Delivery(e.Deliver(t.Context(), "http://127.0.0.1:1/", "manuscript.submitted", []byte(`{}`), ""))
	if !ok || d.State != emulator.DeliveryFailed || d.Error != "emulator closed" || len(d.Attempts) != 0 {
		t.Errorf("Deliver after Close = %+v, want failed without attempts", d)
	}
	resp := do(t, http.MethodPost, srv.URL+"/_emulator/deliveries", nil, `{"url":"http://127.0.0.1:1/","event_type":"x","payload":{}}`)
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("POST /_emulator/deliveries after Close = %d, want 503", resp.status)
	}
}

func TestWaitDelivery(t *testing.T) {
	e, _, _ := startEmulator(t, emulator.Options{Sleep: func(ctx context.Context, _ time.Duration) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	if _, err := e.WaitDelivery(t.Context(), "nope"); !errors.Is(err, emulator.ErrUnknownDelivery) {
		t.Errorf("WaitDelivery(unknown) = %v, want ErrUnknownDelivery", err)
	}
	wh := startWebhook(t, true, 500)
	id := e.Deliver(t.Context(), wh.URL, "x", []byte(`{}`), "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.WaitDelivery(ctx, id); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitDelivery(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestSendWebhook(t *testing.T) {
	var got received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = received{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	}))
	t.Cleanup(srv.Close)
	payload := emulator.DefaultPayload("manuscript.status.updated")
	now := time.Unix(1740000123, 999_000_000)

	status, body, err := emulator.SendWebhook(t.Context(), nil, srv.URL, []byte(testSecret), "manuscript.status.updated", payload, "", now)

	if err != nil || status != http.StatusTeapot || string(body) != "short and stout" {
		t.Errorf("SendWebhook() = %d, %q, %v; want 418, %q, nil", status, body, err, "short and stout")
	}
	eventID := got.header.Get("X-Event-Id")
	if _, err := uuid.Parse(eventID); err != nil {
		t.Errorf("X-Event-Id %q for eventID \"\" is not a UUID", eventID)
	}
	checkSigned(t, got, "manuscript.status.updated", eventID, strconv.FormatInt(now.Unix(), 10), payload)

	t.Run("network error", func(t *testing.T) {
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		status, _, err := emulator.SendWebhook(t.Context(), nil, gone.URL, []byte(testSecret), "x", []byte(`{}`), "id", now)
		if err == nil || status != 0 {
			t.Errorf("SendWebhook(closed server) = %d, %v; want 0 and an error", status, err)
		}
	})
}
