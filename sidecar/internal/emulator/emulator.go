// Package emulator is ChronosHub in a box: an http.Handler that accepts inbound events the way
// ChronosHub documents them (POST /inbound/{eventType} with X-Api-Key) and delivers signed
// outbound webhooks with ChronosHub's headers and retry behaviour. Partners use it in their tests
// (the emulate subcommand), and the dev subcommand and our end-to-end tests wire it to a sidecar.
//
// The emulator never listens: the caller serves Handler on a listener it owns, and calls Close to
// stop the background deliveries.
package emulator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxRetries   = 5
	DefaultRetryBase    = time.Second
	DefaultRetryMax     = time.Minute
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxHistory   = 1000
	defaultHTTPTimeout  = 30 * time.Second
)

// Options configures an Emulator. APIKey and WebhookSecret are required; every other field
// has a usable zero value.
type Options struct {
	// APIKey is the key inbound requests must carry in X-Api-Key. Required.
	APIKey string

	// WebhookSecret signs outbound webhooks. Required.
	WebhookSecret []byte

	// Logger receives the emulator's logs. Nil discards them.
	Logger *slog.Logger

	// Now tells the time for X-Timestamp, received events and attempts. Nil means time.Now.
	Now func() time.Time

	// Sleep waits between delivery attempts and for injected latency; it returns early with
	// ctx.Err() when ctx is done. Nil means a timer-based sleep.
	Sleep func(ctx context.Context, d time.Duration) error

	// Rand returns a number in [0, 1) for fault injection. It is called with the emulator's
	// lock held, so never concurrently. Nil means math/rand/v2.Float64.
	Rand func() float64

	// HTTPClient sends outbound webhooks; set it to trust a self-signed certificate. Nil means
	// a client with a 30-second timeout.
	HTTPClient *http.Client

	// MaxRetries is how many times a failed delivery is retried after its first attempt.
	// Zero means DefaultMaxRetries (5, as ChronosHub documents); negative means no retries.
	MaxRetries int

	// RetryBase is the wait before the first retry; each further retry waits twice as long,
	// up to RetryMax. Zero means DefaultRetryBase (1s).
	RetryBase time.Duration

	// RetryMax caps the wait between retries. Zero means DefaultRetryMax (1m).
	RetryMax time.Duration

	// MaxHistory bounds what the emulator remembers: the most recent
	// MaxHistory inbound events, and deliveries (finished ones are forgotten
	// oldest first; pending ones are kept). Zero means DefaultMaxHistory;
	// a negative value keeps everything (for tests that account for every
	// event of a long run).
	MaxHistory int

	// MaxBodyBytes limits inbound payloads and the emulator's own API requests; larger
	// payloads get 413. Zero means DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64

	// InactiveAccount makes every authenticated inbound request fail with 400, as ChronosHub
	// answers for an inactive account. False means the account is active.
	InactiveAccount bool

	// EventTypes are the event types the partner is authorised to send, as ChronosHub
	// confirms them at onboarding: exact types, or patterns with "*" and ">" segments
	// (manuscript.*, >). An inbound event of another type is refused with 400 and a
	// ValidationProblemDetails naming eventType, and is not stored. Nil accepts every
	// type; the emulate and dev commands pass DefaultEventTypes (the catalogue) unless told
	// otherwise.
	EventTypes []string

	// Faults are the initial fault-injection settings; PUT /_emulator/faults and SetFaults
	// change them at run time. The zero value injects no faults.
	Faults Faults
}

// Emulator is an in-memory ChronosHub. Its methods are safe for concurrent use. It owns the
// goroutines that deliver outbound webhooks; Close stops them.
type Emulator struct {
	apiKey       string
	secret       []byte
	log          *slog.Logger
	now          func() time.Time
	sleep        func(ctx context.Context, d time.Duration) error
	rand         func() float64
	client       *http.Client
	maxRetries   int
	retryBase    time.Duration
	retryMax     time.Duration
	maxBodyBytes int64
	inactive     bool
	eventTypes   []string // nil: any
	handler      http.Handler

	// ctx is the parent of every delivery; Close cancels it and waits for wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	faults     Faults
	inbound    []InboundEvent
	deliveries map[string]*delivery
	order      []string // delivery IDs in creation order
	maxHistory int
}

