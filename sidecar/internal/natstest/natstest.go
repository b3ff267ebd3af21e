// Package natstest runs a real NATS JetStream cluster for tests: n
// nats-server processes on loopback, clustered with routes, each with its own
// store, which a test can kill (SIGKILL) and restart, pause (SIGSTOP) and
// resume, put on a store directory of its choice (a fault file system) and
// route through proxies of its own (fault proxies).
//
// The nats-server binary is built from the module this repository requires
// (github.com/nats-io/nats-server/v2 in go.mod), so the cluster runs the same
// server version as the embedded store. It is built once into the user's
// cache directory, keyed by that version and the Go version, and reused by
// every later test run and test binary.
package natstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const serverModule = "github.com/nats-io/nats-server/v2"

// Options configures Start.
type Options struct {
	// Nodes is the number of servers. Zero means 3.
	Nodes int
	// Domain, when not empty, is the cluster's JetStream domain.
	Domain string
	// User and Password, when set, are required of clients.
	User, Password string
	// TLS makes the client port require TLS and a client certificate
	// (mutual TLS), both signed by a CA made for the cluster; see
	// Cluster.TLS.
	TLS bool
	// Accounts, when not zero, is the number of accounts with JetStream
	// besides the default one, each with its own streams and names, so that
	// tests can share a cluster without sharing names; see ConnectAccount.
	// It cannot be combined with User.
	Accounts int
	// ReadyTimeout bounds the wait for the cluster (and for a restarted
	// node) to be ready. Zero means 60s.
	ReadyTimeout time.Duration
	// SyncAlways makes every server fsync every write before acknowledging
	// it (jetstream.sync_interval: always); false leaves NATS's default.
	SyncAlways bool
	// StoreDir, when set, returns node i's JetStream store directory (a
	// fault file system, say); nil keeps it beside the node's config.
	StoreDir func(i int) string
	// RouteVia, when set, returns the address node from dials to reach
	// node to, whose route listener is routeAddr: a fault proxy in front of
	// it, say. It also stops the servers advertising their addresses to
	// clients and to each other, so that every connection takes the
	// addresses given. nil means direct routes.
	RouteVia func(from, to int, routeAddr string) string
	// MaxPayload is the largest message the servers take, in bytes. Zero
	// means nats-server's default (1 MiB).
	MaxPayload int64
	// MaxFileStore is each server's JetStream file storage, in bytes. Zero
	// means 1 GiB.
	MaxFileStore int64
}

// Cluster is a running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	t     testing.TB // the test of Start; nil from New
	bin   string
	opts  Options
	nodes []*node
	tls   TLSFiles
}

type node struct {
	name                   string
	dir                    string // store and config
	client, route, monitor int
	mu                     sync.Mutex
	cmd                    *exec.Cmd
	done                   chan struct{} // closed when cmd has exited
}

// StartCluster starts an n-node cluster; see Start.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return Start(t, Options{Nodes: n})
}

// Start builds nats-server if needed, starts the cluster and waits until every
// node is healthy and JetStream answers through every node (a meta leader is
// elected). It fails the test if that does not happen in time. The cluster is
// killed at the end of the test.
//
// Ports are picked by binding 127.0.0.1:0 and releasing the port before the
// server binds it: another process could take one in between. The server then
// fails to start, and Start tries again with new ports (three times in all).
// Restart reuses a node's ports, so the same small race applies to it without
// a retry.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := New(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// New is Start for a program that is not a test (the benchmark harness):
// the nodes keep their stores under dir, and the caller must Close the
// cluster. Restart needs a cluster from Start.
func New(dir string, opts Options) (*Cluster, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = time.Minute
	}
	if opts.MaxFileStore == 0 {
		opts.MaxFileStore = 1 << 30
	}
	if opts.Accounts > 0 && opts.User != "" {
		return nil, errors.New("Options.Accounts and Options.User cannot be combined")
	}
	bin, err := serverBinary()
	if err != nil {
		return nil, err
	}
	var errs []error
	for attempt := range 3 {
		c := &Cluster{bin: bin, opts: opts}
		err := c.start(filepath.Join(dir, fmt.Sprintf("attempt-%d", attempt+1)), attempt)
		if err == nil {
			return c, nil
		}
		c.Close()
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("cluster did not start: %w", errors.Join(errs...))
}

