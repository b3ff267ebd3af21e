package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// These tests run the handler behind the listener's real http.Server, as
// built by HTTPServer, on loopback TCP.

// testDeadline bounds every wait and every connection of these tests.
const testDeadline = 20 * time.Second

// listen serves h through HTTPServer on a loopback listener, over TLS when
// useTLS, until the test ends. wrap, if not nil, wraps the loopback
// listener first. It returns the address and, with TLS, the client's
// configuration.
func listen(t *testing.T, h *webhook.Server, opts webhook.ServerOptions, useTLS bool, wrap func(net.Listener) net.Listener) (string, *tls.Config) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		lis = wrap(lis)
	}
	var client *tls.Config
	if useTLS {
		certFile, keyFile, err := devcert.Generate([]string{"127.0.0.1"}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatal("no certificate in " + certFile)
		}
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: "127.0.0.1"}
	}
	srv, l := h.HTTPServer(lis, opts)
	done := make(chan error, 1)
	go func() {
		if useTLS {
			done <- srv.ServeTLS(l, "", "")
		} else {
			done <- srv.Serve(l)
		}
	}()
	t.Cleanup(func() { shutdown(t, srv, done) })
	return lis.Addr().String(), client
}

// shutdown stops srv and waits for its connections to finish (Close does
// not wait, and a refused connection lingers for net/http's 500 ms reset
// avoidance), so that goleak finds none. done receives Serve's result.
func shutdown(t *testing.T, srv *http.Server, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
		srv.Close()
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want %v", err, http.ErrServerClosed)
	}
}

// dial opens a connection to addr, over TLS when client is not nil, closed
// when the test ends.
func dial(t *testing.T, addr string, client *tls.Config) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: testDeadline}
	var c net.Conn
	var err error
	if client != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: client}).Dial("tcp", addr)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testDeadline))
	t.Cleanup(func() { c.Close() })
	return c
}

// rawRequest returns p's request as a client writes it: the head, with
// the framing header lines given (e.g. "Content-Length: 12"; none means
// Content-Length of the body), and the body.
func rawRequest(p post, framing ...string) (head string, body []byte) {
	r := p.request()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(err) // a bytes.Reader
	}
	if framing == nil {
		framing = []string{"Content-Length: " + strconv.Itoa(len(body))}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: sidecar.test\r\n", r.URL.Path)
	r.Header.Write(&b)
	for _, line := range framing {
		b.WriteString(line + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String(), body
}

// chunk encodes b as one chunk of a chunked body.
func chunk(b []byte) string {
	return fmt.Sprintf("%x\r\n%s\r\n", len(b), b)
}

// write writes s to c or fails the test.
func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readResponse reads one response from br and its whole body.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp, string(b)
}

// expectClosed checks that the server closed the connection behind br:
// no further response, but EOF (or a reset after unread input).
func expectClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	b, err := br.ReadByte()
	if err == nil {
		rest, _ := br.Peek(br.Buffered())
		t.Fatalf("connection still open, read %q", append([]byte{b}, rest...))
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", testDeadline)
	}
}

// waitFor polls cond until it holds, or fails the test after testDeadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// junkSignature is a well-formed signature that never matches.
func junkSignature([]byte, string, string, string) string {
	return "sha256=" + strings.Repeat("0", 64)
}

// signedID is a valid signed webhook with the given event id.
func signedID(id string) post {
	return post{header: setHeader(signature.HeaderEventID, id)}
}

