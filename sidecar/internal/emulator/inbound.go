package emulator

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
)

// headerAPIKey carries the partner's API key on inbound requests.
const headerAPIKey = "X-Api-Key"

// InboundEvent is an event the emulator accepted on POST /inbound/{eventType}.
type InboundEvent struct {
	// EventID is the eventId the emulator answered with.
	EventID string `json:"event_id"`
	// EventType is the {eventType} of the request path.
	EventType string `json:"event_type"`
	// Payload is the request body, byte for byte. In JSON it is the payload itself, not a string.
	Payload json.RawMessage `json:"payload"`
	// Header is the request's header without X-Api-Key.
	Header http.Header `json:"headers"`
	// ReceivedAt is when the emulator accepted the event.
	ReceivedAt time.Time `json:"received_at"`
}

// inboundAccepted is ChronosHub's 202 body.
type inboundAccepted struct {
	EventID string `json:"eventId"`
	Status  string `json:"status"`
}

// Inbound returns the events accepted so far, oldest first. The caller owns the result.
func (e *Emulator) Inbound() []InboundEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]InboundEvent, len(e.inbound))
	for i, ev := range e.inbound {
		ev.Payload = bytes.Clone(ev.Payload)
		ev.Header = ev.Header.Clone()
		out[i] = ev
	}
	return out
}

// ClearInbound forgets the events accepted so far.
func (e *Emulator) ClearInbound() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inbound = nil
}

// handleInbound answers POST /inbound/{eventType} as ChronosHub documents it. The checks run
// in the order a client meets them: key, injected faults, account, content type, payload.
func (e *Emulator) handleInbound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eventType := r.PathValue("eventType")
		log := e.log.With("event_type", eventType, "remote_addr", r.RemoteAddr)

		if d := e.injectedLatency(); d > 0 {
			if err := e.sleep(r.Context(), d); err != nil {
				return // The client has gone.
			}
		}
		if !e.validAPIKey(r.Header.Get(headerAPIKey)) {
			log.Warn("inbound event rejected", "reason", "missing or invalid API key")
			writeProblem(w, http.StatusUnauthorized, "The API key is missing or invalid.", nil)
			return
		}
		if e.injectFault(w) {
			log.Info("inbound event failed by fault injection")
			return
		}
		if e.inactive {
			log.Warn("inbound event rejected", "reason", "account inactive")
			writeProblem(w, http.StatusBadRequest, "The account is inactive.", nil)
			return
		}
		if !e.authorised(eventType) {
			log.Warn("inbound event rejected", "reason", "event type not authorised")
			writeProblem(w, http.StatusBadRequest, "", map[string][]string{"eventType": {
				fmt.Sprintf("The account is not authorised to send events of type %s. Authorised: %s.",
					eventtype.Quote(eventType), strings.Join(e.eventTypes, ", ")),
			}})
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			log.Warn("inbound event rejected", "reason", "content type", "content_type", r.Header.Get("Content-Type"))
			writeProblem(w, http.StatusUnsupportedMediaType, "The Content-Type must be application/json.", nil)
			return
		}
		payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.maxBodyBytes))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				log.Warn("inbound event rejected", "reason", "payload too large")
				writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The payload is larger than %d bytes.", e.maxBodyBytes), nil)
				return
			}
			log.Warn("inbound event rejected", "reason", "read payload", "err", err)
			writeProblem(w, http.StatusBadRequest, "The payload could not be read.", nil)
			return
		}
		if msg := payloadProblem(payload); msg != "" {
			log.Warn("inbound event rejected", "reason", msg)
			writeProblem(w, http.StatusBadRequest, "", map[string][]string{"payload": {msg}})
			return
		}

		ev := InboundEvent{
			EventID:    uuid.NewString(),
			EventType:  eventType,
			Payload:    payload,
			Header:     r.Header.Clone(),
			ReceivedAt: e.now(),
		}
		ev.Header.Del(headerAPIKey)
		e.mu.Lock()
		e.inbound = append(e.inbound, ev)
		if over := len(e.inbound) - e.maxHistory; e.maxHistory > 0 && over > 0 {
			e.inbound = slices.Delete(e.inbound, 0, over)
		}
		e.mu.Unlock()
		log.Debug("inbound event accepted", "event_id", ev.EventID)
		writeJSON(w, http.StatusAccepted, inboundAccepted{EventID: ev.EventID, Status: "Accepted"})
	})
}

// authorised reports whether the partner may send events of eventType: it matches one of
// Options.EventTypes, or that list is nil.
func (e *Emulator) authorised(eventType string) bool {
	if e.eventTypes == nil {
		return true
	}
	return slices.ContainsFunc(e.eventTypes, func(p string) bool { return eventtype.Match(p, eventType) })
}

// validAPIKey compares got with the configured key in constant time. Comparing digests keeps
// the key's length from leaking through subtle.ConstantTimeCompare's length check.
func (e *Emulator) validAPIKey(got string) bool {
	if got == "" {
		return false
	}
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(e.apiKey))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// payloadProblem says what is wrong with an inbound payload, or "" when it is acceptable.
// JSON null counts as missing, as it does for a required body in ASP.NET.
func payloadProblem(payload []byte) string {
	trimmed := bytes.TrimSpace(payload)
	switch {
	case len(trimmed) == 0, string(trimmed) == "null":
		return "The payload is missing or empty."
	case !json.Valid(trimmed):
		return "The payload is not valid JSON."
	}
	return ""
}

// handleListInbound answers GET /_emulator/inbound with the accepted events, oldest first.
func (e *Emulator) handleListInbound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Inbound())
	})
}

// handleClearInbound answers DELETE /_emulator/inbound by forgetting the accepted events.
func (e *Emulator) handleClearInbound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.ClearInbound()
		w.WriteHeader(http.StatusNoContent)
	})
}