func (c *Cluster) start(dir string, attempt int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ports, err := freePorts(3 * c.opts.Nodes)
	if err != nil {
		return err
	}
	if c.opts.TLS {
		if c.tls, err = writeTLSFiles(dir); err != nil {
			return fmt.Errorf("TLS files: %w", err)
		}
	}
	for i := range c.opts.Nodes {
		c.nodes = append(c.nodes, &node{
			name:    fmt.Sprintf("n%d", i),
			dir:     filepath.Join(dir, fmt.Sprintf("n%d", i)),
			client:  ports[3*i],
			route:   ports[3*i+1],
			monitor: ports[3*i+2],
		})
	}
	for _, n := range c.nodes {
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(n.dir, "nats.conf"), c.config(n), 0o600); err != nil {
			return err
		}
		if err := c.launch(n); err != nil {
			return fmt.Errorf("attempt %d: %w", attempt+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadyTimeout)
	defer cancel()
	for i := range c.nodes {
		if err := c.waitReady(ctx, i); err != nil {
			return fmt.Errorf("attempt %d: %w", attempt+1, err)
		}
	}
	if err := c.waitPlacement(ctx); err != nil {
		return fmt.Errorf("attempt %d: %w", attempt+1, err)
	}
	return nil
}

// waitPlacement waits until a stream with a replica on every node can be
// created: every node being healthy is not enough, because the meta leader
// marks a peer online only once it heard from it, and until then refuses
// such a stream ("no suitable peers for placement, peer offline", seen in a
// loaded CI run right after Start).
func (c *Cluster) waitPlacement(ctx context.Context) error {
	var last error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if last = c.placeProbe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no stream with %d replicas could be placed: %v", c.opts.Nodes, last)
		case <-tick.C:
		}
	}
}

func (c *Cluster) placeProbe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.onNode(0, append(c.tlsOptions(), nats.Timeout(2*time.Second), nats.NoReconnect()), func(js jetstream.JetStream) error {
		const name = "NATSTEST_PLACEMENT"
		if _, err := js.CreateStream(pctx, jetstream.StreamConfig{Name: name, Subjects: []string{"natstest.placement"},
			Storage: jetstream.MemoryStorage, Replicas: c.opts.Nodes}); err != nil {
			return err
		}
		return js.DeleteStream(pctx, name)
	})
}

// config is the node's configuration file.
func (c *Cluster) config(n *node) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n", n.name, n.client, n.monitor)
	storeDir := n.dir
	if c.opts.StoreDir != nil {
		storeDir = c.opts.StoreDir(c.index(n))
	}
	if c.opts.MaxPayload > 0 {
		fmt.Fprintf(&b, "max_payload: %d\n", c.opts.MaxPayload)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: %d\n", storeDir, c.opts.MaxFileStore)
	if c.opts.SyncAlways {
		b.WriteString("  sync_interval: always\n")
	}
	if c.opts.Domain != "" {
		fmt.Fprintf(&b, "  domain: %q\n", c.opts.Domain)
	}
	b.WriteString("}\n")
	if c.opts.TLS {
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", c.tls.serverCert, c.tls.serverKey, c.tls.CA)
	}
	if c.opts.Accounts > 0 {
		// The default account (A0) takes clients without credentials.
		b.WriteString("accounts {\n")
		for a := range c.opts.Accounts + 1 {
			fmt.Fprintf(&b, "  A%d: { jetstream: enabled, users: [ { user: %q, password: %q } ] }\n", a, accountUser(a), accountUser(a))
		}
		b.WriteString("}\nno_auth_user: " + accountUser(0) + "\n")
	}
	if c.opts.User != "" {
		fmt.Fprintf(&b, "authorization {\n  user: %q\n  password: %q\n}\n", c.opts.User, c.opts.Password)
	}
	if len(c.nodes) == 1 {
		// One server is a standalone JetStream server: a cluster of one
		// has no route, and JetStream refuses to start clustered without.
		return b.Bytes()
	}
	fmt.Fprintf(&b, "cluster {\n  name: chronoshub-test\n  listen: 127.0.0.1:%d\n", n.route)
	if c.opts.RouteVia != nil {
		b.WriteString("  no_advertise: true\n")
	}
	b.WriteString("  routes: [\n")
	for j, o := range c.nodes {
		if o == n {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", o.route)
		if c.opts.RouteVia != nil {
			addr = c.opts.RouteVia(c.index(n), j, addr)
		}
		fmt.Fprintf(&b, "    nats-route://%s\n", addr)
	}
	b.WriteString("  ]\n}\n")
	return b.Bytes()
}

func (c *Cluster) index(n *node) int {
	for i, o := range c.nodes {
		if o == n {
			return i
		}
	}
	return -1
}

// launch starts n's process, logging to n.dir/server.log.
func (c *Cluster) launch(n *node) error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "-c", filepath.Join(n.dir, "nats.conf"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	return nil
}

// waitReady polls node i until its /healthz (JetStream current with the
// meta leader) answers 200 and a JetStream request through it succeeds.
func (c *Cluster) waitReady(ctx context.Context, i int) error {
	n := c.nodes[i]
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	var last error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if last = c.probe(ctx, i); last == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited: %s", n.name, c.logTail(n))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v; log: %s", n.name, last, c.logTail(n))
		case <-tick.C:
		}
	}
}

