package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MinServerVersion is the oldest NATS server the sidecar works with: the
// outbox expires its records with per-message TTLs, which came in 2.11.
const MinServerVersion = "2.11.0"

// How a stale connection to a server that stopped answering is noticed.
const (
	pingInterval = 2 * time.Second
	maxPingsOut  = 2
)

// ExternalOptions configures ConnectExternal.
type ExternalOptions struct {
	// URL is the cluster's server list, comma-separated. Required. It may
	// hold user information, which no error or log line shows (see Redact);
	// prefer CredsFile.
	URL string
	// CredsFile, when not empty, is a NATS credentials file (JWT and NKey).
	CredsFile string
	// TLSCAFile, when not empty, is a PEM file of the CAs that sign the
	// servers' certificates; empty means the system's roots. Setting it
	// requires TLS from the servers.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile, both set or both empty, are the client
	// certificate and key (PEM) for servers that require mutual TLS.
	TLSCertFile, TLSKeyFile string
	// Domain, when not empty, is the JetStream domain of the cluster. It is
	// applied here only: the JetStream returned addresses that domain.
	Domain string
	// Name is the client name the servers show. Empty means
	// "chronoshub-sidecar".
	Name string
	// Timeout bounds the connection and the JetStream check. Zero means 10s.
	Timeout time.Duration
	// Logger receives disconnections and reconnections. Nil discards them.
	Logger *slog.Logger
}

// ConnectExternal connects to an external NATS JetStream cluster (for several
// replicas sharing one event log) and checks that the server is recent enough
// and that JetStream answers in the domain. It returns the connection, which
// the caller owns and must Close, and the JetStream to use for every stream
// and bucket. The connection reconnects forever. No error holds the URL's user
// information.
func ConnectExternal(ctx context.Context, opts ExternalOptions) (*nats.Conn, jetstream.JetStream, error) {
	if opts.URL == "" {
		return nil, nil, errors.New("natsconn: URL is required")
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, nil, errors.New("natsconn: the TLS client certificate and key go together: set both or neither")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	name := opts.Name
	if name == "" {
		name = "chronoshub-sidecar"
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		// A frozen server (a paused VM, a long stall) keeps the TCP
		// connection open: nats.go's default ping (every 2 minutes, 2
		// unanswered) would hold the sidecar on it for minutes, longer than
		// ChronosHub's retries may last. Pinging every 2 s and giving up
		// after 2 unanswered pings moves to another server within about
		// 4 to 6 s.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "url", Redact(nc.ConnectedUrl()), "err", RedactError(opts.URL, err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", Redact(nc.ConnectedUrl()), "server", nc.ConnectedServerName())
		}),
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	if opts.TLSCAFile != "" {
		nopts = append(nopts, nats.RootCAs(opts.TLSCAFile))
	}
	if opts.TLSCertFile != "" {
		nopts = append(nopts, nats.ClientCert(opts.TLSCertFile, opts.TLSKeyFile))
	}
	nc, err := nats.Connect(opts.URL, nopts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", Redact(opts.URL), RedactError(opts.URL, err))
	}
	js, err := checkExternal(ctx, nc, opts.Domain, timeout)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	log.Info("connected to nats", "url", Redact(nc.ConnectedUrl()), "server", nc.ConnectedServerName(),
		"version", nc.ConnectedServerVersion(), "domain", opts.Domain)
	return nc, js, nil
}

// checkExternal checks the server's version and that JetStream answers, and
// returns the JetStream of domain.
func checkExternal(ctx context.Context, nc *nats.Conn, domain string, timeout time.Duration) (jetstream.JetStream, error) {
	server := Redact(nc.ConnectedUrl())
	if err := checkServerVersion(nc.ConnectedServerVersion()); err != nil {
		return nil, fmt.Errorf("nats server %s: %w", server, err)
	}
	var js jetstream.JetStream
	var err error
	if domain != "" {
		js, err = jetstream.NewWithDomain(nc, domain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		where := "the default domain"
		if domain != "" {
			where = "domain " + strconv.Quote(domain)
		}
		return nil, fmt.Errorf("nats server %s: JetStream in %s does not answer (is JetStream enabled for this account, and the domain right?): %w", server, where, err)
	}
	return js, nil
}

// checkServerVersion refuses a server older than MinServerVersion.
func checkServerVersion(version string) error {
	have, ok := parseVersion(version)
	want, _ := parseVersion(MinServerVersion)
	if !ok {
		return fmt.Errorf("unrecognised server version %q: the sidecar needs NATS server %s or later", version, MinServerVersion)
	}
	for i := range have {
		if have[i] != want[i] {
			if have[i] < want[i] {
				return fmt.Errorf("version %s is too old: the sidecar needs NATS server %s or later (per-message TTLs)", version, MinServerVersion)
			}
			return nil
		}
	}
	return nil
}

// parseVersion parses "2.11.3" and "v2.12.0-beta.1" into major, minor and
// patch.
func parseVersion(v string) ([3]int, bool) {
	var out [3]int
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
