package push_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

// TestMain fails the package's tests if a pusher, stream or server
// goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openLog(t testing.TB, opts eventlog.Options) *eventlog.Log {
	t.Helper()
	emb, err := natsconn.StartEmbedded(natsconn.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(context.Background(), emb.Conn(), opts)
	if err != nil {
		emb.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		emb.Close()
	})
	return l
}

// appended counts the events each test's log holds (every log is a test's
// own, and appendEvents is the only writer), so that settled can wait for
// the acknowledgement floor to pass the last of them.
var appended sync.Map // *eventlog.Log -> *atomic.Uint64

func appendEvents(t *testing.T, l *eventlog.Log, ids ...string) {
	t.Helper()
	n, _ := appended.LoadOrStore(l, new(atomic.Uint64))
	defer n.(*atomic.Uint64).Add(uint64(len(ids)))
	for _, id := range ids {
		e := eventlog.Event{ID: id, Type: "manuscript.submitted", Payload: []byte(`{"id":"` + id + `","title":"𝛼 ✓"}`), SignedAt: time.Unix(1740000000, 0)}
		if dup, err := l.Append(context.Background(), e); err != nil || dup {
			t.Fatalf("Append(%s) = %v, %v", id, dup, err)
		}
	}
}

// request is what the app received.
type request struct {
	id, attempt string
	header      http.Header
	body        []byte
}

// app is an HTTP app whose answer to each request is chosen by answer.
type app struct {
	mu       sync.Mutex
	requests []request
	answer   func(w http.ResponseWriter, r *http.Request, attempt int) // nil answers 200
	srv      *http.Server
	done     chan struct{}
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rq := request{id: r.Header.Get(push.HeaderEventID), attempt: r.Header.Get(push.HeaderAttempt), header: r.Header.Clone(), body: body}
	a.mu.Lock()
	a.requests = append(a.requests, rq)
	answer := a.answer
	a.mu.Unlock()
	n, _ := strconv.Atoi(rq.attempt)
	if answer != nil {
		answer(w, r, n)
	}
}

func (a *app) serve(t *testing.T, lis net.Listener) {
	t.Helper()
	a.srv = &http.Server{Handler: a}
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(lis)
	}()
	t.Cleanup(a.stop)
}

func (a *app) stop() {
	if a.srv != nil {
		a.srv.Close()
		<-a.done
	}
}

func (a *app) got() []request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// byID counts the requests per event id.
func (a *app) byID() map[string][]request {
	out := map[string][]request{}
	for _, r := range a.got() {
		out[r.id] = append(out[r.id], r)
	}
	return out
}

func run(t *testing.T, l *eventlog.Log, target push.Target, opts push.Options) *push.Pusher {
	t.Helper()
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	}
	opts.ProbeMin, opts.ProbeMax = 5*time.Millisecond, 20*time.Millisecond
	p, err := push.New(l, target, opts)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 20s", what)
}

