// Package push delivers a subscription's events to the app's own HTTP
// endpoint, for apps that cannot hold a stream open (PHP-FPM, Rails, Django,
// ASP.NET): each event is one POST of its payload, byte for byte.
//
// A Pusher consumes its subscription through the event log like any
// stream, so delivery is at-least-once with the log's attempts and dead
// letters. What the app answers decides the event's fate:
//
//	2xx                          acknowledged
//	429, 503                     retried after Retry-After (else backoff); counts an attempt
//	other 5xx, 1xx, 3xx          retried with exponential backoff and jitter; counts an attempt
//	timeout, reset, other error  retried with exponential backoff and jitter; counts an attempt
//	other 4xx                    dead letters at once (reason "refused"), or retried with Retry4xx
//	connection refused           given back without counting an attempt; delivery
//	                             pauses until the app accepts connections again
//
// An event whose last allowed attempt fails goes to the dead letters with
// the reason "max_attempts" and what the app answered as the detail.
package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

// Log is what a Pusher needs of the event log.
type Log interface {
	PushStream(ctx context.Context, req eventlog.StreamRequest, send func(eventlog.Event) error) error
	Settle(ctx context.Context, s eventlog.Settlement) (done, unknown []string, err error)
	GiveBack(sub, id string) error
	DeadLetterNow(ctx context.Context, sub string, e eventlog.Event, reason, detail string) error
}

// Observer is told about pushes, for metrics. Methods must not block.
type Observer interface {
	// Pushed is called after each POST with its outcome class (OutcomeOK…)
	// and how long it took.
	Pushed(subscription, outcome string, d time.Duration)
	// InFlight is called with +1 when a POST starts and -1 when it ends.
	InFlight(subscription string, delta int)
	// Paused is called when delivery pauses (the app is unreachable) and
	// resumes.
	Paused(subscription string, paused bool)
}

// Outcome classes of one POST, as metrics label them.
const (
	OutcomeOK          = "2xx"
	OutcomeRetryAfter  = "429_503"
	OutcomeServerError = "5xx"
	OutcomeClientError = "4xx"
	OutcomeOther       = "other_status"
	OutcomeTimeout     = "timeout"
	OutcomeError       = "error"
	OutcomeUnreachable = "unreachable"
)

// Target is one push subscription: where and how its events are posted.
type Target struct {
	// Subscription is the subscription's name.
	Subscription string
	// Types is its event-type filter; none means every type.
	Types []string
	// URL is the app's endpoint, http or https. Unless AllowRemote, its
	// host is localhost or a loopback address, or Socket is set.
	URL string
	// Socket, when not empty, is the path of a unix socket to connect to
	// instead of URL's host (URL still gives the path and Host header).
	Socket string
	// AllowRemote lets URL name a host beyond loopback: the payload then
	// leaves the pod.
	AllowRemote bool
	// Concurrency is how many POSTs are in flight at once; 1 posts one
	// event at a time in order. Zero means 1.
	Concurrency int
	// Timeout bounds one POST, from dialling to the end of the response
	// headers. Zero means 10 s.
	Timeout time.Duration
	// Retry4xx retries 4xx answers (other than 429) like 5xx instead of
	// dead-lettering the event at once.
	Retry4xx bool
	// CloudEvents adds CloudEvents 1.0 binary-mode headers (ce-id, ce-type,
	// ce-source, ce-time, ce-specversion).
	CloudEvents bool
	// Secret, when not zero, signs each POST in the Standard Webhooks
	// format (webhook-id, webhook-timestamp, webhook-signature).
	Secret Secret
}

// CheckURL validates a push URL and socket; remote is AllowRemote.
func CheckURL(rawURL, socket string, remote bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an absolute http or https URL", rawURL)
	}
	if u.User != nil {
		return errors.New("url must not carry user information")
	}
	if u.Fragment != "" {
		return errors.New("url must not have a fragment")
	}
	if socket != "" {
		if !strings.HasPrefix(socket, "/") {
			return fmt.Errorf("socket %q is not an absolute path", socket)
		}
		return nil
	}
	if remote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("url host %s is not loopback: the payload would leave the pod; set allow_remote to send it there", host)
}

