package chronoshub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testKey = "sk_test_9f8e7d6c5b4a"

// sleepRecorder is an injected Sleep that records the durations asked for and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	sleeps []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.sleeps = append(s.sleeps, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.sleeps...)
}

// newTestClient returns a client of url whose sleeps are recorded, not slept.
func newTestClient(t *testing.T, url string, opts Options) (*Client, *sleepRecorder) {
	t.Helper()
	rec := &sleepRecorder{}
	if opts.Sleep == nil {
		opts.Sleep = rec.sleep
	}
	if opts.Rand == nil {
		opts.Rand = func() float64 { return 0.5 }
	}
	c, err := NewClient(url, func() string { return testKey }, opts)
	if err != nil {
		t.Fatalf("NewClient(%q) = %v", url, err)
	}
	return c, rec
}

// answer writes status with a JSON body.
func answer(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func acceptedBody(id string) string {
	return fmt.Sprintf(`{"eventId":%q,"status":"Accepted"}`, id)
}

func TestSendEventRequest(t *testing.T) {
	tests := []struct {
		name      string
		basePath  string
		eventType string
		payload   string
		wantURI   string
	}{
		{"plain", "", "manuscript.submitted", `{"id":1}`, "/inbound/manuscript.submitted"},
		{"base path with slash", "/api/v1/", "manuscript.submitted", `{"id":1}`, "/api/v1/inbound/manuscript.submitted"},
		{"escaped type", "", "a b/c?d#e%", `{"id":1}`, "/inbound/a%20b%2Fc%3Fd%23e%25"},
		{"byte exact body", "", "t", "{ \"title\" : \"𝔐athematical ünïcode\",\n\t\"n\": 1.50 }  ", "/inbound/t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				Method, URI, Key, ContentType, UserAgent, Body string
			}
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- seen{r.Method, r.RequestURI, r.Header.Get("X-Api-Key"), r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), string(b)}
				answer(w, http.StatusAccepted, "application/json", acceptedBody("0b7e2b8e-5a43-4a8e-9d3e-2f0f2d7c1a11"))
			}))
			t.Cleanup(srv.Close)
			c, _ := newTestClient(t, srv.URL+tt.basePath, Options{})

			res, err := c.SendEvent(t.Context(), tt.eventType, []byte(tt.payload))
			if err != nil {
				t.Fatalf("SendEvent = %v", err)
			}
			want := Result{EventID: "0b7e2b8e-5a43-4a8e-9d3e-2f0f2d7c1a11", Status: "Accepted", Attempts: 1}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("SendEvent result (-want +got):\n%s", diff)
			}
			wantSeen := seen{http.MethodPost, tt.wantURI, testKey, "application/json", "chronoshub-sidecar", tt.payload}
			if diff := cmp.Diff(wantSeen, <-got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendEventErrors(t *testing.T) {
	const validation = `{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"One or more validation errors occurred.","status":400,"errors":{"payload":["The payload is missing or empty."]}}`
	tests := []struct {
		name         string
		status       int
		contentType  string
		body         string
		want         error
		wantAttempts int
		wantProblem  *Problem
	}{
		{"400 validation", 400, "application/problem+json", validation, ErrRejected, 1, &Problem{
			Type: "https://tools.ietf.org/html/rfc9110#section-15.5.1", Title: "One or more validation errors occurred.", Status: 400,
			Errors: map[string][]string{"payload": {"The payload is missing or empty."}}, Raw: []byte(validation),
		}},
		{"400 inactive in detail", 400, "application/problem+json", `{"title":"Bad Request","status":400,"detail":"The account is INACTIVE."}`, ErrInactiveAccount, 1, &Problem{
			Title: "Bad Request", Status: 400, Detail: "The account is INACTIVE.", Raw: []byte(`{"title":"Bad Request","status":400,"detail":"The account is INACTIVE."}`),
		}},
		{"400 inactive in title", 400, "application/problem+json", `{"title":"Account inactive","status":400}`, ErrInactiveAccount, 1, &Problem{
			Title: "Account inactive", Status: 400, Raw: []byte(`{"title":"Account inactive","status":400}`),
		}},
		{"400 errors not a map", 400, "application/problem+json", `{"title":"Bad","errors":["x"]}`, ErrRejected, 1, &Problem{
			Title: "Bad", Raw: []byte(`{"title":"Bad","errors":["x"]}`),
		}},
		{"401", 401, "application/problem+json", `{"title":"Unauthorized","status":401}`, ErrUnauthorized, 1, &Problem{
			Title: "Unauthorized", Status: 401, Raw: []byte(`{"title":"Unauthorized","status":401}`),
		}},
		{"401 without body", 401, "text/plain", ``, ErrUnauthorized, 1, nil},
		{"404", 404, "text/html", `<html>not found</html>`, ErrRejected, 1, nil},
		{"302 not followed", 302, "text/plain", ``, ErrRejected, 1, nil},
		{"500 retried until attempts run out", 500, "application/problem+json", `{"title":"An error occurred while processing your request.","status":500}`, ErrUnavailable, 3, &Problem{
			Title: "An error occurred while processing your request.", Status: 500, Raw: []byte(`{"title":"An error occurred while processing your request.","status":500}`),
		}},
		{"502 html", 502, "text/html", `<html>bad gateway</html>`, ErrUnavailable, 3, nil},
		{"429", 429, "text/plain", ``, ErrUnavailable, 3, nil},
		{"202 without eventId", 202, "application/json", `{"status":"Accepted"}`, ErrInvalidResponse, 1, nil},
		{"200 not json", 200, "text/plain", `ok`, ErrInvalidResponse, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if tt.status == http.StatusFound {
					w.Header().Set("Location", "/elsewhere")
				}
				answer(w, tt.status, tt.contentType, tt.body)
			}))
			t.Cleanup(srv.Close)
			c, _ := newTestClient(t, srv.URL, Options{MaxAttempts: 3})

			_, err := c.SendEvent(t.Context(), "manuscript.submitted", []byte(`{}`))
			if !errors.Is(err, tt.want) {
				t.Fatalf("SendEvent = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrUnauthorized, ErrInactiveAccount, ErrRejected, ErrUnavailable, ErrInvalidResponse} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("SendEvent = %v, also matches %v", err, other)
				}
			}
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("SendEvent error %T is not *Error", err)
			}
			if e.StatusCode != tt.status || e.Attempts != tt.wantAttempts || int(requests.Load()) != tt.wantAttempts {
				t.Errorf("Error{StatusCode: %d, Attempts: %d}, requests %d; want %d, %d, %d",
					e.StatusCode, e.Attempts, requests.Load(), tt.status, tt.wantAttempts, tt.wantAttempts)
			}
			if diff := cmp.Diff(tt.wantProblem, e.Problem); diff != "" {
				t.Errorf("Problem (-want +got):\n%s", diff)
			}
			if got, want := e.Retryable, errors.Is(err, ErrUnavailable); got != want {
				t.Errorf("Retryable = %v, want %v", got, want)
			}
		})
	}
}