// TestBodyBudget holds partial bodies open and checks, from the handler's
// state, that they reserve no more than the budget and that requests beyond
// it are answered 503 without their body being read.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	const size, held = 10000, 4
	f := newFixture(t, webhook.Options{MaxBodyBytes: size, MaxInFlightBodyBytes: held*(size+1) + 5000}, nil)
	addr, _ := listen(t, f.srv, webhook.ServerOptions{}, false, nil)
	head, body := rawRequest(post{body: bytes.Repeat([]byte("x"), size), sign: junkSignature})

	// Requests that fit reserve their Content-Length (+1) up front.
	var conns []net.Conn
	for i := range held {
		c := dial(t, addr, nil)
		write(t, c, head+string(body[:size-1]))
		want := int64(i+1) * (size + 1)
		waitFor(t, fmt.Sprintf("%d bytes in flight", want), func() bool { return f.srv.BodyBytesInFlight() == want })
		conns = append(conns, c)
	}

	// One that does not fit is answered without its body being sent.
	c := dial(t, addr, nil)
	write(t, c, head)
	br := bufio.NewReader(c)
	resp, _ := readResponse(t, br)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" || !resp.Close {
		t.Errorf("POST beyond the budget = %d, Retry-After %q, close %t; want 503, 5, true", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
	expectClosed(t, br)

	// A chunked body reserves as it grows: its first 4 KiB fit in the
	// 5000 bytes left, the next 4 KiB do not.
	chunkedHead, _ := rawRequest(post{body: bytes.Repeat([]byte("x"), size), sign: junkSignature}, "Transfer-Encoding: chunked")
	c = dial(t, addr, nil)
	write(t, c, chunkedHead+chunk(bytes.Repeat([]byte("x"), 6000)))
	br = bufio.NewReader(c)
	if resp, _ := readResponse(t, br); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("chunked POST beyond the budget = %d, Retry-After %q; want 503, 5", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	expectClosed(t, br)
	waitFor(t, "the chunked request's bytes released", func() bool { return f.srv.BodyBytesInFlight() == held*(size+1) })

	// The held requests finish normally and give their bytes back.
	for _, c := range conns {
		write(t, c, string(body[size-1:]))
		if resp, _ := readResponse(t, bufio.NewReader(c)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("completed POST = %d, want %d", resp.StatusCode, http.StatusUnauthorized)
		}
	}
	waitFor(t, "no bytes in flight", func() bool { return f.srv.BodyBytesInFlight() == 0 })
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	counts := map[string]int{}
	for _, o := range f.obs.got {
		counts[o.reason]++
	}
	if diff := cmp.Diff(map[string]int{"busy": 2, "bad_signature": held}, counts); diff != "" {
		t.Errorf("observed reasons (-want +got):\n%s", diff)
	}
}

// countingListener counts the bytes the server reads on each connection,
// by the client's address.
type countingListener struct {
	net.Listener
	mu   sync.Mutex
	read map[string]*atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := new(atomic.Int64)
	l.mu.Lock()
	l.read[c.RemoteAddr().String()] = n
	l.mu.Unlock()
	return countingConn{c, n}, nil
}

func (l *countingListener) bytesRead(client net.Conn) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.read[client.LocalAddr().String()]; n != nil {
		return n.Load()
	}
	return 0
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

var partialBodies = flag.Int("partial-bodies", 100, "connections of TestBodyBudgetBoundsHeap")

// TestBodyBudgetBoundsHeap opens many connections that each send all but
// the last byte of a 1 MiB body with a junk signature, and checks that the
// heap grows by a bounded amount once the server has read all it will.
// Not parallel: it measures the process's heap.
func TestBodyBudgetBoundsHeap(t *testing.T) {
	conns := *partialBodies
	const (
		size   = 1 << 20
		budget = 8 << 20
		// bound leaves room for the connections' own buffers and
		// goroutines (about 40 KiB each, both ends, for up to a few hundred
		// connections) next to the budget; the bodies alone, unbounded, are
		// 1 MiB per connection.
		bound = 40 << 20
	)
	f := newFixture(t, webhook.Options{MaxInFlightBodyBytes: budget}, nil)
	counter := &countingListener{read: make(map[string]*atomic.Int64)}
	addr, _ := listen(t, f.srv, webhook.ServerOptions{}, false, func(l net.Listener) net.Listener {
		counter.Listener = l
		return counter
	})
	head, body := rawRequest(post{body: bytes.Repeat([]byte("x"), size), sign: junkSignature})
	partial := append([]byte(head), body[:size-1]...)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	clients := make([]net.Conn, conns)
	answered := make([]atomic.Bool, conns)
	var wg sync.WaitGroup
	for i := range clients {
		c := dial(t, addr, nil)
		clients[i] = c
		wg.Go(func() { c.Write(partial) }) // fails once refused and closed
		wg.Go(func() {
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				answered[i].Store(true)
			}
		})
	}
	// Each request is either answered (503, unread) or has had everything
	// it sent read by the server, buffered in the handler.
	waitFor(t, "every partial body read or refused", func() bool {
		for i, c := range clients {
			if !answered[i].Load() && counter.bytesRead(c) < int64(len(partial)) {
				return false
			}
		}
		return true
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d partial 1 MiB bodies: heap in use grew by %.1f MiB (%.1f -> %.1f MiB); %d MiB reserved", conns, mib(growth), mib(int64(before.HeapInuse)), mib(int64(after.HeapInuse)), f.srv.BodyBytesInFlight()>>20)
	if growth > bound {
		t.Errorf("heap in use grew by %.1f MiB with %d partial bodies, want at most %.1f MiB", mib(growth), conns, mib(bound))
	}
	for _, c := range clients {
		c.Close()
	}
	wg.Wait()
	waitFor(t, "no bytes in flight", func() bool { return f.srv.BodyBytesInFlight() == 0 })
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestIdleConnsDoNotLockOut fills the connection cap with connections that
// stay idle after a refused request and after a stored one; a signed
// webhook must still be answered. Over TLS, where the server sees its
// connections through tls.Conn.
func TestIdleConnsDoNotLockOut(t *testing.T) {
	t.Parallel()
	const maxConns = 16
	f := newFixture(t, webhook.Options{}, nil)
	addr, client := listen(t, f.srv, webhook.ServerOptions{MaxConns: maxConns}, true, nil)

	// Refused requests: answered, and their connections closed.
	for range maxConns {
		c := dial(t, addr, client)
		head, body := rawRequest(post{sign: junkSignature})
		write(t, c, head+string(body))
		br := bufio.NewReader(c)
		resp, _ := readResponse(t, br)
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Fatalf("unsigned POST = %d, close %t; want %d, true", resp.StatusCode, resp.Close, http.StatusUnauthorized)
		}
		expectClosed(t, br)
	}
	// Stored requests: their keep-alive connections stay open and idle.
	for i := range maxConns {
		c := dial(t, addr, client)
		head, body := rawRequest(signedID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)))
		write(t, c, head+string(body))
		if resp, _ := readResponse(t, bufio.NewReader(c)); resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("signed POST %d = %d, close %t; want %d, false", i, resp.StatusCode, resp.Close, http.StatusOK)
		}
	}

	// A new connection closes the longest-idle one to get in.
	tr := &http.Transport{TLSClientConfig: client}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: testDeadline}
	r := signedID("00000000-0000-4000-8000-999999999999").request()
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/webhook", r.Body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("signed POST at the connection cap: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signed POST at the connection cap = %d, want %d", resp.StatusCode, http.StatusOK)
	}
	if got := len(f.store.stored()); got != maxConns+1 {
		t.Errorf("stored %d events, want %d", got, maxConns+1)
	}
}

