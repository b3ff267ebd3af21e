package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// DefaultHeartbeatInterval is how long a REST stream may stay silent before
// the gateway writes a heartbeat line, when Options.HeartbeatInterval is
// zero: well under the 60 s read timeouts of common proxies, load balancers
// and HTTP clients (nginx, AWS ALB, PHP's default_socket_timeout).
const DefaultHeartbeatInterval = 15 * time.Second

// heartbeatLine is the line written on an idle stream: a
// StreamEventsResponse without an event, which clients skip. It fits the
// OpenAPI document's schema of a stream line ({"result":...} or
// {"error":...}).
var heartbeatLine = []byte(`{"result":{}}` + "\n")

// streamPath is the REST route of StreamEvents (sidecar_http.yaml).
const streamPath = "/v1/events:stream"

// headerPrefix marks the gRPC response metadata of the service
// (grpcapi.HeaderSubscriptionCreated, ...) that REST passes on as HTTP
// headers of the same names, rather than as "Grpc-Metadata-<name>".
const headerPrefix = "chronoshub-"

// outgoingHeader maps gRPC response metadata to HTTP response headers: the
// service's own keys by their names, the rest as grpc-gateway's default
// does.
func outgoingHeader(key string) (string, bool) {
	if strings.HasPrefix(strings.ToLower(key), headerPrefix) {
		return key, true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// isStream reports whether r opens the REST stream.
func isStream(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Path == streamPath
}

// openStream is the mux's forward-response option: grpc-gateway calls it
// with a nil message before a stream's first event, once its gRPC headers
// have arrived (the service sends them when the stream is attached to its
// subscription) or the call ended without any (a refused stream). In the
// first case it sends the HTTP status and headers at once; in the second,
// the error that follows is answered as a plain call's.
func openStream(ctx context.Context, w http.ResponseWriter, m proto.Message) error {
	sw, ok := w.(*streamWriter)
	if !ok || m != nil {
		return nil
	}
	if md, _ := runtime.ServerMetadataFromContext(ctx); md.HeaderMD != nil {
		sw.open()
	}
	return nil
}

// streamWriter is the http.ResponseWriter of a REST stream. Once open, it has
// sent 200 with Content-Type application/x-ndjson; it ignores grpc-gateway's
// later WriteHeader (an error before the first event is then the last line,
// as after it), and lets heartbeat write between lines. Its methods are safe
// for concurrent use.
type streamWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	opened chan struct{} // closed by open

	mu     sync.Mutex
	isOpen bool
	// refused is set when grpc-gateway writes an error status before the
	// stream opened: its body, the line {"error":status}, is written as the
	// status alone, the shape of every other error response.
	refused bool
	midLine bool      // the last Write did not end a line
	last    time.Time // when something was last written
}

func newStreamWriter(w http.ResponseWriter) *streamWriter {
	return &streamWriter{w: w, rc: http.NewResponseController(w), opened: make(chan struct{})}
}

func (s *streamWriter) Header() http.Header { return s.w.Header() }

func (s *streamWriter) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isOpen {
		s.refused = code >= 400
		s.w.WriteHeader(code)
	}
}

// errorEnvelope is how grpc-gateway's stream error line starts (written by
// jsonMarshaler, which puts no space after the key).
var errorEnvelope = []byte(`{"error":`)

func (s *streamWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused {
		switch {
		case bytes.Equal(b, []byte("\n")):
			return len(b), nil // the line's delimiter
		case bytes.HasPrefix(b, errorEnvelope) && bytes.HasSuffix(b, []byte("}")):
			if _, err := s.w.Write(b[len(errorEnvelope) : len(b)-1]); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	if len(b) > 0 {
		s.midLine = !bytes.HasSuffix(b, []byte("\n"))
		s.last = time.Now()
	}
	return s.w.Write(b)
}

// FlushError flushes what was written (http.ResponseController uses it).
func (s *streamWriter) FlushError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rc.Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (s *streamWriter) Unwrap() http.ResponseWriter { return s.w }

func (s *streamWriter) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isOpen {
		return
	}
	s.isOpen = true
	s.w.Header().Set("Content-Type", contentTypeNDJSON)
	s.w.WriteHeader(http.StatusOK)
	_ = s.rc.Flush() // a client that is gone ends the stream through its context
	s.last = time.Now()
	close(s.opened)
}

// heartbeat writes heartbeatLine whenever nothing was written for interval,
// from when the stream opens until done is closed, so that no silence is
// longer than interval.
func (s *streamWriter) heartbeat(interval time.Duration, done <-chan struct{}) {
	select {
	case <-s.opened:
	case <-done:
		return
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-done:
			return
		}
		s.mu.Lock()
		wait := interval - time.Since(s.last)
		if wait <= 0 {
			wait = interval
			// Never inside a line: its end follows at once and counts.
			if !s.midLine {
				if _, err := s.w.Write(heartbeatLine); err == nil {
					_ = s.rc.Flush()
				}
				s.last = time.Now()
			}
		}
		s.mu.Unlock()
		t.Reset(wait)
	}
}

// serveStream serves the REST stream through the mux, with its status and
// headers sent as soon as the stream is attached and heartbeats while idle.
func (g *gateway) serveStream(w http.ResponseWriter, r *http.Request) {
	sw := newStreamWriter(w)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { sw.heartbeat(g.heartbeat, done) })
	defer wg.Wait()
	defer close(done)
	g.mux.ServeHTTP(sw, r)
}