func TestSendEventRetries(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var reasons []string
		c, rec := newTestClient(t, "http://"+addr, Options{MaxAttempts: 3, OnRetry: func(_ int, r string) { reasons = append(reasons, r) }})
		_, err = c.SendEvent(t.Context(), "t", []byte(`{}`))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("SendEvent = %v, want ErrUnavailable", err)
		}
		if e, _ := errors.AsType[*Error](err); e.StatusCode != 0 || e.Attempts != 3 || !e.Retryable {
			t.Errorf("Error = %+v, want StatusCode 0, Attempts 3, Retryable", e)
		}
		if diff := cmp.Diff([]string{"network", "network"}, reasons); diff != "" {
			t.Errorf("OnRetry reasons (-want +got):\n%s", diff)
		}
		if n := len(rec.got()); n != 2 {
			t.Errorf("slept %d times, want 2", n)
		}
	})

	t.Run("503 then 202", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= 2 {
				answer(w, 503, "text/plain", "down")
				return
			}
			answer(w, 202, "application/json", acceptedBody("id-1"))
		}))
		t.Cleanup(srv.Close)
		var reasons []string
		c, _ := newTestClient(t, srv.URL, Options{OnRetry: func(a int, r string) { reasons = append(reasons, fmt.Sprint(a, r)) }})
		res, err := c.SendEvent(t.Context(), "t", []byte(`{}`))
		if err != nil {
			t.Fatalf("SendEvent = %v", err)
		}
		if res.EventID != "id-1" || res.Attempts != 3 {
			t.Errorf("SendEvent = %+v, want id-1 after 3 attempts", res)
		}
		if diff := cmp.Diff([]string{"1status_503", "2status_503"}, reasons); diff != "" {
			t.Errorf("OnRetry (-want +got):\n%s", diff)
		}
	})

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	retryAfter := []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "3", 3 * time.Second},
		{"http date", now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"capped", "3600", 6 * time.Second},
		{"garbage falls back to backoff", "soon", 50 * time.Millisecond},
	}
	for _, tt := range retryAfter {
		t.Run("429 Retry-After "+tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.value)
					answer(w, 429, "text/plain", "slow down")
					return
				}
				answer(w, 202, "application/json", acceptedBody("id-2"))
			}))
			t.Cleanup(srv.Close)
			var reason string
			c, rec := newTestClient(t, srv.URL, Options{
				Now: func() time.Time { return now }, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
				OnRetry: func(_ int, r string) { reason = r },
			})
			if _, err := c.SendEvent(t.Context(), "t", []byte(`{}`)); err != nil {
				t.Fatalf("SendEvent = %v", err)
			}
			if diff := cmp.Diff([]time.Duration{tt.want}, rec.got()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if reason != "status_429" {
				t.Errorf("OnRetry reason = %q, want status_429", reason)
			}
		})
	}

	t.Run("slow response exceeds the attempt timeout", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				io.Copy(io.Discard, r.Body) // The server notices a closed connection only after the body.
				<-r.Context().Done()        // Hold the answer until the client gives up.
				return
			}
			answer(w, 202, "application/json", acceptedBody("id-3"))
		}))
		t.Cleanup(srv.Close)
		var reasons []string
		c, _ := newTestClient(t, srv.URL, Options{
			HTTPClient: &http.Client{Timeout: 50 * time.Millisecond},
			OnRetry:    func(_ int, r string) { reasons = append(reasons, r) },
		})
		res, err := c.SendEvent(t.Context(), "t", []byte(`{}`))
		if err != nil {
			t.Fatalf("SendEvent = %v", err)
		}
		if res.EventID != "id-3" || res.Attempts != 2 {
			t.Errorf("SendEvent = %+v, want id-3 after 2 attempts", res)
		}
		if diff := cmp.Diff([]string{"timeout"}, reasons); diff != "" {
			t.Errorf("OnRetry (-want +got):\n%s", diff)
		}
	})
}

