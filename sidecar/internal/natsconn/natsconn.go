// Package natsconn provides the sidecar's connection to NATS JetStream: an
// embedded, in-process server with file storage in a data directory (the
// default), or an external cluster. The connection is the one point where the
// two differ; everything above it works on a *nats.Conn and a
// jetstream.JetStream.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sync says when the embedded store fsyncs its files.
//
// In both settings every event is written to the operating system (write(2))
// before JetStream acknowledges it, so a killed process (SIGKILL, OOM) loses
// nothing; they differ in what survives a power loss or kernel crash.
type Sync struct {
	// Always makes Embedded.Commit fsync what was written before it
	// returns: a write followed by Commit survives power loss. Concurrent
	// callers share one round of fsyncs (group commit). The server itself
	// then fsyncs on groupCommitInterval, which covers what nobody commits
	// (acks, subscription changes).
	Always bool
	// Interval is how often written data is fsynced when Always is false;
	// Commit then returns at once.
	// Zero means 2 minutes (JetStream's default). A power loss can lose up to
	// Interval of acknowledged events.
	Interval time.Duration
}

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	// Dir is the data directory. Required. JetStream keeps its files in
	// Dir/jetstream.
	Dir string
	// Sync says when files are fsynced. The zero value fsyncs every 2 minutes.
	Sync Sync
	// MaxPayload is the largest message the server accepts, in bytes. Zero
	// means 8 MiB.
	MaxPayload int32
	// StartTimeout bounds how long StartEmbedded waits for the server,
	// including recovering the store after a crash. Zero means 60 s.
	StartTimeout time.Duration
}

// Embedded is an in-process NATS server with JetStream and a client
// connection to it. It opens no network listener.
type Embedded struct {
	srv    *server.Server
	conn   *nats.Conn
	js     jetstream.JetStream
	commit *committer // nil unless Sync.Always
}

// groupCommitInterval is the server's own fsync interval with Sync.Always,
// where Commit makes events durable.
const groupCommitInterval = time.Minute

// StartEmbedded starts the embedded server on opts.Dir and connects to it
// in-process. The caller owns the result and must Close it.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.Dir == "" {
		return nil, errors.New("natsconn: data directory is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opts.Dir, err)
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	sopts := &server.Options{
		ServerName:         "chronoshub-sidecar",
		DontListen:         true,
		JetStream:          true,
		StoreDir:           dir,
		MaxPayload:         opts.MaxPayload,
		SyncInterval:       opts.Sync.Interval,
		NoSigs:             true,
		NoLog:              true,
		JetStreamMaxMemory: 64 << 20,
		// No system account chatter is needed in-process.
		NoSystemAccount: true,
	}
	var commit *committer
	if opts.Sync.Always {
		// Not the server's SyncAlways, which fsyncs once per message.
		sopts.SyncInterval = groupCommitInterval
		commit = newCommitter(filepath.Join(dir, "jetstream"))
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(opts.StartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: not ready after %s (store in %s)", opts.StartTimeout, dir)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("chronoshub-sidecar"),
		nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: jetstream: %w", err)
	}
	return &Embedded{srv: srv, conn: nc, js: js, commit: commit}, nil
}

// Commit waits until everything the store acknowledged before the call is
// fsynced, when Sync.Always; otherwise it returns nil at once (the server
// fsyncs on Sync.Interval). Concurrent calls share one round of fsyncs: a
// call waits for the round under way to end and joins the next, so a round
// costs the same for one caller as for a hundred. After an fsync error every
// call returns it: the store must be restarted to know what is on disk. It
// is safe for concurrent use.
func (e *Embedded) Commit(ctx context.Context) error {
	if e.commit == nil {
		return nil
	}
	return e.commit.commit(ctx)
}

// Conn returns the in-process client connection. It stays valid until Close.
func (e *Embedded) Conn() *nats.Conn { return e.conn }

// JetStream returns the JetStream of Conn, as ConnectExternal returns one for
// a cluster, so that everything above the connection is the same for both.
func (e *Embedded) JetStream() jetstream.JetStream { return e.js }

// Close flushes and closes the connection, then shuts the server down and
// waits for it, so that the store's files are closed cleanly.
func (e *Embedded) Close() {
	e.conn.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