// settled waits until the subscription holds nothing and returns its dead
// letters by event id.
func settled(t *testing.T, l *eventlog.Log, sub string) map[string]eventlog.DeadLetter {
	t.Helper()
	var last uint64
	if n, ok := appended.Load(l); ok {
		last = n.(*atomic.Uint64).Load()
	}
	// Pending and Unacked alone can read 0 before the new subscription
	// counted its backlog; the acknowledgement floor passes an event only
	// once it is acknowledged or dead-lettered.
	waitFor(t, "subscription "+sub+" settled", func() bool {
		s, err := l.GetSubscription(context.Background(), sub)
		return err == nil && s.Pending == 0 && s.Unacked == 0 && s.AckFloor >= last
	})
	dead, _, err := l.ListDeadLetters(context.Background(), sub, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]eventlog.DeadLetter{}
	for _, d := range dead {
		out[d.Event.ID] = d
	}
	return out
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// TestOutcomes drives an app that fails in every way, one way per event,
// and checks that each event ends acknowledged or dead-lettered after
// exactly the attempts the outcome table states.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	const maxAttempts = 3
	l := openLog(t, eventlog.Options{MaxAttempts: maxAttempts, AckWait: 10 * time.Second})
	secret, err := push.ParseSecret("whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	a := &app{}
	a.answer = func(w http.ResponseWriter, r *http.Request, attempt int) {
		switch r.Header.Get(push.HeaderEventID) {
		case "ok":
		case "always-500":
			w.WriteHeader(500)
		case "503-then-ok":
			if attempt == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(503)
			}
		case "429-then-ok":
			if attempt == 1 {
				w.WriteHeader(429) // no Retry-After: backoff
			}
		case "slow-then-ok":
			if attempt == 1 {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			}
		case "always-slow":
			<-r.Context().Done()
		case "reset-then-ok":
			if attempt == 1 {
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		case "400":
			w.WriteHeader(400)
		case "redirect":
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(302)
		case "huge-500":
			w.WriteHeader(500)
			chunk := make([]byte, 1<<20)
			for range 64 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	lis := listen(t)
	a.serve(t, lis)
	ids := []string{"ok", "always-500", "503-then-ok", "429-then-ok", "slow-then-ok", "reset-then-ok", "400", "redirect", "huge-500", "always-slow"}
	appendEvents(t, l, ids...)
	run(t, l, push.Target{
		Subscription: "app", URL: "http://" + lis.Addr().String() + "/hook", Concurrency: 4,
		Timeout: 300 * time.Millisecond, CloudEvents: true, Secret: secret,
	}, push.Options{MaxAttempts: maxAttempts, AckWait: 10 * time.Second})

	dead := settled(t, l, "app")
	want := map[string]struct {
		attempts int
		dead     string // reason; "" means acknowledged
		detail   string
	}{
		"ok":            {1, "", ""},
		"always-500":    {maxAttempts, eventlog.ReasonMaxAttempts, "HTTP 500"},
		"503-then-ok":   {2, "", ""},
		"429-then-ok":   {2, "", ""},
		"slow-then-ok":  {2, "", ""},
		"reset-then-ok": {2, "", ""},
		"400":           {1, eventlog.ReasonRefused, "HTTP 400"},
		"redirect":      {maxAttempts, eventlog.ReasonMaxAttempts, "HTTP 302"},
		"huge-500":      {maxAttempts, eventlog.ReasonMaxAttempts, "HTTP 500"},
		"always-slow":   {maxAttempts, eventlog.ReasonMaxAttempts, "timeout after 300ms"},
	}
	got := a.byID()
	for id, w := range want {
		reqs := got[id]
		if len(reqs) != w.attempts {
			t.Errorf("event %s: app got %d requests, want %d", id, len(reqs), w.attempts)
		}
		for i, r := range reqs {
			if r.attempt != strconv.Itoa(i+1) {
				t.Errorf("event %s request %d: attempt header %q, want %d", id, i+1, r.attempt, i+1)
			}
		}
		d, isDead := dead[id]
		switch {
		case w.dead == "" && isDead:
			t.Errorf("event %s dead-lettered (%s), want acknowledged", id, d.Reason)
		case w.dead != "" && !isDead:
			t.Errorf("event %s not dead-lettered, want %s", id, w.dead)
		case isDead && (d.Reason != w.dead || d.Detail != w.detail || d.Event.Attempt != w.attempts):
			t.Errorf("dead letter %s = reason %s, detail %q, attempts %d; want %s, %q, %d", id, d.Reason, d.Detail, d.Event.Attempt, w.dead, w.detail, w.attempts)
		}
	}
	if len(dead) != 5 {
		t.Errorf("%d dead letters, want 5", len(dead))
	}

	// The request itself: body byte for byte, headers, signature.
	r := got["ok"][0]
	wantBody := `{"id":"ok","title":"𝛼 ✓"}`
	if string(r.body) != wantBody {
		t.Errorf("body = %q, want %q", r.body, wantBody)
	}
	for h, v := range map[string]string{
		"Content-Type":          "application/json",
		push.HeaderEventType:    "manuscript.submitted",
		push.HeaderSignedAt:     "2025-02-19T21:20:00Z",
		push.HeaderSubscription: "app",
		"Ce-Specversion":        "1.0",
		"Ce-Id":                 "ok",
		"Ce-Type":               "manuscript.submitted",
		"Ce-Source":             "chronoshub-sidecar/app",
		"Ce-Time":               "2025-02-19T21:20:00Z",
		"Webhook-Id":            "ok",
		http.CanonicalHeaderKey(push.HeaderReceivedAt): "",
	} {
		if got := r.header.Get(h); v != "" && got != v {
			t.Errorf("header %s = %q, want %q", h, got, v)
		}
	}
	if r.header.Get(push.HeaderReceivedAt) == "" {
		t.Errorf("no %s header", push.HeaderReceivedAt)
	}
	// Verified independently of Sign: HMAC-SHA256 over id.timestamp.body.
	mac := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	fmt.Fprintf(mac, "%s.%s.%s", r.header.Get("Webhook-Id"), r.header.Get("Webhook-Timestamp"), r.body)
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.header.Get("Webhook-Signature") != want {
		t.Errorf("webhook-signature = %q, want %q", r.header.Get("Webhook-Signature"), want)
	}
}

// TestRetry4xx retries a 4xx like a 5xx when the target says so.
func TestRetry4xx(t *testing.T) {
	t.Parallel()
	l := openLog(t, eventlog.Options{MaxAttempts: 2})
	a := &app{answer: func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(409) }}
	lis := listen(t)
	a.serve(t, lis)
	appendEvents(t, l, "e1")
	run(t, l, push.Target{Subscription: "app", URL: "http://" + lis.Addr().String(), Retry4xx: true}, push.Options{MaxAttempts: 2})
	dead := settled(t, l, "app")
	if d := dead["e1"]; d.Reason != eventlog.ReasonMaxAttempts || d.Detail != "HTTP 409" || len(a.got()) != 2 {
		t.Errorf("dead letter = %+v after %d requests, want max_attempts, HTTP 409 after 2", d, len(a.got()))
	}
}

// TestUnreachableCostsNoAttempts starts the pusher before the app (a unix
// socket that does not exist yet), then stops and restarts the app in the
// middle: no event ever counts an attempt for it, and every event arrives.
func TestUnreachableCostsNoAttempts(t *testing.T) {
	t.Parallel()
	// Concurrency 1 posts from the stream's goroutine, more through workers.
	for _, concurrency := range []int{1, 2} {
		t.Run(fmt.Sprintf("concurrency=%d", concurrency), func(t *testing.T) {
			t.Parallel()
			testUnreachableCostsNoAttempts(t, concurrency)
		})
	}
}

func testUnreachableCostsNoAttempts(t *testing.T, concurrency int) {
	l := openLog(t, eventlog.Options{MaxAttempts: 1})
	sock := filepath.Join(t.TempDir(), "app.sock")
	appendEvents(t, l, "a1", "a2", "a3")
	p := run(t, l, push.Target{Subscription: "app", URL: "http://localhost/hook", Socket: sock, Concurrency: concurrency}, push.Options{MaxAttempts: 1})
	waitFor(t, "paused before the app starts", func() bool { return p.State().Paused })

	start := func() *app {
		a := &app{}
		lis, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		a.serve(t, lis)
		return a
	}
	first := start()
	waitFor(t, "first events delivered", func() bool { return len(first.byID()) == 3 })
	first.stop() // the app restarts: its socket is gone
	appendEvents(t, l, "b1", "b2", "b3", "b4")
	waitFor(t, "paused while the app is down", func() bool { return p.State().Paused })
	second := start()
	dead := settled(t, l, "app")
	if len(dead) != 0 {
		t.Errorf("dead letters = %v, want none: an unreachable app costs no attempts", dead)
	}
	all := first.byID()
	for id, r := range second.byID() {
		all[id] = append(all[id], r...)
	}
	for _, id := range []string{"a1", "a2", "a3", "b1", "b2", "b3", "b4"} {
		if len(all[id]) != 1 || all[id][0].attempt != "1" {
			t.Errorf("event %s: requests %+v, want one with attempt 1", id, all[id])
		}
	}
	if st := p.State(); st.Paused || st.InFlight != 0 || st.LastStatus != 200 {
		t.Errorf("State = %+v, want running, none in flight, last status 200", st)
	}
}

// TestStrictOrder posts with concurrency 1: a failing event holds back the
// ones behind it, so the app acknowledges them in arrival order.
func TestStrictOrder(t *testing.T) {
	t.Parallel()
	l := openLog(t, eventlog.Options{MaxAttempts: 5})
	var mu sync.Mutex
	var acked []string
	a := &app{answer: func(w http.ResponseWriter, r *http.Request, attempt int) {
		id := r.Header.Get(push.HeaderEventID)
		if (id == "e2" || id == "e4") && attempt < 3 {
			w.WriteHeader(500)
			return
		}
		mu.Lock()
		acked = append(acked, id)
		mu.Unlock()
	}}
	lis := listen(t)
	a.serve(t, lis)
	ids := []string{"e1", "e2", "e3", "e4", "e5", "e6"}
	appendEvents(t, l, ids...)
	run(t, l, push.Target{Subscription: "app", URL: "http://" + lis.Addr().String(), Concurrency: 1}, push.Options{MaxAttempts: 5})
	settled(t, l, "app")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(acked, ids) {
		t.Errorf("acknowledged in order %v, want %v", acked, ids)
	}
}

// TestReplayHeader: an event replayed with ReplayEvents is posted again
// with Chronoshub-Replay: true; its first delivery has no such header.
func TestReplayHeader(t *testing.T) {
	t.Parallel()
	l := openLog(t, eventlog.Options{MaxAttempts: 5})
	a := &app{answer: func(http.ResponseWriter, *http.Request, int) {}}
	lis := listen(t)
	a.serve(t, lis)
	appendEvents(t, l, "r1")
	run(t, l, push.Target{Subscription: "app", URL: "http://" + lis.Addr().String(), Concurrency: 1}, push.Options{MaxAttempts: 5})
	waitFor(t, "first delivery", func() bool { return len(a.byID()["r1"]) == 1 })
	settled(t, l, "app")
	res, err := l.ReplayEvents(context.Background(), eventlog.ReplayRequest{Subscription: "app", IDs: []string{"r1"}})
	if err != nil || len(res.IDs) != 1 {
		t.Fatalf("ReplayEvents = %+v, %v", res, err)
	}
	waitFor(t, "replayed delivery", func() bool { return len(a.byID()["r1"]) == 2 })
	got := a.byID()["r1"]
	if h := got[0].header.Get(push.HeaderReplay); h != "" {
		t.Errorf("first delivery: %s = %q, want none", push.HeaderReplay, h)
	}
	if h := got[1].header.Get(push.HeaderReplay); h != "true" {
		t.Errorf("replayed delivery: %s = %q, want true", push.HeaderReplay, h)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, socket string
		remote      bool
		ok          bool
	}{
		{"http://127.0.0.1:8080/hook", "", false, true},
		{"http://localhost/hook", "", false, true},
		{"http://[::1]:80/", "", false, true},
		{"https://127.0.0.2/", "", false, true},
		{"http://app.internal/hook", "", false, false},
		{"http://10.0.0.1/hook", "", false, false},
		{"http://10.0.0.1/hook", "", true, true},
		{"http://anything/hook", "/run/app.sock", false, true},
		{"http://anything/hook", "run/app.sock", false, false},
		{"ftp://127.0.0.1/", "", false, false},
		{"127.0.0.1:8080", "", false, false},
		{"http://u:p@127.0.0.1/", "", false, false},
		{"http://127.0.0.1/#x", "", false, false},
	} {
		err := push.CheckURL(tc.url, tc.socket, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, %q, %v) = %v, want ok %v", tc.url, tc.socket, tc.remote, err, tc.ok)
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef01234567"))
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"whsec_" + key, true},
		{" whsec_" + key + "\n", true},
		{key, false},
		{"whsec_!!!", false},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), false},
	} {
		s, err := push.ParseSecret(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSecret(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
		if fmt.Sprint(s) != "REDACTED" {
			t.Errorf("secret prints as %q", fmt.Sprint(s))
		}
	}
}

// TestQuiesceLetsPOSTsFinish: when the log quiesces (a graceful shutdown),
// the POST in flight finishes and its event is acknowledged, and no other
// event is taken.
func TestQuiesceLetsPOSTsFinish(t *testing.T) {
	t.Parallel()
	l := openLog(t, eventlog.Options{})
	inside := make(chan struct{})
	release := make(chan struct{})
	a := &app{answer: func(http.ResponseWriter, *http.Request, int) {
		close(inside)
		<-release
	}}
	lis := listen(t)
	a.serve(t, lis)
	appendEvents(t, l, "e1", "e2")
	run(t, l, push.Target{Subscription: "app", URL: "http://" + lis.Addr().String(), Concurrency: 1}, push.Options{})
	<-inside
	l.Quiesce()
	close(release)
	waitFor(t, "the stream ended", func() bool {
		s, err := l.GetSubscription(context.Background(), "app")
		return err == nil && s.OpenStreams == 0
	})
	s, err := l.GetSubscription(context.Background(), "app")
	if err != nil || s.Unacked != 0 || s.Pending != 1 || l.Holding()["app"] != 0 {
		t.Errorf("after quiescing: %+v, %v, holding %v; want e1 acknowledged, e2 pending", s, err, l.Holding())
	}
	if got := a.byID(); len(got) != 1 || len(got["e1"]) != 1 {
		t.Errorf("app got %v, want e1 once", got)
	}
}