func TestSendEventDeadline(t *testing.T) {
	unavailable := func(retryAfter string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			answer(w, 503, "text/plain", "down")
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	t.Run("Retry-After beyond the deadline", func(t *testing.T) {
		c, rec := newTestClient(t, unavailable("120").URL, Options{MaxBackoff: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := c.SendEvent(ctx, "t", []byte(`{}`))
		if e, _ := errors.AsType[*Error](err); !errors.Is(err, ErrUnavailable) || e.Attempts != 1 || e.StatusCode != 503 {
			t.Fatalf("SendEvent = %v, want ErrUnavailable after 1 attempt with 503", err)
		}
		if got := rec.got(); len(got) != 0 {
			t.Errorf("slept %v, want no sleep", got)
		}
	})
	t.Run("backoff beyond the deadline", func(t *testing.T) {
		// A fake clock that the injected Sleep advances, as a real sleep would.
		var mu sync.Mutex
		clock := time.Now()
		var sleeps []time.Duration
		c, _ := newTestClient(t, unavailable("").URL, Options{
			InitialBackoff: time.Second, MaxBackoff: time.Hour, MaxAttempts: 100, Rand: func() float64 { return 0.999 },
			Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
			Sleep: func(_ context.Context, d time.Duration) error {
				mu.Lock()
				defer mu.Unlock()
				sleeps = append(sleeps, d)
				clock = clock.Add(d)
				return nil
			},
		})
		ctx, cancel := context.WithDeadline(t.Context(), clock.Add(10*time.Second))
		defer cancel()
		_, err := c.SendEvent(ctx, "t", []byte(`{}`))
		if e, _ := errors.AsType[*Error](err); !errors.Is(err, ErrUnavailable) || e.Attempts != 4 {
			t.Fatalf("SendEvent = %v, want ErrUnavailable after 4 attempts", err)
		}
		want := []time.Duration{999 * time.Millisecond, 1998 * time.Millisecond, 3996 * time.Millisecond}
		if diff := cmp.Diff(want, sleeps); diff != "" {
			t.Errorf("sleeps within a 10s deadline (-want +got):\n%s", diff)
		}
	})
	t.Run("context cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		c, _ := newTestClient(t, unavailable("").URL, Options{Sleep: func(context.Context, time.Duration) error {
			cancel()
			return context.Canceled
		}})
		_, err := c.SendEvent(ctx, "t", []byte(`{}`))
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("SendEvent = %v, want ErrUnavailable and context.Canceled", err)
		}
	})
	t.Run("context ends during an attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			cancel()
			<-r.Context().Done()
		}))
		t.Cleanup(srv.Close)
		c, rec := newTestClient(t, srv.URL, Options{})
		_, err := c.SendEvent(ctx, "t", []byte(`{}`))
		if e, _ := errors.AsType[*Error](err); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) || e.Attempts != 1 {
			t.Fatalf("SendEvent = %v, want ErrUnavailable and context.Canceled after 1 attempt", err)
		}
		if got := rec.got(); len(got) != 0 {
			t.Errorf("slept %v, want no sleep", got)
		}
	})
}

