package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
)

// Sentinel errors.
var (
	// ErrClosed is the cause of deliveries stopped by Close.
	ErrClosed = errors.New("emulator closed")
	// ErrUnknownDelivery means no delivery has the ID asked for.
	ErrUnknownDelivery = errors.New("unknown delivery")
)

const (
	// maxResponseBytes bounds how much of a webhook response SendWebhook reads.
	maxResponseBytes = 1 << 20
	// maxRecordedResponse bounds the response body kept with an attempt.
	maxRecordedResponse = 1 << 10
)

// DeliveryState is where a delivery stands.
type DeliveryState string

// The states of a delivery: pending until an attempt succeeds (delivered) or the retries run
// out or the delivery is stopped (failed).
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryFailed    DeliveryState = "failed"
)

// Attempt is one POST of a delivery.
type Attempt struct {
	// At is when the request was signed; Timestamp is the X-Timestamp sent.
	At        time.Time
	Timestamp string
	// StatusCode is the response status, or 0 when there was no response.
	StatusCode int
	// Error is the network error, or "" when there was a response.
	Error string
	// Duration is how long the attempt took, by Options.Now.
	Duration time.Duration
	// ResponseBody is the start (at most 1 KiB) of the response body.
	ResponseBody string
}

// MarshalJSON encodes a with Duration in milliseconds.
func (a Attempt) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		At           time.Time `json:"at"`
		Timestamp    string    `json:"timestamp"`
		StatusCode   int       `json:"status_code,omitempty"`
		Error        string    `json:"error,omitempty"`
		DurationMS   float64   `json:"duration_ms"`
		ResponseBody string    `json:"response_body,omitempty"`
	}{a.At, a.Timestamp, a.StatusCode, a.Error, float64(a.Duration) / float64(time.Millisecond), a.ResponseBody})
}

// Delivery is an outbound webhook the emulator delivers, with its attempts so far.
type Delivery struct {
	ID        string
	URL       string
	EventType string
	// EventID is the X-Event-Id, the same on every attempt.
	EventID string
	// Payload is the body sent, byte for byte.
	Payload []byte
	State   DeliveryState
	// Error says why a failed delivery failed.
	Error     string
	Attempts  []Attempt
	CreatedAt time.Time
}

// MarshalJSON encodes d with the payload as a JSON value when it is valid JSON, and as a
// string otherwise.
func (d Delivery) MarshalJSON() ([]byte, error) {
	payload := json.RawMessage(d.Payload)
	if !json.Valid(d.Payload) {
		s, err := json.Marshal(string(d.Payload))
		if err != nil {
			return nil, err
		}
		payload = s
	}
	attempts := d.Attempts
	if attempts == nil {
		attempts = []Attempt{}
	}
	return json.Marshal(struct {
		ID        string          `json:"id"`
		URL       string          `json:"url"`
		EventType string          `json:"event_type"`
		EventID   string          `json:"event_id"`
		Payload   json.RawMessage `json:"payload"`
		State     DeliveryState   `json:"state"`
		Error     string          `json:"error,omitempty"`
		Attempts  []Attempt       `json:"attempts"`
		CreatedAt time.Time       `json:"created_at"`
	}{d.ID, d.URL, d.EventType, d.EventID, payload, d.State, d.Error, attempts, d.CreatedAt})
}

// delivery is the emulator's record of a Delivery; done is closed when it leaves pending.
type delivery struct {
	d    Delivery
	done chan struct{}
}

// snapshot copies d; the caller holds e.mu.
func (d *delivery) snapshot() Delivery {
	s := d.d
	s.Payload = bytes.Clone(d.d.Payload)
	s.Attempts = append([]Attempt(nil), d.d.Attempts...)
	return s
}