// Options tunes a Pusher. Every zero value has a default.
type Options struct {
	// MaxAttempts is the log's CHRONOSHUB_MAX_ATTEMPTS: the attempt that
	// fails with it dead-letters the event. Zero means 5.
	MaxAttempts int
	// AckWait is the log's ack deadline. A POST must end well within it;
	// with Concurrency 1 a retry's delay is waited out holding the event
	// (so that later events stay behind it) up to half of it. Zero means
	// 30 s.
	AckWait time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff between
	// attempts (and a Retry-After). Zero means 1 s and 5 min.
	BackoffMin, BackoffMax time.Duration
	// ProbeMin and ProbeMax bound the delay between connection probes while
	// the app is unreachable. Zero means 100 ms and 5 s.
	ProbeMin, ProbeMax time.Duration
	// Now is the clock of signatures and Retry-After dates. Nil means
	// time.Now.
	Now func() time.Time
	// Rand returns jitter in [0, 1). Nil means math/rand/v2.
	Rand func() float64
	// Tracer, when not nil, gives each POST a client span, child of the
	// event's trace.
	Tracer *tracing.Tracer
	// Logger receives warnings. Nil discards them.
	Logger *slog.Logger
	// Observer receives outcomes for metrics. Nil ignores them.
	Observer Observer
}

// State is a push subscription's delivery state.
type State struct {
	URL        string
	Paused     bool
	InFlight   int
	LastStatus int    // the last HTTP status; 0 before the first answer
	LastError  string // the last failure (a status or a transport error); "" after a success
}

// Pusher posts one push subscription's events to the app. Run it once.
type Pusher struct {
	log    Log
	t      Target
	opts   Options
	client *http.Client
	dial   func(ctx context.Context) (net.Conn, error)

	paused   atomic.Bool
	inFlight atomic.Int64

	mu         sync.Mutex
	lastStatus int
	lastError  string
}

// maxResponseRead bounds how much of a response body is read (and dropped)
// so that its connection can be reused.
const maxResponseRead = 64 << 10