func TestBackoffJitter(t *testing.T) {
	tests := []struct {
		rand float64
		want []time.Duration
	}{
		{0, []time.Duration{0, 0, 0, 0, 0}},
		{0.5, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond}},
		{0.999, []time.Duration{99900 * time.Microsecond, 199800 * time.Microsecond, 399600 * time.Microsecond, 799200 * time.Microsecond, 999 * time.Millisecond}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, 500, "text/plain", "boom")
	}))
	t.Cleanup(srv.Close)
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rand), func(t *testing.T) {
			c, rec := newTestClient(t, srv.URL, Options{
				MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
				Rand: func() float64 { return tt.rand },
			})
			c.SendEvent(t.Context(), "t", []byte(`{}`))
			if diff := cmp.Diff(tt.want, rec.got()); diff != "" {
				t.Errorf("sleeps with Rand %v (-want +got):\n%s", tt.rand, diff)
			}
		})
	}
}

// TestAPIKeyNeverLeaks drives every error path with a server that echoes the key back in
// every way it can and searches everything the client hands out for it.
func TestAPIKeyNeverLeaks(t *testing.T) {
	escaped := strings.ReplaceAll(fmt.Sprintf("%q", testKey), "s", `\u0073`)
	bodies := map[int]string{
		400: fmt.Sprintf(`{"title":"bad key %[1]s","status":400,"detail":"got %[1]s, inactive","errors":{"%[1]s":["%[1]s"]},"extra":[%[2]s]}`, testKey, escaped),
		401: fmt.Sprintf(`{"title":"invalid key %s","status":401,"detail":%s}`, testKey, escaped),
		404: testKey,
		422: fmt.Sprintf(`{"detail":"%s"}`, testKey),
		429: fmt.Sprintf(`{"detail":"%s"}`, testKey),
		500: fmt.Sprintf(`{"title":"%s","status":500}`, testKey),
		503: testKey,
		202: fmt.Sprintf(`{"status":"%s"}`, testKey),
	}
	var reasons []string
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("SendEvent succeeded, want an error")
		}
		var texts []string
		for e := err; e != nil; {
			texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
			if ce, ok := e.(*Error); ok && ce.Problem != nil {
				texts = append(texts, string(ce.Problem.Raw), fmt.Sprintf("%+v", *ce.Problem))
			}
			switch u := e.(type) {
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					texts = append(texts, x.Error(), fmt.Sprintf("%#v", x))
				}
				e = nil
			case interface{ Unwrap() error }:
				e = u.Unwrap()
			default:
				e = nil
			}
		}
		texts = append(texts, reasons...)
		for _, s := range texts {
			if strings.Contains(s, testKey) {
				t.Errorf("the API key leaked into %q", s)
			}
		}
	}
	for status, body := range bodies {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", testKey)
				answer(w, status, "application/problem+json", body)
			}))
			t.Cleanup(srv.Close)
			c, _ := newTestClient(t, srv.URL, Options{MaxAttempts: 2, OnRetry: func(_ int, r string) { reasons = append(reasons, r) }})
			_, err := c.SendEvent(t.Context(), "t", []byte(`{}`))
			check(t, err)
		})
	}
	t.Run("network", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, _ := newTestClient(t, "http://"+addr, Options{MaxAttempts: 2})
		_, err = c.SendEvent(t.Context(), "t", []byte(`{}`))
		check(t, err)
	})
	t.Run("timeout and deadline", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}))
		t.Cleanup(srv.Close)
		c, _ := newTestClient(t, srv.URL, Options{MaxAttempts: 2, HTTPClient: &http.Client{Timeout: 20 * time.Millisecond}})
		_, err := c.SendEvent(t.Context(), "t", []byte(`{}`))
		check(t, err)
	})
	t.Run("key in the event type", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			answer(w, 400, "application/problem+json", `{"title":"no"}`)
		}))
		t.Cleanup(srv.Close)
		c, _ := newTestClient(t, srv.URL, Options{})
		// Only the app's own text; listed to show the key is not what is being printed.
		_, err := c.SendEvent(t.Context(), "manuscript.submitted", []byte(`{"k":"`+testKey+`"}`))
		check(t, err)
	})
}