// Deliver starts delivering payload to url as an event of eventType and returns the
// delivery's ID at once; eventID "" means a new UUID. The emulator retries with backoff as
// ChronosHub does, in a goroutine that Close stops. Cancelling ctx stops this delivery too;
// both end it as failed. Deliver does not check url: a bad one fails every attempt.
func (e *Emulator) Deliver(ctx context.Context, url, eventType string, payload []byte, eventID string) (id string) {
	if eventID == "" {
		eventID = uuid.NewString()
	}
	d := &delivery{
		d: Delivery{
			ID:        uuid.NewString(),
			URL:       url,
			EventType: eventType,
			EventID:   eventID,
			Payload:   bytes.Clone(payload),
			State:     DeliveryPending,
			CreatedAt: e.now(),
		},
		done: make(chan struct{}),
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.deliveries[d.d.ID] = d
	e.order = append(e.order, d.d.ID)
	e.forgetDeliveries()
	if e.closed {
		d.d.State = DeliveryFailed
		d.d.Error = ErrClosed.Error()
		close(d.done)
		return d.d.ID
	}
	e.wg.Go(func() { e.deliver(ctx, d) })
	return d.d.ID
}

// deliver makes the attempts of d until one succeeds, the retries run out or it is stopped.
func (e *Emulator) deliver(ctx context.Context, d *delivery) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(e.ctx, func() { cancel(ErrClosed) })
	defer stop()

	// d.d's URL, type, event ID and payload never change, so they are read without the lock.
	log := e.log.With("delivery_id", d.d.ID, "event_id", d.d.EventID, "event_type", d.d.EventType, "url", d.d.URL)
	for attempt := 0; ; attempt++ {
		start := e.now()
		status, body, err := SendWebhook(ctx, e.client, d.d.URL, e.secret, d.d.EventType, d.d.Payload, d.d.EventID, start)
		a := Attempt{
			At:           start,
			Timestamp:    strconv.FormatInt(start.Unix(), 10),
			StatusCode:   status,
			Duration:     e.now().Sub(start),
			ResponseBody: truncate(body, maxRecordedResponse),
		}
		if err != nil {
			a.Error = err.Error()
		}
		e.mu.Lock()
		d.d.Attempts = append(d.d.Attempts, a)
		e.mu.Unlock()

		switch {
		case err == nil && status >= 200 && status < 300:
			log.Info("webhook delivered", "attempts", attempt+1)
			e.finish(d, DeliveryDelivered, "")
			return
		case ctx.Err() != nil:
			e.stopped(ctx, log, d)
			return
		case attempt >= e.maxRetries:
			reason := fmt.Sprintf("no 2xx response after %d attempts", attempt+1)
			log.Warn("webhook delivery failed", "reason", reason)
			e.finish(d, DeliveryFailed, reason)
			return
		}
		wait := e.backoff(attempt)
		log.Debug("webhook attempt failed", "attempt", attempt+1, "status", status, "err", err, "retry_in", wait)
		if err := e.sleep(ctx, wait); err != nil {
			e.stopped(ctx, log, d)
			return
		}
	}
}

// stopped ends d as failed because ctx is done.
func (e *Emulator) stopped(ctx context.Context, log *slog.Logger, d *delivery) {
	reason := fmt.Sprintf("stopped: %v", context.Cause(ctx))
	log.Info("webhook delivery stopped", "reason", reason)
	e.finish(d, DeliveryFailed, reason)
}

// finish moves d to its final state.
func (e *Emulator) finish(d *delivery, state DeliveryState, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d.d.State = state
	d.d.Error = reason
	close(d.done)
}

// backoff is the wait after attempt (0-based) fails: RetryBase doubled per attempt, at most
// RetryMax.
func (e *Emulator) backoff(attempt int) time.Duration {
	d := e.retryBase
	for i := 0; i < attempt && d < e.retryMax; i++ {
		d *= 2
	}
	return min(d, e.retryMax)
}

// Delivery returns the delivery with id and reports whether there is one.
func (e *Emulator) Delivery(id string) (Delivery, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deliveries[id]
	if !ok {
		return Delivery{}, false
	}
	return d.snapshot(), true
}

// Deliveries returns every delivery, oldest first.
func (e *Emulator) Deliveries() []Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Delivery, 0, len(e.order))
	for _, id := range e.order {
		out = append(out, e.deliveries[id].snapshot())
	}
	return out
}

// WaitDelivery waits until the delivery with id is delivered or failed and returns it. It
// returns ErrUnknownDelivery for an unknown id and ctx.Err() when ctx is done first.
func (e *Emulator) WaitDelivery(ctx context.Context, id string) (Delivery, error) {
	e.mu.Lock()
	d, ok := e.deliveries[id]
	e.mu.Unlock()
	if !ok {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, ErrUnknownDelivery)
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		return Delivery{}, ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return d.snapshot(), nil
}