// TestChunkedWithContentLength sends a request with both Content-Length
// and Transfer-Encoding: chunked, with a second request hidden after its
// chunked body, as a smuggler behind a Content-Length proxy would. The
// connection must close after the first response, the hidden request
// unserved.
func TestChunkedWithContentLength(t *testing.T) {
	t.Parallel()
	f := newFixture(t, webhook.Options{}, nil)
	addr, _ := listen(t, f.srv, webhook.ServerOptions{}, false, nil)
	const hiddenID = "00000000-0000-4000-8000-000000000666"
	hiddenHead, hiddenBody := rawRequest(signedID(hiddenID))
	hidden := hiddenHead + string(hiddenBody)
	head, body := rawRequest(post{}, "Content-Length: "+strconv.Itoa(len(chunk([]byte(validBody)))+5+len(hidden)), "Transfer-Encoding: chunked")

	c := dial(t, addr, nil)
	write(t, c, head+chunk(body)+"0\r\n\r\n"+hidden)
	br := bufio.NewReader(c)
	resp, _ := readResponse(t, br)
	if !resp.Close {
		t.Errorf("POST with Content-Length and Transfer-Encoding = %d without Connection: close", resp.StatusCode)
	}
	expectClosed(t, br)
	for _, e := range f.store.stored() {
		if e.ID == hiddenID {
			t.Errorf("the request hidden in a chunked body was stored: %+v", e)
		}
	}
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	if len(f.obs.got) != 1 {
		t.Errorf("handled %d requests (%v), want 1", len(f.obs.got), f.obs.got)
	}
}