// New returns an Emulator configured by opts, or every problem with opts at once.
func New(opts Options) (*Emulator, error) {
	var errs []error
	if opts.APIKey == "" {
		errs = append(errs, errors.New("APIKey is required"))
	}
	if len(opts.WebhookSecret) == 0 {
		errs = append(errs, errors.New("WebhookSecret is required"))
	}
	if opts.RetryBase < 0 {
		errs = append(errs, fmt.Errorf("RetryBase %v is negative", opts.RetryBase))
	}
	if opts.RetryMax < 0 {
		errs = append(errs, fmt.Errorf("RetryMax %v is negative", opts.RetryMax))
	}
	if opts.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes %d is negative", opts.MaxBodyBytes))
	}
	for _, p := range opts.EventTypes {
		if err := eventtype.ValidatePattern(p); err != nil {
			errs = append(errs, fmt.Errorf("EventTypes: %w", err))
		}
	}
	if opts.EventTypes != nil && len(opts.EventTypes) == 0 {
		errs = append(errs, errors.New("EventTypes is empty: it would refuse every event (nil accepts any)"))
	}
	if err := opts.Faults.validate(); err != nil {
		errs = append(errs, fmt.Errorf("Faults: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("emulator options: %w", err)
	}

	e := &Emulator{
		apiKey:       opts.APIKey,
		secret:       append([]byte(nil), opts.WebhookSecret...),
		log:          opts.Logger,
		now:          opts.Now,
		sleep:        opts.Sleep,
		rand:         opts.Rand,
		client:       opts.HTTPClient,
		maxRetries:   opts.MaxRetries,
		retryBase:    opts.RetryBase,
		retryMax:     opts.RetryMax,
		maxBodyBytes: opts.MaxBodyBytes,
		inactive:     opts.InactiveAccount,
		eventTypes:   slices.Clone(opts.EventTypes),
		faults:       opts.Faults,
		deliveries:   make(map[string]*delivery),
		maxHistory:   cmp.Or(opts.MaxHistory, DefaultMaxHistory),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "emulator")
	if e.now == nil {
		e.now = time.Now
	}
	if e.sleep == nil {
		e.sleep = sleep
	}
	if e.rand == nil {
		e.rand = rand.Float64
	}
	if e.client == nil {
		e.client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	switch {
	case e.maxRetries == 0:
		e.maxRetries = DefaultMaxRetries
	case e.maxRetries < 0:
		e.maxRetries = 0
	}
	if e.retryBase == 0 {
		e.retryBase = DefaultRetryBase
	}
	if e.retryMax == 0 {
		e.retryMax = DefaultRetryMax
	}
	if e.maxBodyBytes == 0 {
		e.maxBodyBytes = DefaultMaxBodyBytes
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.handler = refuseCrossSite(e.routes())
	return e, nil
}

// Handler returns the emulator's HTTP API: ChronosHub's inbound endpoint and the /_emulator/
// control routes. The caller serves it on a listener it owns.
func (e *Emulator) Handler() http.Handler { return e.handler }

// routes is the one place where the emulator's routes are declared.
func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /inbound/{eventType}", e.handleInbound())
	mux.Handle("GET /_emulator/inbound", e.handleListInbound())
	mux.Handle("DELETE /_emulator/inbound", e.handleClearInbound())
	mux.Handle("GET /_emulator/faults", e.handleGetFaults())
	mux.Handle("PUT /_emulator/faults", e.handlePutFaults())
	mux.Handle("POST /_emulator/deliveries", e.handleStartDelivery())
	mux.Handle("GET /_emulator/deliveries", e.handleListDeliveries())
	mux.Handle("GET /_emulator/deliveries/{id}", e.handleGetDelivery())
	return mux
}

// Close stops every delivery in progress (they end as failed) and waits for their goroutines
// to return. Deliveries started after Close fail at once. Close is idempotent and always
// returns nil; the error is there to satisfy io.Closer.
func (e *Emulator) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