// New returns a Pusher of t over log.
func New(log Log, t Target, opts Options) (*Pusher, error) {
	if err := CheckURL(t.URL, t.Socket, t.AllowRemote); err != nil {
		return nil, fmt.Errorf("push subscription %s: %w", t.Subscription, err)
	}
	t.Concurrency = max(t.Concurrency, 1)
	if t.Timeout <= 0 {
		t.Timeout = 10 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 5 * time.Minute
	}
	if opts.ProbeMin <= 0 {
		opts.ProbeMin = 100 * time.Millisecond
	}
	if opts.ProbeMax <= 0 {
		opts.ProbeMax = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = opts.Logger.With("component", "push", "subscription", t.Subscription)
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	p := &Pusher{log: log, t: t, opts: opts}
	u, _ := url.Parse(t.URL)
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	dialer := &net.Dialer{Timeout: t.Timeout}
	p.dial = func(ctx context.Context) (net.Conn, error) {
		if t.Socket != "" {
			return dialer.DialContext(ctx, "unix", t.Socket)
		}
		return dialer.DialContext(ctx, "tcp", addr)
	}
	transport := &http.Transport{
		DialContext:           func(ctx context.Context, _, _ string) (net.Conn, error) { return p.dial(ctx) },
		MaxIdleConnsPerHost:   t.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   t.Timeout,
		ResponseHeaderTimeout: t.Timeout,
		DisableCompression:    true,
	}
	p.client = &http.Client{
		Transport:     opts.Tracer.WrapTransport(transport),
		Timeout:       t.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

type nopObserver struct{}

func (nopObserver) Pushed(string, string, time.Duration) {}
func (nopObserver) InFlight(string, int)                 {}
func (nopObserver) Paused(string, bool)                  {}

// State returns the subscription's delivery state.
func (p *Pusher) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return State{URL: p.t.URL, Paused: p.paused.Load(), InFlight: int(p.inFlight.Load()), LastStatus: p.lastStatus, LastError: p.lastError}
}

// errPaused ends a stream when the app became unreachable.
var errPaused = errors.New("app unreachable")

// Run pushes events until ctx ends. It waits for the app to accept
// connections first, and again whenever it stops accepting them. After the
// log quiesces it lets the POSTs in flight finish and settles their events
// (Log.Holding shows when), then waits for ctx. It returns nil when ctx
// ends, or the log's error.
func (p *Pusher) Run(ctx context.Context) error {
	for {
		if err := p.waitReachable(ctx); err != nil {
			return nil
		}
		err := p.runStream(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errPaused):
			continue
		case err == nil || errors.Is(err, eventlog.ErrClosed):
			// The log quiesced (a graceful shutdown) and every event
			// this stream held is settled.
			<-ctx.Done()
			return nil
		default:
			return fmt.Errorf("push subscription %s: %w", p.t.Subscription, err)
		}
	}
}

// waitReachable probes the app's address until it accepts a connection,
// with a growing delay, and marks delivery paused meanwhile.
func (p *Pusher) waitReachable(ctx context.Context) error {
	wait := p.opts.ProbeMin
	for {
		conn, err := p.dial(ctx)
		if err == nil {
			conn.Close()
			p.setPaused(false)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !p.paused.Load() {
			p.opts.Logger.Warn("app not accepting connections; push delivery paused until it does (no attempt is counted)", "url", p.t.URL, "err", err)
		}
		p.setPaused(true)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, p.opts.ProbeMax)
	}
}

func (p *Pusher) setPaused(paused bool) {
	if p.paused.Swap(paused) != paused {
		p.opts.Observer.Paused(p.t.Subscription, paused)
		if !paused {
			p.opts.Logger.Info("app accepts connections; push delivery resumed", "url", p.t.URL)
		}
	}
}

// runStream opens one stream on the subscription and hands its events to
// Concurrency workers. When a worker finds the app unreachable it gives its
// event back, the other workers finish what they hold, and the stream ends
// with errPaused.
func (p *Pusher) runStream(ctx context.Context) error {
	if p.t.Concurrency == 1 {
		return p.runStrict(ctx)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan eventlog.Event)
	stopWorkers := make(chan struct{})
	var pausing atomic.Bool
	var stopOnce sync.Once
	pause := func() {
		pausing.Store(true)
		stopOnce.Do(func() { close(stopWorkers) })
	}
	var wg sync.WaitGroup
	for range p.t.Concurrency {
		wg.Go(func() {
			for {
				select {
				case e := <-jobs:
					if pausing.Load() {
						p.giveBack(e)
						continue
					}
					if p.deliver(ctx, e) {
						pause()
					}
				case <-stopWorkers:
					return
				}
			}
		})
	}
	// The stream ends once the workers stopped after a pause, so that what
	// they held is settled or given back first, never abandoned (which
	// would count an attempt).
	workersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(workersDone)
		cancel(errPaused)
	}()
	err := p.log.PushStream(sctx, eventlog.StreamRequest{
		Subscription: p.t.Subscription,
		Types:        p.t.Types,
		MaxInFlight:  p.t.Concurrency,
	}, func(e eventlog.Event) error {
		select {
		case jobs <- e:
			return nil
		case <-sctx.Done():
			p.giveBack(e)
			return context.Cause(sctx)
		}
	})
	stopOnce.Do(func() { close(stopWorkers) })
	<-workersDone
	if pausing.Load() && ctx.Err() == nil {
		return errPaused
	}
	return err
}

// runStrict is runStream for concurrency 1: the stream's own goroutine
// posts each event and settles it before it asks for the next, with no
// worker to hand the event to. An event's way from the log to the app is
// then one goroutine switch shorter, and so is the way from its
// acknowledgement to the next pull; with a single POST in flight a worker
// has nothing to overlap. When the app is unreachable the event is given
// back and the stream ends with errPaused.
func (p *Pusher) runStrict(ctx context.Context) error {
	err := p.log.PushStream(ctx, eventlog.StreamRequest{
		Subscription: p.t.Subscription,
		Types:        p.t.Types,
		MaxInFlight:  1,
	}, func(e eventlog.Event) error {
		if p.deliver(ctx, e) {
			return errPaused
		}
		return nil
	})
	if errors.Is(err, errPaused) && ctx.Err() != nil {
		return nil
	}
	return err
}