// TestEventIDCase sends a webhook and its retry with the same UUID in the
// other case: one event, with the id as first sent.
func TestEventIDCase(t *testing.T) {
	t.Parallel()
	lower := "d4e5f6a7-b8c9-4123-8567-89abcdef0123"
	for _, ids := range [][2]string{{lower, strings.ToUpper(lower)}, {strings.ToUpper(lower), lower}} {
		t.Run(ids[0][:8], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, webhook.Options{}, nil)
			addr, _ := listen(t, f.srv, webhook.ServerOptions{}, false, nil)
			c := dial(t, addr, nil)
			br := bufio.NewReader(c)
			for i, id := range ids {
				head, body := rawRequest(post{header: func(h http.Header) {
					h.Set(signature.HeaderEventID, id)
					h.Set(signature.HeaderTimestamp, strconv.Itoa(nowUnix-60*i)) // a retry is re-signed
				}})
				write(t, c, head+string(body))
				want := []string{`{"status":"stored"}`, `{"status":"duplicate"}`}[i]
				if resp, got := readResponse(t, br); resp.StatusCode != http.StatusOK || strings.TrimSpace(got) != want {
					t.Errorf("POST %s = %d %s, want 200 %s", id, resp.StatusCode, got, want)
				}
			}
			got := f.store.stored()
			if len(got) != 1 || got[0].ID != ids[0] || got[0].DedupKey != lower {
				t.Errorf("stored %+v, want one event with ID %s and DedupKey %s", got, ids[0], lower)
			}
		})
	}
}

// reqCtxKey carries the request's own context to hangupStore.
type reqCtxKey struct{}

// hangupStore waits, inside Append, for the client to hang up, then
// stores the event unless its context has ended; it records any error it
// returns.
type hangupStore struct {
	memStore
	entered chan struct{}
	done    chan error
}

func (s *hangupStore) Append(ctx context.Context, e webhook.Event) (bool, error) {
	close(s.entered)
	<-ctx.Value(reqCtxKey{}).(context.Context).Done() // the client is gone
	if err := ctx.Err(); err != nil {
		s.done <- err
		return false, err
	}
	dup, err := s.memStore.Append(ctx, e)
	s.done <- err
	return dup, err
}

