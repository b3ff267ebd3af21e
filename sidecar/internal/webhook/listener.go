package webhook

import (
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults for the zero values of [ServerOptions]. ChronosHub's payloads are
// small; a request that takes longer than these is hostile or broken.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 32 << 10
	DefaultMaxConns          = 1024
)

// ServerOptions are the optional settings of [Server.HTTPServer] and
// [NewHTTPServer]: the listener's limits against slow, idle or numerous
// clients.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers (and, over TLS,
	// the handshake); 0 or less means [DefaultReadHeaderTimeout].
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; 0 or less
	// means [DefaultReadTimeout].
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the response; 0 or less means [DefaultWriteTimeout]. It
	// must exceed [Options.AppendTimeout] for a slow append to be answered.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request; 0 or less means [DefaultIdleTimeout]. At MaxConns, idle
	// connections are closed sooner, oldest first, to make room.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits the request headers; 0 or less means
	// [DefaultMaxHeaderBytes].
	MaxHeaderBytes int
	// MaxConns caps the open connections; 0 means [DefaultMaxConns] and a
	// negative value means no cap. At the cap, a new connection closes the
	// longest-idle keep-alive connection, or waits for one to close if none
	// is idle.
	MaxConns int
	// TLSConfig is the server's TLS configuration, for http.Server.ServeTLS;
	// nil means plain HTTP (the caller then calls Serve).
	TLSConfig *tls.Config
	// ErrorLog receives net/http's own errors (bad TLS handshakes, malformed
	// requests); nil means the handler's Logger at Warn in
	// [Server.HTTPServer], net/http's default in [NewHTTPServer].
	ErrorLog *log.Logger
}

// HTTPServer returns the webhook listener's http.Server, serving s, and lis
// wrapped to enforce opts.MaxConns, as [NewHTTPServer] does; a nil
// opts.ErrorLog means s's Logger at Warn.
func (s *Server) HTTPServer(lis net.Listener, opts ServerOptions) (*http.Server, net.Listener) {
	if opts.ErrorLog == nil {
		opts.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	}
	return NewHTTPServer(s, lis, opts)
}

// NewHTTPServer returns an http.Server with the webhook listener's
// settings, serving h, and lis wrapped to enforce opts.MaxConns; serve the
// returned listener with the returned server (ServeTLS when opts.TLSConfig
// is set, else Serve). Use [Server.HTTPServer] for the webhook itself; this
// is for a stand-in that must pay the same costs, such as a benchmark's
// baseline. It sets the server's ConnState hook, which the wrapped listener
// needs to find idle connections: do not replace it. The caller owns both
// and shuts the server down as usual.
func NewHTTPServer(h http.Handler, lis net.Listener, opts ServerOptions) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: positive(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       positive(opts.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      positive(opts.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       positive(opts.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    positive(opts.MaxHeaderBytes, DefaultMaxHeaderBytes),
		TLSConfig:         opts.TLSConfig,
		ErrorLog:          opts.ErrorLog,
	}
	maxConns := opts.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	if maxConns < 0 {
		return srv, lis
	}
	l := &limitListener{Listener: lis, max: maxConns, conns: make(map[*limitConn]struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
	srv.ConnState = l.connState
	return srv, l
}

func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// limitListener admits at most max open connections. Unlike
// netutil.LimitListener it accepts first and then makes room: keep-alive
// connections that are idle cannot keep a new client out, so a few hundred
// idle connections cannot lock ChronosHub out of the sidecar.
type limitListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[*limitConn]struct{} // open connections

	wake      chan struct{} // signalled when a connection closes or goes idle
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// limitConn is one admitted connection; closing it frees its place.
type limitConn struct {
	net.Conn
	l         *limitListener
	idleSince time.Time // guarded by l.mu; zero unless idle
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l}
	if !l.admit(lc) {
		c.Close()
		return nil, net.ErrClosed
	}
	return lc, nil
}

// admit adds lc to the open connections once there is room, closing the
// longest-idle connection when there is none. It reports false if the
// listener was closed first.
func (l *limitListener) admit(lc *limitConn) bool {
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.conns[lc] = struct{}{}
			l.mu.Unlock()
			return true
		}
		var victim *limitConn
		for c := range l.conns {
			if !c.idleSince.IsZero() && (victim == nil || c.idleSince.Before(victim.idleSince)) {
				victim = c
			}
		}
		l.mu.Unlock()
		if victim != nil {
			// The server sees its read fail and forgets the connection. A
			// request arriving on it at this instant is lost, as with
			// IdleTimeout; the client retries.
			victim.Close()
			continue
		}
		select {
		case <-l.wake:
		case <-l.done:
			return false
		}
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// connState is the http.Server's ConnState hook: it tracks which
// connections are idle.
func (l *limitListener) connState(c net.Conn, state http.ConnState) {
	// Over TLS the server sees the *tls.Conn around our connection.
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.conns[lc]; !open {
		return
	}
	if state == http.StateIdle {
		lc.idleSince = time.Now()
		l.signal()
	} else {
		lc.idleSince = time.Time{}
	}
}

// signal wakes a waiting admit, if any; it never blocks.
func (l *limitListener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.signal()
		c.l.mu.Unlock()
	})
	return err
}