func (p *Pusher) giveBack(e eventlog.Event) {
	if err := p.log.GiveBack(p.t.Subscription, e.ID); err != nil {
		p.opts.Logger.Warn("give back event", "event_id", e.ID, "err", err)
	}
}

// deliver posts one event and settles it. It reports whether the app was
// unreachable (the event is given back).
func (p *Pusher) deliver(ctx context.Context, e eventlog.Event) (unreachable bool) {
	p.inFlight.Add(1)
	p.opts.Observer.InFlight(p.t.Subscription, 1)
	defer func() {
		p.inFlight.Add(-1)
		p.opts.Observer.InFlight(p.t.Subscription, -1)
	}()
	start := time.Now()
	status, retryAfter, err := p.post(ctx, e)
	outcome := classify(status, err)
	p.opts.Observer.Pushed(p.t.Subscription, outcome, time.Since(start))
	detail := ""
	switch {
	case outcome == OutcomeTimeout:
		detail = "timeout after " + p.t.Timeout.String()
	case err != nil:
		detail = err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			detail = ue.Err.Error() // without the method and URL
		}
	case outcome != OutcomeOK:
		detail = "HTTP " + strconv.Itoa(status)
	}
	p.mu.Lock()
	if status != 0 {
		p.lastStatus = status
	}
	p.lastError = detail
	p.mu.Unlock()

	switch {
	case outcome == OutcomeOK:
		// Acknowledged even when shutting down: the app has it.
		p.settle(ctx, e, false, 0)
	case ctx.Err() != nil:
		// Shutting down: the stream's end returns the event.
		return false
	case outcome == OutcomeUnreachable:
		p.giveBack(e)
		return true
	case outcome == OutcomeClientError && !p.t.Retry4xx:
		p.deadLetter(ctx, e, eventlog.ReasonRefused, detail)
	case e.Attempt >= p.opts.MaxAttempts:
		p.deadLetter(ctx, e, eventlog.ReasonMaxAttempts, detail)
	default:
		delay := p.backoff(e.Attempt)
		if retryAfter > 0 {
			delay = min(retryAfter, p.opts.BackoffMax)
		}
		p.opts.Logger.Debug("push failed; retrying", "event_id", e.ID, "attempt", e.Attempt, "detail", detail, "retry_in", delay.String())
		p.retry(ctx, e, delay)
	}
	return false
}

// retry offers the event again after delay. With Concurrency 1 it holds the
// event for the delay (up to half the ack deadline) and then returns it at
// the head of the line, so later events never overtake it.
func (p *Pusher) retry(ctx context.Context, e eventlog.Event, delay time.Duration) {
	if p.t.Concurrency == 1 {
		hold := min(delay, p.opts.AckWait/2)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
		delay -= hold
	}
	p.settle(ctx, e, true, delay)
}

// backoff is the delay after attempt: exponential from BackoffMin, capped
// at BackoffMax, with jitter taking off up to half.
func (p *Pusher) backoff(attempt int) time.Duration {
	d := p.opts.BackoffMin
	for range attempt - 1 {
		if d >= p.opts.BackoffMax/2 {
			d = p.opts.BackoffMax
			break
		}
		d *= 2
	}
	d = min(d, p.opts.BackoffMax)
	return d - time.Duration(p.opts.Rand()*float64(d)/2)
}

func (p *Pusher) settle(ctx context.Context, e eventlog.Event, reject bool, delay time.Duration) {
	_, unknown, err := p.log.Settle(context.WithoutCancel(ctx), eventlog.Settlement{
		Subscription: p.t.Subscription, IDs: []string{e.ID}, Reject: reject, Delay: delay,
	})
	if err != nil || len(unknown) > 0 {
		// Its ack deadline offers it again.
		p.opts.Logger.Warn("settle pushed event", "event_id", e.ID, "reject", reject, "unknown", len(unknown) > 0, "err", err)
	}
}

