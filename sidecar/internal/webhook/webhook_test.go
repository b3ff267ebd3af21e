package webhook_test

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
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/logtest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

const (
	secret    = "whsec-current-3f9a1c7d"
	previous  = "whsec-previous-b27e44e0"
	eventID   = "d4e5f6a7-b8c9-0123-4567-89abcdef0123"
	eventType = "manuscript.submitted"
	nowUnix   = 1740000000
	validBody = `{"manuscriptId":"MS-2026-001","title":"Example Manuscript","submittedAt":"2026-02-26T12:00:00Z"}`
	// nonASCII has accented Latin, CJK, an emoji and a mathematical letter
	// outside the BMP, where UTF-16 units and code points differ.
	nonASCII = `{"title":"Über 𝔸lgebra: 量子 résumé 🧪","sep":"a|b:c"}`
)

func now() time.Time { return time.Unix(nowUnix, 0).Add(300 * time.Millisecond) }

// memStore is an in-memory webhook.Store that de-duplicates by DedupKey.
type memStore struct {
	mu     sync.Mutex
	err    error // returned by every Append when set
	calls  []string
	events []webhook.Event
}

func (s *memStore) Append(ctx context.Context, e webhook.Event) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, e.ID)
	if s.err != nil {
		return false, s.err
	}
	for _, old := range s.events {
		if old.DedupKey == e.DedupKey {
			return true, nil
		}
	}
	e.Payload = bytes.Clone(e.Payload)
	s.events = append(s.events, e)
	return false, nil
}

func (s *memStore) stored() []webhook.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]webhook.Event(nil), s.events...)
}

type observation struct{ outcome, reason string }

type recordingObserver struct {
	mu  sync.Mutex
	got []observation
}

func (o *recordingObserver) Webhook(outcome, reason string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, observation{outcome, reason})
}

// fixture is a handler with its fake store, observer and captured logs.
type fixture struct {
	srv     *webhook.Server
	store   *memStore
	obs     *recordingObserver
	logs    *logtest.Buffer
	secrets atomic.Pointer[[][]byte]
}

func newFixture(t testing.TB, opts webhook.Options, logs *logtest.Buffer) *fixture {
	t.Helper()
	if logs == nil {
		logs = new(logtest.Buffer)
	}
	f := &fixture{store: new(memStore), obs: new(recordingObserver), logs: logs}
	f.setSecrets(secret)
	if opts.Now == nil {
		opts.Now = now
	}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Observer = f.obs
	f.srv = webhook.New(f.store, func() [][]byte { return *f.secrets.Load() }, opts)
	return f
}

func (f *fixture) setSecrets(ss ...string) {
	bs := make([][]byte, len(ss))
	for i, s := range ss {
		bs[i] = []byte(s)
	}
	f.secrets.Store(&bs)
}

func (f *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

// post describes one webhook request. Zero fields mean a valid request.
type post struct {
	method string // "" means POST
	path   string // "" means /webhook
	body   []byte // nil means validBody
	// header edits the headers before signing, so a signature covers them.
	header func(h http.Header)
	// sign returns the signature header; nil means signature.Sign with secret.
	sign func(body []byte, eventType, eventID, timestamp string) string
	// after edits the request after signing.
	after func(r *http.Request)
}

func (p post) request() *http.Request {
	method, path, body := p.method, p.path, p.body
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/webhook"
	}
	if body == nil {
		body = []byte(validBody)
	}
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	h := r.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", signature.UserAgent)
	h.Set(signature.HeaderEventType, eventType)
	h.Set(signature.HeaderEventID, eventID)
	h.Set(signature.HeaderTimestamp, strconv.Itoa(nowUnix))
	if p.header != nil {
		p.header(h)
	}
	sign := p.sign
	if sign == nil {
		sign = func(body []byte, typ, id, ts string) string {
			return signature.Sign([]byte(secret), body, typ, id, ts)
		}
	}
	h.Set(signature.HeaderSignature, sign(body, h.Get(signature.HeaderEventType), h.Get(signature.HeaderEventID), h.Get(signature.HeaderTimestamp)))
	if p.after != nil {
		p.after(r)
	}
	return r
}

