package chronoshub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinels for what callers branch on; every *Error matches exactly one with errors.Is.
var (
	// ErrUnauthorized means ChronosHub rejected the sidecar's own API key (401): the
	// operator must fix the key, the app can do nothing about it.
	ErrUnauthorized = errors.New("chronoshub rejected the sidecar's API key")
	// ErrInactiveAccount means ChronosHub answered 400 because the partner's account is
	// inactive.
	ErrInactiveAccount = errors.New("chronoshub account is inactive")
	// ErrRejected means ChronosHub rejected the event itself (400 or another 4xx, or a
	// redirect); sending it again unchanged will fail again.
	ErrRejected = errors.New("chronoshub rejected the event")
	// ErrUnavailable means ChronosHub could not be reached or kept failing (network errors,
	// timeouts, 5xx, 429) until the attempts or the caller's deadline ran out. The event may
	// have been accepted if a response was lost; see the package documentation.
	ErrUnavailable = errors.New("chronoshub unavailable")
	// ErrInvalidResponse means ChronosHub answered 2xx without a parseable eventId. The
	// event was probably accepted, so it is not retried.
	ErrInvalidResponse = errors.New("chronoshub answered without an eventId")
)

// Problem is an RFC 9457 Problem Details body from ChronosHub, with the API key redacted
// from every string in it.
type Problem struct {
	Type   string              `json:"type,omitempty"`
	Title  string              `json:"title,omitempty"`
	Status int                 `json:"status,omitempty"`
	Detail string              `json:"detail,omitempty"`
	Errors map[string][]string `json:"errors,omitempty"`
	// Raw is the body as received (redacted, at most 64 KiB), for carrying along to the app;
	// it may hold members the fields above do not.
	Raw json.RawMessage `json:"-"`
}

// Error is a failed SendEvent. Use errors.Is with the sentinels to branch on it.
type Error struct {
	// EventType is the event type of the call.
	EventType string
	// StatusCode is the HTTP status of the last answer, 0 when there was none.
	StatusCode int
	// Problem is the last answer's Problem Details, nil when it had none.
	Problem *Problem
	// Attempts is how many HTTP attempts the call made.
	Attempts int
	// Retryable says whether the last failure was of a kind that is retried (network,
	// timeout, 5xx, 429): true means the attempts or the deadline ran out, and a later try
	// may succeed.
	Retryable bool

	kind       error         // one of the sentinels
	cause      error         // the network or context error, if any; already redacted
	reason     string        // OnRetry label
	retryAfter time.Duration // from Retry-After; negative when absent
}

// NewError returns an *Error for an answer with statusCode and problem, as SendEvent would
// have; it lets a store rebuild a remembered failure. The sentinel follows from statusCode
// and problem; statusCode 0 means ErrUnavailable.
func NewError(eventType string, statusCode int, problem *Problem, attempts int) *Error {
	return &Error{
		EventType:  eventType,
		StatusCode: statusCode,
		Problem:    problem,
		Attempts:   attempts,
		Retryable:  statusCode == 0 || statusCode == http.StatusTooManyRequests || statusCode >= 500,
		kind:       classify(statusCode, problem),
		retryAfter: -1,
	}
}

// classify maps an answer to its sentinel.
func classify(status int, p *Problem) error {
	switch {
	case status == 0, status == http.StatusTooManyRequests, status >= 500:
		return ErrUnavailable
	case status >= 200 && status < 300:
		return ErrInvalidResponse
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusBadRequest && p != nil &&
		(strings.Contains(strings.ToLower(p.Title), "inactive") || strings.Contains(strings.ToLower(p.Detail), "inactive")):
		return ErrInactiveAccount
	}
	return ErrRejected
}

// Error says what failed without the API key: the class, the status, ChronosHub's problem
// title and detail (capped) and the attempts.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chronoshub: send %q: %v", e.EventType, e.kind)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if p := e.Problem; p != nil {
		if p.Title != "" {
			b.WriteString(": " + capText(p.Title))
		}
		if p.Detail != "" {
			b.WriteString(": " + capText(p.Detail))
		}
		fields := slices.Sorted(maps.Keys(p.Errors))
		for i, f := range fields {
			if i == maxProblemFields {
				fmt.Fprintf(&b, "; and %d more", len(fields)-i)
				break
			}
			fmt.Fprintf(&b, "; %s: %s", capText(f), capText(strings.Join(p.Errors[f], " ")))
		}
	}
	if e.cause != nil {
		b.WriteString(": " + e.cause.Error())
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the sentinel and the cause, so that errors.Is matches both, e.g.
// ErrUnavailable and context.DeadlineExceeded.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

const (
	maxProblemText   = 300
	maxProblemFields = 5
	redacted         = "[REDACTED]"
)

// capText makes server text safe to put in an error string: printable and at most
// maxProblemText runes.
func capText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= maxProblemText {
		return s
	}
	r := []rune(s)
	return string(r[:maxProblemText]) + "…"
}

// parseProblem decodes a Problem Details body, redacting key from every string, or returns
// nil when body is not a JSON object.
func parseProblem(body []byte, key string) *Problem {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	if key != "" {
		body = bytes.ReplaceAll(body, []byte(key), []byte(redacted))
	}
	var generic any
	if err := json.Unmarshal(body, &generic); err != nil {
		return nil
	}
	// The key may still hide behind JSON escapes (\u0041…); a decoded walk finds it.
	if v, changed := redactValue(generic, key); changed {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		body = raw
	}
	var wire struct {
		Type   string          `json:"type"`
		Title  string          `json:"title"`
		Status int             `json:"status"`
		Detail string          `json:"detail"`
		Errors json.RawMessage `json:"errors"`
	}
	// Members of unexpected types are left to Raw; a wrong type only empties the field.
	_ = json.Unmarshal(body, &wire)
	p := &Problem{Type: wire.Type, Title: wire.Title, Status: wire.Status, Detail: wire.Detail, Raw: json.RawMessage(body)}
	var errs map[string][]string
	if len(wire.Errors) > 0 && json.Unmarshal(wire.Errors, &errs) == nil && len(errs) > 0 {
		p.Errors = errs
	}
	return p
}

// redactValue replaces key in every string of a decoded JSON value.
func redactValue(v any, key string) (any, bool) {
	if key == "" {
		return v, false
	}
	switch t := v.(type) {
	case string:
		if strings.Contains(t, key) {
			return strings.ReplaceAll(t, key, redacted), true
		}
	case []any:
		changed := false
		for i := range t {
			var c bool
			t[i], c = redactValue(t[i], key)
			changed = changed || c
		}
		return t, changed
	case map[string]any:
		changed := false
		for k, x := range t {
			nx, c := redactValue(x, key)
			nk := k
			if strings.Contains(k, key) {
				nk, c = strings.ReplaceAll(k, key, redacted), true
				delete(t, k)
			}
			t[nk] = nx
			changed = changed || c
		}
		return t, changed
	}
	return v, false
}

// redactErr hides key in err's text. The original error is dropped, so that nothing down
// the chain can print the key; a context error in it stays matchable with errors.Is.
func redactErr(err error, key string) error {
	if err == nil || key == "" || !strings.Contains(err.Error(), key) {
		return err
	}
	r := &redactedError{msg: strings.ReplaceAll(err.Error(), key, redacted)}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		r.ctxErr = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		r.ctxErr = context.Canceled
	}
	return r
}

type redactedError struct {
	msg    string
	ctxErr error
}

func (r *redactedError) Error() string { return r.msg }
func (r *redactedError) Unwrap() error { return r.ctxErr }