// TestClientHangupDuringAppend cancels a request while its event is being
// appended: the event is stored, and the store sees no error.
func TestClientHangupDuringAppend(t *testing.T) {
	t.Parallel()
	store := &hangupStore{entered: make(chan struct{}), done: make(chan error, 1)}
	hook := webhook.New(store, func() [][]byte { return [][]byte{[]byte(secret)} }, webhook.Options{Now: now})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, l := hook.HTTPServer(lis, webhook.ServerOptions{})
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqCtxKey{}, r.Context())))
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer shutdown(t, srv, served)

	ctx, cancel := context.WithCancel(context.Background())
	r := post{}.request()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+lis.Addr().String()+"/webhook", r.Body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	sent := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		sent <- err
	}()
	select {
	case <-store.entered:
	case <-time.After(testDeadline):
		t.Fatal("Append not called")
	}
	cancel()
	if err := <-sent; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled POST = %v, want %v", err, context.Canceled)
	}
	select {
	case err := <-store.done:
		if err != nil {
			t.Errorf("Append after the client hung up = %v, want nil", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Append did not finish")
	}
	if got := store.stored(); len(got) != 1 || got[0].ID != eventID {
		t.Errorf("stored %+v, want the event", got)
	}
}

// TestHTTPServerOptions checks the server's settings: defaults for zero
// values, given values otherwise, and no connection cap when negative.
func TestHTTPServerOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, webhook.Options{}, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	type settings struct {
		ReadHeader, Read, Write, Idle time.Duration
		MaxHeader                     int
		Wrapped, ConnState, ErrorLog  bool
	}
	get := func(srv *http.Server, l net.Listener) settings {
		return settings{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes, l != lis, srv.ConnState != nil, srv.ErrorLog != nil}
	}
	tests := []struct {
		name string
		opts webhook.ServerOptions
		want settings
	}{
		{"defaults", webhook.ServerOptions{}, settings{5 * time.Second, 30 * time.Second, 30 * time.Second, 120 * time.Second, 32 << 10, true, true, true}},
		{"set", webhook.ServerOptions{ReadHeaderTimeout: 1, ReadTimeout: 2, WriteTimeout: 3, IdleTimeout: 4, MaxHeaderBytes: 5, MaxConns: 6}, settings{1, 2, 3, 4, 5, true, true, true}},
		{"no cap", webhook.ServerOptions{MaxConns: -1}, settings{5 * time.Second, 30 * time.Second, 30 * time.Second, 120 * time.Second, 32 << 10, false, false, true}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, get(f.srv.HTTPServer(lis, tt.opts))); diff != "" {
			t.Errorf("HTTPServer(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
	srv, l := webhook.NewHTTPServer(http.NotFoundHandler(), lis, webhook.ServerOptions{})
	want := settings{5 * time.Second, 30 * time.Second, 30 * time.Second, 120 * time.Second, 32 << 10, true, true, false}
	if diff := cmp.Diff(want, get(srv, l)); diff != "" {
		t.Errorf("NewHTTPServer(defaults) (-want +got):\n%s", diff)
	}
}

// TestConnCapWaitsForActive fills the connection cap with requests still
// sending their bodies, which are not idle and so not closed to make room:
// a new connection waits, and is served once one of them closes.
func TestConnCapWaitsForActive(t *testing.T) {
	t.Parallel()
	const maxConns = 2
	f := newFixture(t, webhook.Options{}, nil)
	addr, _ := listen(t, f.srv, webhook.ServerOptions{MaxConns: maxConns}, false, nil)
	head, body := rawRequest(post{})
	var active []net.Conn
	for i := range maxConns {
		c := dial(t, addr, nil)
		write(t, c, head+string(body[:len(body)-1]))
		want := int64(i+1) * int64(len(body)+1)
		waitFor(t, fmt.Sprintf("%d bytes in flight", want), func() bool { return f.srv.BodyBytesInFlight() == want })
		active = append(active, c)
	}

	// The kernel completes the connection; the server admits it only once
	// there is room.
	c := dial(t, addr, nil)
	r := signedID("00000000-0000-4000-8000-000000000003")
	h, b := rawRequest(r)
	write(t, c, h+string(b))
	active[0].Close()
	if resp, _ := readResponse(t, bufio.NewReader(c)); resp.StatusCode != http.StatusOK {
		t.Errorf("POST once a place is free = %d, want %d", resp.StatusCode, http.StatusOK)
	}
	// The other request is still served: it was never closed for room.
	write(t, active[1], string(body[len(body)-1:]))
	if resp, _ := readResponse(t, bufio.NewReader(active[1])); resp.StatusCode != http.StatusOK {
		t.Errorf("POST held at the cap = %d, want %d", resp.StatusCode, http.StatusOK)
	}
}