func (c *Cluster) probe(ctx context.Context, i int) error {
	n := c.nodes[i]
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.monitor), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	// JetStream through this node, for the default account and for every
	// account of the cluster: a test connecting as an account whose
	// JetStream was not yet enabled here got "no responders" from its
	// first API request.
	for a := 0; a <= c.opts.Accounts; a++ {
		opts := append(c.tlsOptions(), nats.Timeout(2*time.Second), nats.NoReconnect())
		if a > 0 {
			opts = append(opts, nats.UserInfo(accountUser(a), accountUser(a)))
		}
		if err := c.probeAccount(pctx, i, opts); err != nil {
			return fmt.Errorf("account %d: %w", a, err)
		}
	}
	return nil
}

func (c *Cluster) probeAccount(ctx context.Context, i int, opts []nats.Option) error {
	return c.onNode(i, opts, func(js jetstream.JetStream) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// onNode connects to node i with opts and calls f with JetStream through
// that connection.
func (c *Cluster) onNode(i int, opts []nats.Option, f func(jetstream.JetStream) error) error {
	nc, err := nats.Connect(c.URL(i), opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := c.jetStream(nc)
	if err != nil {
		return err
	}
	return f(js)
}

func (c *Cluster) jetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	if c.opts.Domain != "" {
		return jetstream.NewWithDomain(nc, c.opts.Domain)
	}
	return jetstream.New(nc)
}

func (c *Cluster) logTail(n *node) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "server.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// URL returns node i's client URL, with the user and password when the
// cluster has them.
func (c *Cluster) URL(i int) string {
	auth := ""
	if c.opts.User != "" {
		auth = c.opts.User + ":" + c.opts.Password + "@"
	}
	scheme := "nats"
	if c.opts.TLS {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://%s127.0.0.1:%d", scheme, auth, c.nodes[i].client)
}

// TLS returns the CA and a client certificate of a cluster started with
// Options.TLS; the zero value otherwise.
func (c *Cluster) TLS() TLSFiles { return c.tls }

// tlsOptions are the client options for the cluster's TLS, if any.
func (c *Cluster) tlsOptions() []nats.Option {
	if !c.opts.TLS {
		return nil
	}
	return []nats.Option{nats.RootCAs(c.tls.CA), nats.ClientCert(c.tls.Cert, c.tls.Key)}
}

// URLs returns every node's client URL, comma-separated, as
// CHRONOSHUB_NATS_URL takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// Connect returns a connection to every node (reconnecting forever) and its
// JetStream, in the cluster's domain; both are closed at the end of the test.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), append(c.tlsOptions(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := c.jetStream(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

func accountUser(a int) string { return fmt.Sprintf("a%d", a) }

// ConnectAccount is Connect as a user of account a (1 to Options.Accounts;
// 0 is the default account), to node i only when node is not negative.
func (c *Cluster) ConnectAccount(t testing.TB, a, node int) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	if a < 0 || a > c.opts.Accounts {
		t.Fatalf("natstest: account %d of a cluster with %d accounts", a, c.opts.Accounts)
	}
	url := c.URLs()
	if node >= 0 {
		url = c.URL(node)
	}
	opts := append(c.tlsOptions(), nats.UserInfo(accountUser(a), accountUser(a)), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connect as account %d: %v", a, err)
	}
	t.Cleanup(nc.Close)
	js, err := c.jetStream(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// ConnectNode returns a connection to node i only (reconnecting to it
// forever) and its JetStream; both are closed at the end of the test.
func (c *Cluster) ConnectNode(t testing.TB, i int) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL(i), append(c.tlsOptions(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatalf("natstest: connect to node %d: %v", i, err)
	}
	t.Cleanup(nc.Close)
	js, err := c.jetStream(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// Node returns the index of the node whose server name is name (as
// jetstream.ClusterInfo.Leader reports it), or -1.
func (c *Cluster) Node(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// Kill stops node i with SIGKILL and waits for the process to end.
func (c *Cluster) Kill(i int) {
	n := c.nodes[i]
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts node i again, after Kill, on its store and ports, and waits
// until it is ready.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.nodes[i]
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
	default:
		c.t.Fatalf("natstest: Restart(%d): the node is running; Kill it first", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadyTimeout)
	defer cancel()
	if err := c.relaunch(ctx, i); err != nil {
		c.t.Fatalf("natstest: restart: %v", err)
	}
}

// relaunch starts node i again and waits until it is ready. A node restarts
// on its own ports, which another process (a client's ephemeral port, another
// test's listener) may hold for a moment after the kill freed them: a start
// that exits because a port is in use is tried again until ctx ends.
func (c *Cluster) relaunch(ctx context.Context, i int) error {
	n := c.nodes[i]
	for {
		if err := c.launch(n); err != nil {
			return err
		}
		err := c.waitReady(ctx, i)
		if err == nil || !strings.Contains(err.Error(), "address already in use") || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RestartNodes starts the nodes is again, after Kill, and waits until every
// one of them is ready: a cluster restarted after all its nodes were killed
// (a power cut) elects its leaders only with a quorum back.
func (c *Cluster) RestartNodes(is ...int) {
	c.t.Helper()
	for _, i := range is {
		n := c.nodes[i]
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		select {
		case <-done:
		default:
			c.t.Fatalf("natstest: RestartNodes(%d): the node is running; Kill it first", i)
		}
		if err := c.launch(n); err != nil {
			c.t.Fatalf("natstest: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ReadyTimeout)
	defer cancel()
	for _, i := range is {
		if err := c.waitReady(ctx, i); err != nil {
			c.t.Fatalf("natstest: restart: %v", err)
		}
	}
}

// Pause stops node i with SIGSTOP (a frozen VM, a long GC pause); Resume
// continues it.
func (c *Cluster) Pause(i int) { c.signal(i, syscall.SIGSTOP) }

// Resume continues node i after Pause.
func (c *Cluster) Resume(i int) { c.signal(i, syscall.SIGCONT) }

func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	n := c.nodes[i]
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("natstest: %v to node %d: %v", sig, i, err)
	}
}

// ClientAddr returns node i's client listener, host:port.
func (c *Cluster) ClientAddr(i int) string {
	return fmt.Sprintf("127.0.0.1:%d", c.nodes[i].client)
}

// Name returns node i's server name.
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// Close kills every node and waits for them to exit. Start's cluster is
// closed at the end of its test.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		n.mu.Lock()
		cmd, done := n.cmd, n.done
		n.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Kill()
			<-done
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a port: %w", err)
		}
		defer l.Close() // Held until all are picked, so that they differ.
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// serverBinary returns the path of nats-server at the version go.mod
// requires, building it on first use.
func serverBinary() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", serverModule).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s (run from within the module): %w", serverModule, err)
	}
	version := strings.TrimSpace(string(out))
	if version == "" {
		return "", fmt.Errorf("no version of %s in go.mod", serverModule)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory for nats-server: %w", err)
	}
	dir := filepath.Join(cache, "chronoshub-sidecar-natstest")
	bin := filepath.Join(dir, "nats-server-"+version+"-"+runtime.Version()+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory for nats-server: %w", err)
	}
	// Build beside the final name and rename, so that concurrent test
	// binaries never run a half-written file.
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	// Built within this module (a test runs in its package's directory), so
	// go.mod picks the version.
	cmd := exec.Command("go", "build", "-o", tmp, serverModule)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s@%s: %w\n%s", serverModule, version, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}
