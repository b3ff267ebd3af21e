// Package chronoshub is the client of ChronosHub's inbound API: it posts a partner's event to
// POST {base_url}/inbound/{eventType} with the sidecar's API key, retries what is worth
// retrying, and turns ChronosHub's answers into errors callers can branch on.
//
// # Delivery semantics
//
// ChronosHub documents no idempotency key for inbound events, so SendEvent is at-least-once
// towards ChronosHub and can only be made more precise by what the client can observe:
//
//   - A call that returns a Result was accepted exactly once by the attempt that produced it;
//     every earlier attempt of that call ended without ChronosHub accepting it, or in the case
//     below.
//   - An attempt that fails before the request is written (DNS, connection refused, TLS) cannot
//     have reached ChronosHub; retrying it never duplicates.
//   - An attempt whose request was sent but whose response was lost (the attempt's timeout
//     fired, the connection was reset or closed, the 2xx body could not be read, or the
//     caller's context ended while waiting) may have been accepted by ChronosHub. The client
//     cannot tell, and retries it like any network failure, so ChronosHub may then hold the
//     event twice (two eventIds; the first is never seen by the client). When such a call
//     ends in an error (ErrUnavailable), the event may nevertheless have been accepted.
//   - 5xx and 429 answers are retried on the assumption that ChronosHub did not accept the
//     event; ChronosHub does not document otherwise.
//   - A 2xx answer without a parseable eventId is not retried (ErrInvalidResponse): the event
//     was probably accepted.
//
// Retries are bounded by Options.MaxAttempts and the caller's context: a wait (backoff or
// Retry-After) that would end after the context's deadline is not started; the last error is
// returned at once instead.
//
// The API key is read for every request and never appears in an error, a Problem or a
// retry reason; text ChronosHub sends back is capped and has the key redacted.
package chronoshub

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Options.
const (
	defaultMaxAttempts    = 5
	defaultInitialBackoff = 200 * time.Millisecond
	defaultMaxBackoff     = 10 * time.Second
	defaultUserAgent      = "chronoshub-sidecar"
	defaultTimeout        = 30 * time.Second

	// maxRetryAfterFactor caps a Retry-After wait at this many MaxBackoffs, so that a server
	// asking for an hour cannot park a call for that long.
	maxRetryAfterFactor = 6

	// maxResponseBytes bounds how much of a response body is read.
	maxResponseBytes = 64 << 10
)

// maxIdleConns is how many idle connections to ChronosHub the default
// client keeps.
const maxIdleConns = 64