func setHeader(name string, values ...string) func(http.Header) {
	return func(h http.Header) {
		if values == nil {
			h.Del(name)
			return
		}
		h[name] = values
	}
}

func setAfter(name string, values ...string) func(*http.Request) {
	return func(r *http.Request) { setHeader(name, values...)(r.Header) }
}

// timestamp sets X-Timestamp to nowUnix+offset seconds; now() is 300 ms
// later than nowUnix.
func timestamp(offset int64) func(http.Header) {
	return setHeader(signature.HeaderTimestamp, strconv.FormatInt(nowUnix+offset, 10))
}

func signWith(key string) func([]byte, string, string, string) string {
	return func(body []byte, typ, id, ts string) string {
		return signature.Sign([]byte(key), body, typ, id, ts)
	}
}

// rejectCase is a request the handler must not store.
type rejectCase struct {
	name     string
	post     post
	storeErr error
	drain    bool
	want     int
	reason   string
}

func rejectCases() []rejectCase {
	big := []byte(`{"pad":"` + strings.Repeat("x", webhook.DefaultMaxBodyBytes) + `"}`)
	unchunked := func(r *http.Request) {
		r.ContentLength = -1
		r.Body = io.NopCloser(r.Body)
	}
	upper := func(body []byte, typ, id, ts string) string {
		return "sha256=" + strings.ToUpper(strings.TrimPrefix(signature.Sign([]byte(secret), body, typ, id, ts), "sha256="))
	}
	byteLength := func(body []byte, typ, id, ts string) string {
		// The mistake of using len(body): wrong for non-ASCII bodies.
		mac := hmac.New(sha256.New, []byte(secret))
		fmt.Fprintf(mac, "%d:%s|%s|%s|%s", len(body), body, typ, id, ts)
		return "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	const (
		badReq  = http.StatusBadRequest
		unauth  = http.StatusUnauthorized
		unavail = http.StatusServiceUnavailable
	)
	return []rejectCase{
		{name: "GET", post: post{method: http.MethodGet}, want: http.StatusMethodNotAllowed, reason: "method_not_allowed"},
		{name: "PUT", post: post{method: http.MethodPut}, want: http.StatusMethodNotAllowed, reason: "method_not_allowed"},
		{name: "other path", post: post{path: "/hooks"}, want: http.StatusNotFound, reason: "not_found"},
		{name: "trailing slash", post: post{path: "/webhook/"}, want: http.StatusNotFound, reason: "not_found"},
		{name: "text/plain", post: post{header: setHeader("Content-Type", "text/plain")}, want: http.StatusUnsupportedMediaType, reason: "unsupported_media_type"},
		{name: "no content type", post: post{header: setHeader("Content-Type")}, want: http.StatusUnsupportedMediaType, reason: "unsupported_media_type"},
		{name: "json suffix type", post: post{header: setHeader("Content-Type", "application/merge-patch+json")}, want: http.StatusUnsupportedMediaType, reason: "unsupported_media_type"},
		{name: "two content types", post: post{header: setHeader("Content-Type", "application/json", "application/json")}, want: http.StatusUnsupportedMediaType, reason: "unsupported_media_type"},
		{name: "oversized with Content-Length", post: post{body: big}, want: http.StatusRequestEntityTooLarge, reason: "too_large"},
		{name: "oversized without Content-Length", post: post{body: big, after: unchunked}, want: http.StatusRequestEntityTooLarge, reason: "too_large"},
		{name: "Content-Length over limit", post: post{after: func(r *http.Request) { r.ContentLength = webhook.DefaultMaxBodyBytes + 1 }}, want: http.StatusRequestEntityTooLarge, reason: "too_large"},
		{name: "body read error", post: post{after: func(r *http.Request) {
			r.ContentLength = -1
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"a":`), iotest.ErrReader(errors.New("connection reset by peer"))))
		}}, want: badReq, reason: "read_error"},

		{name: "missing event type", post: post{header: setHeader(signature.HeaderEventType)}, want: badReq, reason: "bad_event_type"},
		{name: "empty event type", post: post{header: setHeader(signature.HeaderEventType, "")}, want: badReq, reason: "bad_event_type"},
		{name: "repeated event type", post: post{header: setHeader(signature.HeaderEventType, eventType, eventType)}, want: badReq, reason: "repeated_header"},
		{name: "bad event type", post: post{header: setHeader(signature.HeaderEventType, "manuscript..submitted")}, want: badReq, reason: "bad_event_type"},
		{name: "event type wildcard", post: post{header: setHeader(signature.HeaderEventType, "manuscript.*")}, want: badReq, reason: "bad_event_type"},
		{name: "long event type", post: post{header: setHeader(signature.HeaderEventType, strings.Repeat("a", 300))}, want: badReq, reason: "bad_event_type"},
		{name: "missing event id", post: post{header: setHeader(signature.HeaderEventID)}, want: badReq, reason: "bad_event_id"},
		{name: "empty event id", post: post{header: setHeader(signature.HeaderEventID, "")}, want: badReq, reason: "bad_event_id"},
		{name: "repeated event id", post: post{header: setHeader(signature.HeaderEventID, eventID, eventID)}, want: badReq, reason: "repeated_header"},
		{name: "non-UUID event id", post: post{header: setHeader(signature.HeaderEventID, "MS-2026-001")}, want: badReq, reason: "bad_event_id"},
		{name: "UUID without hyphens", post: post{header: setHeader(signature.HeaderEventID, strings.ReplaceAll(eventID, "-", ""))}, want: badReq, reason: "bad_event_id"},
		{name: "UUID in braces", post: post{header: setHeader(signature.HeaderEventID, "{"+eventID+"}")}, want: badReq, reason: "bad_event_id"},
		{name: "UUID URN", post: post{header: setHeader(signature.HeaderEventID, "urn:uuid:"+eventID)}, want: badReq, reason: "bad_event_id"},
		{name: "UUID non-hex", post: post{header: setHeader(signature.HeaderEventID, "g4e5f6a7-b8c9-0123-4567-89abcdef0123")}, want: badReq, reason: "bad_event_id"},
		{name: "missing timestamp", post: post{header: setHeader(signature.HeaderTimestamp)}, want: badReq, reason: "bad_timestamp"},
		{name: "empty timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "")}, want: badReq, reason: "bad_timestamp"},
		{name: "repeated timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "1740000000", "1740000000")}, want: badReq, reason: "repeated_header"},
		{name: "negative timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "-1740000000")}, want: badReq, reason: "bad_timestamp"},
		{name: "plus timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "+1740000000")}, want: badReq, reason: "bad_timestamp"},
		{name: "fractional timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "1740000000.5")}, want: badReq, reason: "bad_timestamp"},
		{name: "millisecond timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "1740000000000")}, want: unauth, reason: "stale_timestamp"},
		{name: "RFC 3339 timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "2025-02-19T21:20:00Z")}, want: badReq, reason: "bad_timestamp"},
		{name: "huge timestamp", post: post{header: setHeader(signature.HeaderTimestamp, strings.Repeat("9", 40))}, want: badReq, reason: "bad_timestamp"},

		{name: "missing signature", post: post{after: setAfter(signature.HeaderSignature)}, want: unauth, reason: "missing_signature"},
		{name: "empty signature", post: post{after: setAfter(signature.HeaderSignature, "")}, want: unauth, reason: "missing_signature"},
		{name: "repeated signature", post: post{after: func(r *http.Request) {
			r.Header.Add(signature.HeaderSignature, r.Header.Get(signature.HeaderSignature))
		}}, want: badReq, reason: "repeated_header"},
		{name: "uppercase signature", post: post{sign: upper}, want: unauth, reason: "malformed_signature"},
		{name: "short signature", post: post{after: func(r *http.Request) {
			sig := r.Header.Get(signature.HeaderSignature)
			r.Header.Set(signature.HeaderSignature, sig[:len(sig)-2])
		}}, want: unauth, reason: "malformed_signature"},
		{name: "long signature", post: post{after: func(r *http.Request) {
			r.Header.Set(signature.HeaderSignature, r.Header.Get(signature.HeaderSignature)+"00")
		}}, want: unauth, reason: "malformed_signature"},
		{name: "signature without prefix", post: post{after: func(r *http.Request) {
			r.Header.Set(signature.HeaderSignature, strings.TrimPrefix(r.Header.Get(signature.HeaderSignature), "sha256="))
		}}, want: unauth, reason: "malformed_signature"},
		{name: "sha1 signature", post: post{after: setAfter(signature.HeaderSignature, "sha1=0123456789abcdef0123456789abcdef01234567")}, want: unauth, reason: "malformed_signature"},
		{name: "wrong secret", post: post{sign: signWith("not-the-secret")}, want: unauth, reason: "bad_signature"},
		{name: "previous secret after rotation", post: post{sign: signWith(previous)}, want: unauth, reason: "bad_signature"},
		{name: "tampered body", post: post{after: func(r *http.Request) {
			b := []byte(strings.Replace(validBody, "001", "002", 1))
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}}, want: unauth, reason: "bad_signature"},
		{name: "tampered event id", post: post{after: setAfter(signature.HeaderEventID, "00000000-0000-0000-0000-000000000000")}, want: unauth, reason: "bad_signature"},
		{name: "tampered timestamp", post: post{after: setAfter(signature.HeaderTimestamp, strconv.Itoa(nowUnix+1))}, want: unauth, reason: "bad_signature"},
		{name: "byte-length signature", post: post{body: []byte(nonASCII), sign: byteLength}, want: unauth, reason: "bad_signature"},

		{name: "stale timestamp", post: post{header: timestamp(-300)}, want: unauth, reason: "stale_timestamp"},
		{name: "future timestamp", post: post{header: timestamp(301)}, want: unauth, reason: "stale_timestamp"},
		{name: "zero timestamp", post: post{header: setHeader(signature.HeaderTimestamp, "0")}, want: unauth, reason: "stale_timestamp"},
		{name: "invalid UTF-8", post: post{body: []byte("{\"title\":\"caf\xe9\"}")}, want: badReq, reason: "invalid_utf8"},
		{name: "non-JSON body", post: post{body: []byte(`manuscriptId=MS-2026-001`)}, want: badReq, reason: "invalid_json"},
		{name: "truncated JSON", post: post{body: []byte(`{"manuscriptId":`)}, want: badReq, reason: "invalid_json"},
		{name: "empty body", post: post{body: []byte{}}, want: badReq, reason: "invalid_json"},

		{name: "store failure", storeErr: errors.New("jetstream: no responders"), want: unavail, reason: "store_error"},
		{name: "store full", storeErr: fmt.Errorf("store event: %w", webhook.ErrFull), want: unavail, reason: "store_full"},
		{name: "drained", drain: true, want: unavail, reason: "draining"},
	}
}

func TestHandlerRejects(t *testing.T) {
	for _, tc := range rejectCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, webhook.Options{}, nil)
			f.store.err = tc.storeErr
			if tc.drain {
				f.srv.Drain()
			}
			r := tc.post.request()
			w := f.do(r)
			if w.Code != tc.want {
				t.Fatalf("POST %s = %d, want %d; body %s", tc.name, w.Code, tc.want, w.Body)
			}
			if got := f.store.stored(); len(got) != 0 {
				t.Errorf("POST %s stored %d events, want none", tc.name, len(got))
			}
			checkErrorBody(t, w)
			if got := w.Header().Get("Connection"); got != "close" {
				t.Errorf("POST %s: Connection = %q, want close", tc.name, got)
			}
			switch w.Code {
			case http.StatusMethodNotAllowed:
				if got := w.Header().Get("Allow"); got != http.MethodPost {
					t.Errorf("POST %s: Allow = %q, want %q", tc.name, got, http.MethodPost)
				}
			case http.StatusServiceUnavailable:
				want := "5"
				if tc.reason == "store_full" {
					want = "30"
				}
				if got := w.Header().Get("Retry-After"); got != want {
					t.Errorf("POST %s: Retry-After = %q, want %q", tc.name, got, want)
				}
			}
			wantOutcome, wantLevel := webhook.OutcomeRejected, `"level":"WARN"`
			switch tc.reason {
			case "store_error", "store_full":
				wantOutcome, wantLevel = webhook.OutcomeUnavailable, `"level":"ERROR"`
			case "draining":
				wantOutcome = webhook.OutcomeUnavailable
			}
			if diff := cmp.Diff([]observation{{wantOutcome, tc.reason}}, f.obs.got, cmp.AllowUnexported(observation{})); diff != "" {
				t.Errorf("POST %s: observations (-want +got):\n%s", tc.name, diff)
			}
			logs := f.logs.String()
			if strings.Count(logs, "\n") != 1 || !strings.Contains(logs, wantLevel) {
				t.Errorf("POST %s logged %q, want one line at %s", tc.name, logs, wantLevel)
			}
		})
	}
}

// checkErrorBody checks a failure's body is {"error": "<something>"}.
func checkErrorBody(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body) != 1 || body["error"] == "" {
		t.Errorf(`body = %q, want {"error": "..."}`, w.Body)
	}
}

func TestHandlerStores(t *testing.T) {
	pretty := "{\n  \"manuscriptId\": \"MS-2026-001\",\r\n\t\"title\" : \"Example\"   \n}\n"
	tests := []struct {
		name        string
		body        string
		sign        func(key, body []byte, typ, id, ts string) string
		contentType string
		offset      int64 // X-Timestamp - nowUnix
	}{
		{name: "ASCII", body: validBody, sign: signature.Sign},
		{name: "ASCII code points", body: validBody, sign: signature.SignCodePoints},
		{name: "pretty printed", body: pretty, sign: signature.Sign},
		{name: "non-ASCII UTF-16 length", body: nonASCII, sign: signature.Sign},
		{name: "non-ASCII code point length", body: nonASCII, sign: signature.SignCodePoints},
		{name: "charset parameter", body: validBody, sign: signature.Sign, contentType: "application/json; charset=utf-8"},
		{name: "uppercase media type", body: validBody, sign: signature.Sign, contentType: "Application/JSON"},
		{name: "JSON scalar", body: `"just a string"`, sign: signature.Sign},
		{name: "oldest allowed", body: validBody, sign: signature.Sign, offset: -299}, // 4m59.3s old
		{name: "newest allowed", body: validBody, sign: signature.Sign, offset: 300},  // 4m59.7s ahead
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, webhook.Options{}, nil)
			ts := strconv.FormatInt(nowUnix+tt.offset, 10)
			r := post{
				body: []byte(tt.body),
				header: func(h http.Header) {
					h.Set(signature.HeaderTimestamp, ts)
					if tt.contentType != "" {
						h.Set("Content-Type", tt.contentType)
					}
				},
				sign: func(body []byte, typ, id, ts string) string { return tt.sign([]byte(secret), body, typ, id, ts) },
			}.request()
			w := f.do(r)
			if w.Code != http.StatusOK {
				t.Fatalf("POST %s = %d, want %d; body %s", tt.name, w.Code, http.StatusOK, w.Body)
			}
			if got, want := w.Body.String(), `{"status":"stored"}`+"\n"; got != want {
				t.Errorf("POST %s body = %q, want %q", tt.name, got, want)
			}
			sec, _ := strconv.ParseInt(ts, 10, 64)
			want := []webhook.Event{{
				ID:         eventID,
				DedupKey:   eventID,
				Type:       eventType,
				Payload:    []byte(tt.body),
				SignedAt:   time.Unix(sec, 0).UTC(),
				ReceivedAt: now(),
			}}
			if diff := cmp.Diff(want, f.store.stored()); diff != "" {
				t.Errorf("POST %s stored (-want +got):\n%s", tt.name, diff)
			}
			if diff := cmp.Diff([]observation{{webhook.OutcomeStored, ""}}, f.obs.got, cmp.AllowUnexported(observation{})); diff != "" {
				t.Errorf("POST %s: observations (-want +got):\n%s", tt.name, diff)
			}
			if logs := f.logs.String(); logs != "" {
				t.Errorf("POST %s logged %q, want nothing", tt.name, logs)
			}
		})
	}
}

func TestHandlerRotation(t *testing.T) {
	f := newFixture(t, webhook.Options{}, nil)
	f.setSecrets(secret, previous)
	for i, key := range []string{secret, previous} {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		r := post{header: setHeader(signature.HeaderEventID, id), sign: signWith(key)}.request()
		if w := f.do(r); w.Code != http.StatusOK {
			t.Errorf("POST signed with secret %d of 2 = %d, want %d", i+1, w.Code, http.StatusOK)
		}
	}
	if got := len(f.store.stored()); got != 2 {
		t.Errorf("stored %d events, want 2", got)
	}

	// The rotation ends: the secrets function now returns only the new one.
	f.setSecrets(previous)
	r := post{header: setHeader(signature.HeaderEventID, "00000000-0000-4000-8000-000000000002"), sign: signWith(secret)}.request()
	if w := f.do(r); w.Code != http.StatusUnauthorized {
		t.Errorf("POST signed with a retired secret = %d, want %d", w.Code, http.StatusUnauthorized)
	}
}

func TestHandlerDuplicate(t *testing.T) {
	f := newFixture(t, webhook.Options{}, nil)
	// ChronosHub re-signs each retry with a new timestamp.
	for i, want := range []string{"stored", "duplicate"} {
		r := post{header: timestamp(int64(-60 * i))}.request()
		w := f.do(r)
		if w.Code != http.StatusOK {
			t.Fatalf("POST #%d = %d, want %d", i+1, w.Code, http.StatusOK)
		}
		if got, want := w.Body.String(), `{"status":"`+want+`"}`+"\n"; got != want {
			t.Errorf("POST #%d body = %q, want %q", i+1, got, want)
		}
	}
	if diff := cmp.Diff([]string{eventID, eventID}, f.store.calls); diff != "" {
		t.Errorf("Append calls (-want +got):\n%s", diff)
	}
	if got := len(f.store.stored()); got != 1 {
		t.Errorf("stored %d events, want 1", got)
	}
	want := []observation{{webhook.OutcomeStored, ""}, {webhook.OutcomeDuplicate, ""}}
	if diff := cmp.Diff(want, f.obs.got, cmp.AllowUnexported(observation{})); diff != "" {
		t.Errorf("observations (-want +got):\n%s", diff)
	}
}

func TestHandlerOptions(t *testing.T) {
	f := newFixture(t, webhook.Options{Path: "/hooks/chronoshub", MaxBodyBytes: 64, Tolerance: time.Minute}, nil)
	tests := []struct {
		name string
		post post
		want int
	}{
		{"custom path", post{path: "/hooks/chronoshub", body: []byte(`{}`)}, http.StatusOK},
		{"default path", post{body: []byte(`{}`)}, http.StatusNotFound},
		{"over custom limit", post{path: "/hooks/chronoshub", body: []byte(`"` + strings.Repeat("x", 63) + `"`)}, http.StatusRequestEntityTooLarge},
		{"outside custom tolerance", post{path: "/hooks/chronoshub", body: []byte(`{}`), header: timestamp(-61)}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := f.do(tt.post.request()); w.Code != tt.want {
				t.Errorf("POST %s = %d, want %d", tt.name, w.Code, tt.want)
			}
		})
	}
}

// TestHandlerOverHTTP runs the handler behind a real server, where the
// body limit also has to close the connection.
func TestHandlerOverHTTP(t *testing.T) {
	f := newFixture(t, webhook.Options{MaxBodyBytes: 1024}, nil)
	srv := httptest.NewServer(f.srv)
	t.Cleanup(srv.Close)

	send := func(body []byte, chunked bool) int {
		t.Helper()
		r := post{body: body}.request()
		var rd io.Reader = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhook", rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = r.Header
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	big := []byte(`"` + strings.Repeat("x", 2000) + `"`)
	for _, tt := range []struct {
		name    string
		body    []byte
		chunked bool
		want    int
	}{
		{"signed", []byte(nonASCII), false, http.StatusOK},
		{"oversized", big, false, http.StatusRequestEntityTooLarge},
		{"oversized chunked", big, true, http.StatusRequestEntityTooLarge},
	} {
		if got := send(tt.body, tt.chunked); got != tt.want {
			t.Errorf("POST %s = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := f.store.stored(); len(got) != 1 || string(got[0].Payload) != nonASCII {
		t.Errorf("stored %+v, want one event with payload %q", got, nonASCII)
	}
}

// TestNoSecretsInOutput sends every request of the other tests and checks
// that no log line or response body contains a secret or a signature.
func TestNoSecretsInOutput(t *testing.T) {
	logs := new(logtest.Buffer)
	var bodies bytes.Buffer
	var forbidden []string
	send := func(f *fixture, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			body = nil
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h := r.Header
		typ, id, ts := h.Get(signature.HeaderEventType), h.Get(signature.HeaderEventID), h.Get(signature.HeaderTimestamp)
		for _, key := range []string{secret, previous} {
			for _, sign := range []func(key, body []byte, typ, id, ts string) string{signature.Sign, signature.SignCodePoints} {
				forbidden = append(forbidden, strings.TrimPrefix(sign([]byte(key), body, typ, id, ts), "sha256="))
			}
		}
		if sig := strings.TrimPrefix(h.Get(signature.HeaderSignature), "sha256="); len(sig) >= 16 {
			forbidden = append(forbidden, sig)
		}
		w := f.do(r)
		bodies.Write(w.Body.Bytes())
		for name, values := range w.Header() {
			fmt.Fprintf(&bodies, "%s: %s\n", name, values)
		}
	}

	for _, tc := range rejectCases() {
		f := newFixture(t, webhook.Options{}, logs)
		f.setSecrets(secret, previous)
		f.store.err = tc.storeErr
		if tc.drain {
			f.srv.Drain()
		}
		send(f, tc.post.request())
	}
	f := newFixture(t, webhook.Options{}, logs)
	f.setSecrets(secret, previous)
	for _, body := range []string{validBody, nonASCII} {
		send(f, post{body: []byte(body)}.request())
		send(f, post{body: []byte(body), sign: signWith(previous)}.request())
	}

	out := logs.String() + bodies.String()
	if !strings.Contains(out, "timestamp outside tolerance") || !strings.Contains(out, eventID) {
		t.Fatalf("captured output looks incomplete:\n%s", out)
	}
	forbidden = append(forbidden, secret, previous)
	for _, s := range forbidden {
		if strings.Contains(out, s) {
			t.Errorf("output contains %q", s)
		}
	}
}
