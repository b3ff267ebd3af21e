package emulator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

const (
	testAPIKey = "ck_test_0123456789abcdef"
	testSecret = "whsec_test_secret"
)

// epoch is the fake clock's start, ChronosHub's example X-Timestamp.
var epoch = time.Unix(1740000000, 0).UTC()

// fakeClock is an injected Now and Sleep: Sleep records the wait and moves the clock on at
// once, so backoff schedules are observable and tests never wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// randSequence returns an injected Rand that yields values in order.
func randSequence(t *testing.T, values ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(values) == 0 {
			t.Errorf("Rand called more often than the test planned")
			return 0.999
		}
		v := values[0]
		values = values[1:]
		return v
	}
}

// startEmulator serves a new Emulator on loopback. Unset credentials, Now and Sleep get test
// values; both the server and the emulator are closed when the test ends.
func startEmulator(t *testing.T, opts emulator.Options) (*emulator.Emulator, *httptest.Server, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if opts.APIKey == "" {
		opts.APIKey = testAPIKey
	}
	if opts.WebhookSecret == nil {
		opts.WebhookSecret = []byte(testSecret)
	}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = clock.Sleep
	}
	if opts.Rand == nil {
		opts.Rand = randSequence(t)
	}
	e, err := emulator.New(opts)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { e.Close() })
	t.Cleanup(srv.Close)
	return e, srv, clock
}

// response is what a test keeps of an HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and reads the whole response.
func do(t *testing.T, method, url string, header map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// postInbound sends payload to POST /inbound/{eventType} with the test key.
func postInbound(t *testing.T, base, eventType, payload string) response {
	t.Helper()
	return do(t, http.MethodPost, base+"/inbound/"+eventType, map[string]string{
		"X-Api-Key":    testAPIKey,
		"Content-Type": "application/json",
	}, payload)
}

// decodeJSON decodes b into a generic JSON value for cmp.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("json.Unmarshal(%q) = %v", b, err)
	}
	return v
}

// problemJSON is a Problem Details body as decoded by decodeJSON.
func problemJSON(typ, title string, status int, detail string, errs map[string][]string) map[string]any {
	p := map[string]any{"type": typ, "title": title, "status": float64(status)}
	if detail != "" {
		p["detail"] = detail
	}
	if errs != nil {
		m := map[string]any{}
		for k, msgs := range errs {
			l := []any{}
			for _, msg := range msgs {
				l = append(l, msg)
			}
			m[k] = l
		}
		p["errors"] = m
	}
	return p
}

// deliverGoroutines counts the goroutines running a delivery.
func deliverGoroutines() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "emulator.(*Emulator).deliver(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