func (p *Pusher) deadLetter(ctx context.Context, e eventlog.Event, reason, detail string) {
	if err := p.log.DeadLetterNow(context.WithoutCancel(ctx), p.t.Subscription, e, reason, detail); err != nil {
		p.opts.Logger.Warn("dead-letter pushed event", "event_id", e.ID, "err", err)
	}
}

// Headers of a push POST.
const (
	HeaderEventID      = "Chronoshub-Event-Id"
	HeaderEventType    = "Chronoshub-Event-Type"
	HeaderAttempt      = "Chronoshub-Attempt"
	HeaderSignedAt     = "Chronoshub-Signed-At"
	HeaderReceivedAt   = "Chronoshub-Received-At"
	HeaderSubscription = "Chronoshub-Subscription"
	// HeaderReplay is "true" on an event offered again on purpose
	// (ReplayEvents, or a replayed dead letter); absent otherwise.
	HeaderReplay = "Chronoshub-Replay"
)

// post sends one event and returns the status, a Retry-After delay (429
// and 503 only) and the transport error.
func (p *Pusher) post(ctx context.Context, e eventlog.Event) (status int, retryAfter time.Duration, err error) {
	if p.opts.Tracer != nil {
		// The client span (from the wrapped transport) continues the
		// event's trace and puts its own traceparent on the request.
		ctx = p.opts.Tracer.ContextWithTraceContext(ctx, e.TraceParent, e.TraceState)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.t.URL, bytes.NewReader(e.Payload))
	if err != nil {
		return 0, 0, err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "chronoshub-sidecar")
	h.Set(HeaderEventID, e.ID)
	h.Set(HeaderEventType, e.Type)
	h.Set(HeaderAttempt, strconv.Itoa(e.Attempt))
	h.Set(HeaderSubscription, p.t.Subscription)
	if e.Replay {
		h.Set(HeaderReplay, "true")
	}
	if !e.SignedAt.IsZero() {
		h.Set(HeaderSignedAt, e.SignedAt.UTC().Format(time.RFC3339))
	}
	if !e.ReceivedAt.IsZero() {
		h.Set(HeaderReceivedAt, e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	if p.opts.Tracer == nil && e.TraceParent != "" {
		h.Set(tracing.HeaderTraceParent, e.TraceParent)
		if e.TraceState != "" {
			h.Set(tracing.HeaderTraceState, e.TraceState)
		}
	}
	if p.t.CloudEvents {
		h.Set("ce-specversion", "1.0")
		h.Set("ce-id", e.ID)
		h.Set("ce-type", e.Type)
		h.Set("ce-source", "chronoshub-sidecar/"+p.t.Subscription)
		if !e.SignedAt.IsZero() {
			h.Set("ce-time", e.SignedAt.UTC().Format(time.RFC3339))
		}
	}
	if !p.t.Secret.IsZero() {
		now := p.opts.Now()
		h.Set("webhook-id", e.ID)
		h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("webhook-signature", p.t.Secret.Sign(e.ID, now, e.Payload))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), p.opts.Now())
	}
	return resp.StatusCode, retryAfter, nil
}

// parseRetryAfter reads a Retry-After value (seconds or an HTTP date); 0
// means none or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > 1<<31 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// classify names a POST's outcome.
func classify(status int, err error) string {
	switch {
	case err != nil && isUnreachable(err):
		return OutcomeUnreachable
	case err != nil && isTimeout(err):
		return OutcomeTimeout
	case err != nil:
		return OutcomeError
	case status >= 200 && status < 300:
		return OutcomeOK
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return OutcomeRetryAfter
	case status >= 500:
		return OutcomeServerError
	case status >= 400:
		return OutcomeClientError
	default:
		return OutcomeOther
	}
}

// isUnreachable reports a connection that could not be made because
// nothing listens: refused, or a unix socket that does not exist.
func isUnreachable(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