func TestNewClient(t *testing.T) {
	key := func() string { return testKey }
	tests := []struct {
		url    string
		key    func() string
		opts   Options
		wantOK bool
	}{
		{"https://api.chronoshub.io", key, Options{}, true},
		{"http://127.0.0.1:8080/base/", key, Options{}, true},
		{"ftp://x", key, Options{}, false},
		{"/relative", key, Options{}, false},
		{"https://user:" + testKey + "@host", key, Options{}, false},
		{"https://host?q=1", key, Options{}, false},
		{"https://host", nil, Options{}, false},
		{"https://host", key, Options{MaxAttempts: -1}, false},
		{"https://host", key, Options{InitialBackoff: -1}, false},
	}
	for _, tt := range tests {
		_, err := NewClient(tt.url, tt.key, tt.opts)
		if (err == nil) != tt.wantOK {
			t.Errorf("NewClient(%q, %+v) = %v, want ok %v", tt.url, tt.opts, err, tt.wantOK)
		}
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Errorf("NewClient(%q) error leaks the key: %v", tt.url, err)
		}
	}
}

func TestNewError(t *testing.T) {
	p := &Problem{Title: "Bad Request", Detail: "Account is inactive", Status: 400}
	tests := []struct {
		status  int
		problem *Problem
		want    error
	}{
		{0, nil, ErrUnavailable},
		{503, nil, ErrUnavailable},
		{401, nil, ErrUnauthorized},
		{400, p, ErrInactiveAccount},
		{400, nil, ErrRejected},
		{409, nil, ErrRejected},
	}
	for _, tt := range tests {
		if err := NewError("t", tt.status, tt.problem, 1); !errors.Is(err, tt.want) {
			t.Errorf("NewError(%d, %+v) = %v, want %v", tt.status, tt.problem, err, tt.want)
		}
	}
}