// SendWebhook makes one POST of payload to url as ChronosHub does: every header of the
// reference, X-Timestamp from now, and the signature of signature.Sign with secret. eventID ""
// means a new UUID; pass one to know it. A nil client means http.DefaultClient. It returns
// the response status and up to 1 MiB of the response body; err is set when there is no
// response (status 0) or its body could not be read.
func SendWebhook(ctx context.Context, client *http.Client, url string, secret []byte, eventType string, payload []byte, eventID string, now time.Time) (status int, body []byte, err error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := NewWebhookRequest(ctx, url, secret, eventType, payload, eventID, now)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err // Already says "Post <url>: …".
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("read webhook response: %w", err)
	}
	return resp.StatusCode, body, nil
}

// NewWebhookRequest returns the POST SendWebhook makes, for callers that
// need the whole response (its headers). eventID "" means a new UUID.
func NewWebhookRequest(ctx context.Context, url string, secret []byte, eventType string, payload []byte, eventID string, now time.Time) (*http.Request, error) {
	if eventID == "" {
		eventID = uuid.NewString()
	}
	timestamp := strconv.FormatInt(now.Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", signature.UserAgent)
	req.Header.Set(signature.HeaderEventType, eventType)
	req.Header.Set(signature.HeaderEventID, eventID)
	req.Header.Set(signature.HeaderTimestamp, timestamp)
	req.Header.Set(signature.HeaderSignature, signature.Sign(secret, payload, eventType, eventID, timestamp))
	return req, nil
}

// truncate returns b as valid UTF-8 text of at most n bytes.
func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "")
}

// deliveryRequest is the body of POST /_emulator/deliveries.
type deliveryRequest struct {
	URL       string          `json:"url"`
	EventType string          `json:"event_type"`
	Payload   json.RawMessage `json:"payload"`
	EventID   string          `json:"event_id"`
}

// handleStartDelivery answers POST /_emulator/deliveries: it starts a delivery and answers
// 202 with it, and its address in Location. A missing payload means DefaultPayload.
func (e *Emulator) handleStartDelivery() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req deliveryRequest
		if !e.readJSON(w, r, &req) {
			return
		}
		errs := map[string][]string{}
		if u, err := url.Parse(req.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs["url"] = []string{"The url must be an absolute http or https URL."}
		}
		if req.EventType == "" {
			errs["event_type"] = []string{"The event_type is required."}
		}
		payload := []byte(req.Payload)
		if len(payload) == 0 || string(payload) == "null" {
			payload = DefaultPayload(req.EventType)
			if payload == nil && req.EventType != "" {
				errs["payload"] = []string{"The payload is required: there is no sample payload for this event_type."}
			}
		}
		if len(errs) > 0 {
			writeProblem(w, http.StatusBadRequest, "", errs)
			return
		}

		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			writeProblem(w, http.StatusServiceUnavailable, "The emulator is shutting down.", nil)
			return
		}
		// The delivery outlives this request; Close, not the client, stops it.
		id := e.Deliver(context.WithoutCancel(r.Context()), req.URL, req.EventType, payload, req.EventID)
		d, _ := e.Delivery(id)
		w.Header().Set("Location", "/_emulator/deliveries/"+id)
		writeJSON(w, http.StatusAccepted, d)
	})
}

// handleListDeliveries answers GET /_emulator/deliveries with every delivery, oldest first.
func (e *Emulator) handleListDeliveries() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Deliveries())
	})
}

// handleGetDelivery answers GET /_emulator/deliveries/{id}.
func (e *Emulator) handleGetDelivery() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := e.Delivery(r.PathValue("id"))
		if !ok {
			writeProblem(w, http.StatusNotFound, "There is no delivery with this id.", nil)
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
}

// forgetDeliveries drops the oldest finished deliveries beyond maxHistory.
// Pending ones are kept: their goroutines still report to them. The caller
// holds e.mu.
func (e *Emulator) forgetDeliveries() {
	over := len(e.order) - e.maxHistory
	if e.maxHistory < 0 || over <= 0 {
		return
	}
	e.order = slices.DeleteFunc(e.order, func(id string) bool {
		if over == 0 || e.deliveries[id].d.State == DeliveryPending {
			return false
		}
		delete(e.deliveries, id)
		over--
		return true
	})
}