// Options are the optional knobs of a Client. The zero value is ready for production.
type Options struct {
	// HTTPClient's Transport sends the requests, and its Timeout bounds each attempt. Its
	// Jar and CheckRedirect are not used: redirects are never followed (they would carry the
	// API key elsewhere), even with a client given here. Nil
	// means a client with a 30-second timeout that requires TLS 1.2 or later, keeps up to
	// 64 idle connections and does not ask for compressed answers.
	HTTPClient *http.Client

	// MaxAttempts is how many HTTP attempts one SendEvent makes at most. Zero means 5.
	MaxAttempts int

	// InitialBackoff and MaxBackoff shape the exponential backoff with full jitter between
	// attempts: the wait before attempt n+1 is uniform in [0, min(MaxBackoff,
	// InitialBackoff·2ⁿ⁻¹)). Zero means 200ms and 10s.
	InitialBackoff, MaxBackoff time.Duration

	// Sleep waits d or until ctx is done, returning ctx.Err() then. Nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error

	// Rand returns a number in [0, 1) for jitter. It may be called concurrently. Nil means
	// math/rand/v2.Float64.
	Rand func() float64

	// Now tells the time for Retry-After dates and for weighing a wait against the
	// context's deadline. Nil means time.Now.
	Now func() time.Time

	// OnRetry, when set, is called before each retry with the number of the attempt that
	// failed and a short label of why: "status_503", "status_429", "network" or "timeout".
	// It may be called concurrently.
	OnRetry func(attempt int, reason string)

	// UserAgent is sent as User-Agent. Empty means "chronoshub-sidecar".
	UserAgent string

	// WrapTransport, when set, wraps the HTTP client's transport (the default
	// one, or HTTPClient's), e.g. with tracing.Tracer.WrapTransport for a
	// client span and a traceparent header on every request. Nil means no
	// wrapping.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Client posts events to ChronosHub's inbound API. It is safe for concurrent use.
type Client struct {
	inboundURL     string // base URL + "/inbound/", without the event type
	apiKey         func() string
	http           *http.Client
	maxAttempts    int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	sleep          func(ctx context.Context, d time.Duration) error
	rand           func() float64
	now            func() time.Time
	onRetry        func(attempt int, reason string)
	userAgent      []string // the User-Agent header's value

	// roundTrip is http's transport, wrapped; attempts go to it directly rather than through
	// http.Client.Do, which would copy the headers for redirects the client never follows
	// and add a deadline of its own to every request. timeout is http's Timeout, applied
	// by attempt instead.
	roundTrip http.RoundTripper
	timeout   time.Duration
}

// Values of the constant request headers, shared by every request (a header's value slice
// is only ever read or replaced, not written in place).
var (
	contentTypeJSON = []string{"application/json"}
	acceptAnswers   = []string{"application/json, application/problem+json"}
)

// bodyBuffers recycles the buffers 2xx answers are read into.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// NewClient returns a client of the inbound API at baseURL, an absolute http or https URL
// (ChronosHub's test, staging or production base). apiKey is called for every request so that
// a rotated key takes effect at once; it must be safe for concurrent use.
func NewClient(baseURL string, apiKey func() string, opts Options) (*Client, error) {
	var errs []error
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("base URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("base URL %q: scheme must be http or https", baseURL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("base URL %q: no host", baseURL))
	case u.User != nil:
		errs = append(errs, errors.New("base URL: must not carry user information"))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("base URL %q: must not have a query or fragment", baseURL))
	}
	if apiKey == nil {
		errs = append(errs, errors.New("apiKey is required"))
	}
	if opts.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d is negative", opts.MaxAttempts))
	}
	if opts.InitialBackoff < 0 || opts.MaxBackoff < 0 {
		errs = append(errs, errors.New("backoff durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("chronoshub client: %w", err)
	}

	c := &Client{
		inboundURL:     strings.TrimRight(u.String(), "/") + "/inbound/",
		apiKey:         apiKey,
		maxAttempts:    cmp.Or(opts.MaxAttempts, defaultMaxAttempts),
		initialBackoff: cmp.Or(opts.InitialBackoff, defaultInitialBackoff),
		maxBackoff:     cmp.Or(opts.MaxBackoff, defaultMaxBackoff),
		sleep:          opts.Sleep,
		rand:           opts.Rand,
		now:            opts.Now,
		onRetry:        opts.OnRetry,
		userAgent:      []string{cmp.Or(opts.UserAgent, defaultUserAgent)},
	}
	if c.maxBackoff < c.initialBackoff {
		c.maxBackoff = c.initialBackoff
	}
	if c.sleep == nil {
		c.sleep = sleep
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		c.http = &hc
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		// Every call goes to one host; keep enough idle connections for
		// concurrent callers (the default of 2 re-dials, and re-handshakes,
		// for most calls under load: measured by make bench).
		t.MaxIdleConnsPerHost = maxIdleConns
		// ChronosHub's answers are a few hundred bytes of JSON: asking for gzip
		// would only cost a header and a decompressor's setup per request.
		t.DisableCompression = true
		c.http = &http.Client{Transport: t, Timeout: defaultTimeout}
	}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if opts.WrapTransport != nil {
		rt := c.http.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		c.http.Transport = opts.WrapTransport(rt)
	}
	c.roundTrip, c.timeout = c.http.Transport, c.http.Timeout
	if c.roundTrip == nil {
		c.roundTrip = http.DefaultTransport
	}
	return c, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Result is ChronosHub's answer to an accepted event.
type Result struct {
	// EventID is the eventId ChronosHub gave the event.
	EventID string
	// Status is ChronosHub's status, "Accepted" in practice.
	Status string
	// Attempts is how many HTTP attempts the call made, at least 1.
	Attempts int
}

// accepted is ChronosHub's 2xx body.
type accepted struct {
	EventID string `json:"eventId"`
	Status  string `json:"status"`
}

// SendEvent posts payload, byte for byte, as an event of eventType and returns ChronosHub's
// answer. Errors are *Error values matching one of ErrUnauthorized, ErrInactiveAccount,
// ErrRejected, ErrUnavailable or ErrInvalidResponse with errors.Is, and the context's error
// when it ended the call. See the package documentation for what a retry may duplicate.
func (c *Client) SendEvent(ctx context.Context, eventType string, payload []byte) (Result, error) {
	if eventType == "" {
		return Result{}, &Error{EventType: eventType, StatusCode: 0, cause: errors.New("empty event type"), kind: ErrRejected}
	}
	target := c.inboundURL + url.PathEscape(eventType)
	for attempt := 1; ; attempt++ {
		res, e := c.attempt(ctx, target, eventType, payload)
		if e == nil {
			res.Attempts = attempt
			return res, nil
		}
		e.Attempts = attempt
		if !e.Retryable || attempt >= c.maxAttempts {
			return Result{}, e
		}
		if err := ctx.Err(); err != nil {
			e.cause = errors.Join(e.cause, err)
			return Result{}, e
		}
		wait := c.backoff(attempt)
		if e.retryAfter >= 0 {
			wait = min(e.retryAfter, c.maxBackoff*maxRetryAfterFactor)
		}
		if dl, ok := ctx.Deadline(); ok && dl.Sub(c.now()) < wait {
			// Sleeping past the deadline would only end in the context's error; the caller
			// learns more from the last answer, now.
			return Result{}, e
		}
		if c.onRetry != nil {
			c.onRetry(attempt, e.reason)
		}
		if err := c.sleep(ctx, wait); err != nil {
			e.cause = errors.Join(e.cause, err)
			return Result{}, e
		}
	}
}

// backoff returns the jittered wait after the failed attempt n (1-based).
func (c *Client) backoff(n int) time.Duration {
	ceil := c.initialBackoff
	for i := 1; i < n && ceil < c.maxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, c.maxBackoff)
	return time.Duration(c.rand() * float64(ceil))
}

// attempt makes one HTTP attempt. A nil *Error means success.
func (c *Client) attempt(ctx context.Context, target, eventType string, payload []byte) (Result, *Error) {
	key := c.apiKey()
	fail := func(e *Error) *Error {
		e.EventType = eventType
		if e.kind == nil {
			e.kind = classify(e.StatusCode, e.Problem)
		}
		e.cause = redactErr(e.cause, key)
		return e
	}
	// The attempt's timeout, unless the caller's deadline comes first anyway (the sidecar's
	// SendEvent always has one): a deadline costs allocations and a timer.
	actx := ctx
	if dl, ok := ctx.Deadline(); c.timeout > 0 && (!ok || time.Until(dl) > c.timeout) {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return Result{}, fail(&Error{cause: fmt.Errorf("build request: %w", err), kind: ErrRejected, retryAfter: -1})
	}
	req.Header = http.Header{
		"X-Api-Key":    {key},
		"Content-Type": contentTypeJSON,
		"Accept":       acceptAnswers,
		"User-Agent":   c.userAgent,
	}

	resp, err := c.roundTrip.RoundTrip(req)
	if err != nil {
		// As http.Client.Do reports it.
		return Result{}, fail(networkError(ctx, &url.Error{Op: "Post", URL: target, Err: err}))
	}
	defer resp.Body.Close()
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyBuffers.Put(buf)
	_, readErr := buf.ReadFrom(&io.LimitedReader{R: resp.Body, N: maxResponseBytes})
	// Drain a little more so the connection can be reused; what is left is dropped.
	io.CopyN(io.Discard, resp.Body, maxResponseBytes)

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr != nil {
			// ChronosHub accepted the event but its answer was lost: the documented
			// duplicate case if the caller or we retry.
			return Result{}, fail(networkError(ctx, readErr))
		}
		var a accepted
		if err := json.Unmarshal(buf.Bytes(), &a); err != nil || a.EventID == "" {
			return Result{}, fail(&Error{StatusCode: resp.StatusCode, kind: ErrInvalidResponse, retryAfter: -1,
				cause: errors.New("2xx answer without an eventId")})
		}
		return Result{EventID: a.EventID, Status: a.Status}, nil
	}
	body := bytes.Clone(buf.Bytes()) // The Problem keeps it.

	e := &Error{StatusCode: resp.StatusCode, Problem: parseProblem(body, key), retryAfter: -1}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		e.Retryable = true
		e.reason = "status_" + strconv.Itoa(resp.StatusCode)
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
			e.retryAfter = d
		}
	}
	return Result{}, fail(e)
}

// networkError describes an attempt that got no HTTP answer.
func networkError(ctx context.Context, err error) *Error {
	e := &Error{cause: err, Retryable: true, reason: "network", retryAfter: -1, kind: ErrUnavailable}
	if ctx.Err() != nil {
		// The caller's context ended the attempt; retrying is pointless.
		e.Retryable = false
		e.cause = errors.Join(err, ctx.Err())
		return e
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		e.reason = "timeout"
	}
	return e
}

// parseRetryAfter reads a Retry-After value in delay-seconds or HTTP-date form.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		// Clamp before converting so a huge value cannot overflow.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
