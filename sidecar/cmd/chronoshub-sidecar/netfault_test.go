package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

// faultNet is a Toxiproxy proxy on loopback in front of every route port
// of a NATS cluster (one per direction: route[i][j] is how node i reaches
// node j) and every client port (client[s][j] is how sidecar s reaches node
// j).
type faultNet struct {
	t      *testing.T
	srv    *toxiproxy.ApiServer
	mu     sync.Mutex
	route  map[[2]int]*toxiproxy.Proxy
	client map[[2]int]*toxiproxy.Proxy
}

func newFaultNet(t *testing.T) *faultNet {
	// Toxiproxy's toxics log through zerolog's global logger.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	return &faultNet{
		t:      t,
		srv:    toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		route:  map[[2]int]*toxiproxy.Proxy{},
		client: map[[2]int]*toxiproxy.Proxy{},
	}
}

// proxy starts a proxy to upstream on a loopback port and returns it; it
// stops at the end of the test.
func (n *faultNet) proxy(name, upstream string) *toxiproxy.Proxy {
	p := toxiproxy.NewProxy(n.srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		n.t.Fatalf("toxiproxy %s: %v", name, err)
	}
	n.t.Cleanup(p.Stop)
	return p
}

// routeVia is natstest.Options.RouteVia.
func (n *faultNet) routeVia(from, to int, addr string) string {
	p := n.proxy(fmt.Sprintf("route-%d-%d", from, to), addr)
	n.mu.Lock()
	n.route[[2]int{from, to}] = p
	n.mu.Unlock()
	return p.Listen
}

// clientURLs starts the proxies from sidecar s to every node of c and
// returns them as CHRONOSHUB_NATS_URL takes them.
func (n *faultNet) clientURLs(s int, c *natstest.Cluster, nodes int) string {
	var urls []string
	for j := range nodes {
		p := n.proxy(fmt.Sprintf("client-%d-%d", s, j), c.ClientAddr(j))
		n.mu.Lock()
		n.client[[2]int{s, j}] = p
		n.mu.Unlock()
		urls = append(urls, "nats://"+p.Listen)
	}
	return strings.Join(urls, ",")
}

// toxic adds a toxic (Toxiproxy's JSON) to p in both directions.
func (n *faultNet) toxic(p *toxiproxy.Proxy, kind, attrs string) {
	for _, dir := range []string{"upstream", "downstream"} {
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"attributes":%s}`, kind+"-"+dir, kind, dir, attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			n.t.Fatalf("toxic %s on %s: %v", js, p.Name, err)
		}
	}
}

// cut stops every byte through p, both ways, holding its connections open:
// a partition, not a refusal.
func (n *faultNet) cut(p *toxiproxy.Proxy) { n.toxic(p, "timeout", `{"timeout":0}`) }

// healAll removes every toxic. A partition dropped the bytes it held (a
// TCP connection across a partition that long would have timed out), so the
// connections that crossed it are closed and reopened by their ends.
func (n *faultNet) healAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range []map[[2]int]*toxiproxy.Proxy{n.route, n.client} {
		for _, p := range m {
			cut := p.Toxics.GetToxic("timeout-upstream") != nil
			p.Toxics.ResetToxics(context.Background())
			if cut {
				p.Stop()
				if err := p.Start(); err != nil {
					n.t.Fatalf("toxiproxy %s: restart: %v", p.Name, err)
				}
			}
		}
	}
}

// isolate cuts node k off from the other nodes (routes both ways) and from
// the sidecars in sidecars.
func (n *faultNet) isolate(k, nodes int, sidecars []int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for j := range nodes {
		if j != k {
			n.cut(n.route[[2]int{k, j}])
			n.cut(n.route[[2]int{j, k}])
		}
	}
	for _, s := range sidecars {
		n.cut(n.client[[2]int{s, k}])
	}
}

// leaderOf returns the index of the node leading stream, or -1.
func leaderOf(t *testing.T, c *natstest.Cluster, stream string) int {
	t.Helper()
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return -1
	}
	return c.Node(info.Cluster.Leader)
}

// readiness records, for one sidecar, how long /readyz answered other than
// 200 and how often it went false.
type readiness struct {
	mu       sync.Mutex
	falls    int
	notReady time.Duration
	last     int
	notAt    []time.Time // when /readyz answered other than 200
}

// falseWithin reports whether /readyz answered other than 200 within
// [from, to].
func (r *readiness) falseWithin(from, to time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, at := range r.notAt {
		if !at.Before(from) && !at.After(to) {
			return true
		}
	}
	return false
}

// watchReadiness polls /readyz of the sidecar at admin() every 100ms until
// stop is closed.
func watchReadiness(admin func() string, r *readiness, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.last = http.StatusOK
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			a := admin()
			if a == "" {
				continue
			}
			st := readyStatus(a)
			r.mu.Lock()
			if st != http.StatusOK {
				r.notAt = append(r.notAt, time.Now())
				r.notReady += 100 * time.Millisecond
				if r.last == http.StatusOK {
					r.falls++
				}
			}
			r.last = st
			r.mu.Unlock()
		}
	}()
	return &wg
}

// faultFleet is a three-node cluster (sync_interval: always) behind
// Toxiproxy and two sidecars, with ChronosHub's webhooks to both in turn,
// the app's async SendEvents, an app streaming and acking beside each
// sidecar, and a flapping app beside each whose events end in the dead
// letters.
type faultFleet struct {
	t      *testing.T
	c      *natstest.Cluster
	net    *faultNet
	emu    *emulator.Emulator
	slots  []*fleetSlot
	hc     *http.Client
	l      *ledger
	ready  []*readiness
	stop   chan struct{}
	load   []*sync.WaitGroup
	apps   sync.WaitGroup
	churnM sync.Mutex
	churn  map[string]int // offers the flapping apps received, by id

	dumpOnce sync.Once
}

func startFaultFleet(t *testing.T) *faultFleet {
	t.Helper()
	fn := newFaultNet(t)
	c := natstest.Start(t, natstest.Options{Nodes: 3, SyncAlways: true, RouteVia: fn.routeVia})
	emu, baseURL := unboundedHub(t)
	f := &faultFleet{t: t, c: c, net: fn, emu: emu, l: newLedger(), stop: make(chan struct{}), churn: map[string]int{}}
	base, hc := fleetEnv(t, baseURL, c) // one certificate for both sidecars
	f.hc = hc
	for s := range 2 {
		env := maps.Clone(base)
		env["CHRONOSHUB_NATS_URL"] = fn.clientURLs(s, c, 3)
		env["CHRONOSHUB_ACK_WAIT"] = "2s"
		env["CHRONOSHUB_SEND_MAX_ATTEMPTS"] = "2"
		env["CHRONOSHUB_WEBHOOK_STORE_TIMEOUT"] = "3s"
		p := startProcess(t, env)
		a, ok := readyOrExit(t, p)
		if !ok {
			t.Fatalf("sidecar %d did not start:\n%s", s, p.stderr.String())
		}
		f.slots = append(f.slots, &fleetSlot{p: p, addrs: a})
		f.ready = append(f.ready, &readiness{})
	}
	var rr atomic.Int64
	next := func() sidecar.Addrs { return f.slots[int(rr.Add(1))%len(f.slots)].get() }
	f.load = append(f.load,
		chronosHub(f.hc, func() string { return "https://" + next().Webhook + "/webhook" }, f.l, 4, f.stop),
		appSends(func() string { return next().GRPC }, f.l, f.stop))
	for i, s := range f.slots {
		f.load = append(f.load, watchReadiness(func() string { return s.get().Admin }, f.ready[i], f.stop))
		f.apps.Add(2)
		go func() {
			defer f.apps.Done()
			untilStopped(f.stop, 10*time.Millisecond, func() { consume(s.get().GRPC, f.stop, func(*sidecarv1.Event) {}) })
		}()
		go func() {
			defer f.apps.Done()
			untilStopped(f.stop, 5*time.Millisecond, func() {
				churn(s.get().GRPC, f.stop, 2, func(e *sidecarv1.Event) {
					f.churnM.Lock()
					f.churn[e.GetId()]++
					f.churnM.Unlock()
				})
			})
		}()
	}
	t.Cleanup(func() {
		if t.Failed() {
			f.dump()
		}
	})
	return f
}

// dump asks every sidecar for its goroutines (SIGQUIT) and keeps its
// output in a file, for the failure message.
func (f *faultFleet) dump() {
	f.dumpOnce.Do(f.dumpAll)
}

func (f *faultFleet) dumpAll() {
	for i, s := range f.slots {
		p := s.p
		if p == nil || p.cmd.ProcessState != nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		name := filepath.Join(os.TempDir(), fmt.Sprintf("chronoshub-fault-%s-sidecar%d.log", strings.ReplaceAll(f.t.Name(), "/", "_"), i))
		if err := os.WriteFile(name, []byte(p.stderr.String()), 0o600); err == nil {
			f.t.Logf("sidecar %d's log and goroutines (SIGQUIT): %s", i, name)
		}
	}
}

// healthy waits until both sidecars are ready again by themselves and
// every node is back, failing after limit, and returns how long it took.
func (f *faultFleet) healthy(limit time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	for _, s := range f.slots {
		waitReadyz(f.t, s.get().Admin, http.StatusOK, limit)
	}
	return time.Since(start)
}

// settle lets webhooks flow for a while between faults: until n more are
// answered 2xx, failing after limit.
func (f *faultFleet) settle(n int, limit time.Duration) {
	f.t.Helper()
	want := f.l.nAccepted() + n
	deadline := time.Now().Add(limit)
	for f.l.nAccepted() < want {
		if time.Now().After(deadline) {
			f.t.Fatalf("fewer than %d webhooks answered 2xx within %v after the fault healed (answers so far: %v)", n, limit, f.answers())
		}
		time.Sleep(20 * time.Millisecond) // a poll interval
	}
}

func (f *faultFleet) answers() map[int]int {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	out := map[int]int{}
	for k, v := range f.l.answers {
		out[k] = v
	}
	return out
}

// finish stops the load and the apps and runs the checker (strict: no
// loss) and the check of the flapping apps' dead letters.
func (f *faultFleet) finish() verdict {
	t := f.t
	t.Helper()
	close(f.stop)
	for _, wg := range f.load {
		wg.Wait()
	}
	f.apps.Wait()
	v := check(t, f.l, f.emu, f.slots[0].get(), f.hc, "fault-check", true, f.dump)
	client, _ := grpcClient(t, f.slots[0].get().GRPC)
	dls, err := allDeadLetters(t.Context(), client, "churn")
	if err != nil {
		t.Fatal(err)
	}
	f.churnM.Lock()
	defer f.churnM.Unlock()
	short, over := 0, 0
	for _, d := range dls {
		id := d.GetEvent().GetId()
		if a := d.GetEvent().GetAttempt(); a != 5 {
			t.Errorf("dead letter %s records %d attempts, want CHRONOSHUB_MAX_ATTEMPTS (5) (offered to the flapping apps %d times)", id, a, f.churn[id])
		}
		switch n := f.churn[id]; {
		case n > 6:
			t.Errorf("dead letter %s was offered to the flapping apps %d times, more than CHRONOSHUB_MAX_ATTEMPTS (5) and the one offer a fault may leave unrecorded", id, n)
		case n == 6:
			// The bound docs/guarantees.md states: a first offer whose
			// record could not be written before JetStream offered the
			// event again (its sidecar cut off from the store, or killed,
			// within the ack deadline) is not counted.
			over++
		case n < 5:
			short++
		}
	}
	t.Logf("flapping apps: %d dead letters; %d of them offered to an app fewer than 5 times, %d of them 6 times (a first offer left unrecorded by a fault)", len(dls), short, over)
	return v
}

// checkReadiness checks, for the fault that lasted [from, to], that every
// sidecar that answered no webhook 2xx for 3 s or more said so on /readyz
// within that stretch (issue 25's readiness item).
func (f *faultFleet) checkReadiness(from, to time.Time) {
	f.t.Helper()
	for i, s := range f.slots {
		url := "https://" + s.get().Webhook + "/webhook"
		for _, o := range f.l.outages(url, from, to, 3*time.Second) {
			if !f.ready[i].falseWithin(o[0], o[1]) {
				f.t.Errorf("sidecar %d answered no webhook with a 2xx for %v while /readyz answered 200 throughout", i, o[1].Sub(o[0]).Round(100*time.Millisecond))
			}
		}
	}
}

// readinessReport says, per sidecar, how often /readyz went false and for
// how long in all.
func (f *faultFleet) readinessReport() string {
	var parts []string
	for i, r := range f.ready {
		r.mu.Lock()
		parts = append(parts, fmt.Sprintf("sidecar %d: not ready %d times, %v in all", i, r.falls, r.notReady))
		r.mu.Unlock()
	}
	return strings.Join(parts, "; ")
}

// netFault is one kind of network fault: start applies it and returns a
// description.
type netFault struct {
	name  string
	start func(f *faultFleet, sched *faultSchedule) string
	long  bool // a partition: held past an election timeout
}

var netFaults = []netFault{
	{"one node cut off", func(f *faultFleet, sched *faultSchedule) string {
		k := sched.intN(3)
		f.net.isolate(k, 3, []int{0, 1})
		return fmt.Sprintf("node %d cut off from the other nodes and both sidecars", k)
	}, true},
	{"a sidecar cut off from the leader", func(f *faultFleet, sched *faultSchedule) string {
		k := leaderOf(f.t, f.c, "CHRONOSHUB_EVENTS")
		if k < 0 {
			k = sched.intN(3)
		}
		s := sched.intN(2)
		f.net.mu.Lock()
		f.net.cut(f.net.client[[2]int{s, k}])
		f.net.mu.Unlock()
		return fmt.Sprintf("sidecar %d cut off from node %d, the events stream's leader", s, k)
	}, true},
	{"minority/majority split", func(f *faultFleet, sched *faultSchedule) string {
		k, s := sched.intN(3), sched.intN(2)
		// Node k and sidecar s on one side, the other nodes and sidecar
		// 1-s on the other.
		f.net.isolate(k, 3, []int{1 - s})
		f.net.mu.Lock()
		for j := range 3 {
			if j != k {
				f.net.cut(f.net.client[[2]int{s, j}])
			}
		}
		f.net.mu.Unlock()
		return fmt.Sprintf("split: node %d with sidecar %d | the other two nodes with sidecar %d", k, s, 1-s)
	}, true},
	{"latency", func(f *faultFleet, sched *faultSchedule) string {
		ms, jitter := 50+sched.intN(250), sched.intN(100)
		f.net.mu.Lock()
		defer f.net.mu.Unlock()
		for _, m := range []map[[2]int]*toxiproxy.Proxy{f.net.route, f.net.client} {
			for _, p := range m {
				f.net.toxic(p, "latency", fmt.Sprintf(`{"latency":%d,"jitter":%d}`, ms, jitter))
			}
		}
		return fmt.Sprintf("%d ms ± %d ms added each way on every route and client link", ms, jitter)
	}, false},
	{"slow link", func(f *faultFleet, sched *faultSchedule) string {
		k, rate := sched.intN(3), 16+sched.intN(48)
		f.net.mu.Lock()
		defer f.net.mu.Unlock()
		for j := range 3 {
			if j != k {
				f.net.toxic(f.net.route[[2]int{k, j}], "bandwidth", fmt.Sprintf(`{"rate":%d}`, rate))
				f.net.toxic(f.net.route[[2]int{j, k}], "bandwidth", fmt.Sprintf(`{"rate":%d}`, rate))
			}
		}
		for s := range 2 {
			f.net.toxic(f.net.client[[2]int{s, k}], "bandwidth", fmt.Sprintf(`{"rate":%d}`, rate))
		}
		return fmt.Sprintf("node %d's links slowed to %d KB/s", k, rate)
	}, false},
	{"connections reset mid-request", func(f *faultFleet, sched *faultSchedule) string {
		s, after := sched.intN(2), 50+sched.intN(400)
		k := sched.intN(3)
		f.net.mu.Lock()
		defer f.net.mu.Unlock()
		for j := range 3 {
			f.net.toxic(f.net.client[[2]int{s, j}], "reset_peer", fmt.Sprintf(`{"timeout":%d}`, after))
			if j != k {
				f.net.toxic(f.net.route[[2]int{k, j}], "reset_peer", fmt.Sprintf(`{"timeout":%d}`, after))
			}
		}
		return fmt.Sprintf("sidecar %d's connections and node %d's routes reset %d ms into their first data", s, k, after)
	}, false},
}

// TestNetworkFaults runs a fleet (two sidecars on a three-node cluster with
// sync_interval: always) with a Toxiproxy proxy in front of every NATS
// client and route port, and applies the faults of netFaults in an order
// from the seed, each for a time from the seed (partitions longer than
// NATS's election timeout), healing between them. After each fault both
// sidecars must be ready again by themselves and webhooks answered 2xx
// again; at the end the checker finds every webhook answered 2xx delivered
// and acked and every queued async event at ChronosHub.
//
// CHRONOSHUB_FAULT_ROUNDS sets the number of faults of each kind (default
// 1); CHRONOSHUB_FAULT_SEED replays a schedule.
func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary on a NATS cluster behind Toxiproxy")
	}
	sched := newSchedule(t, 1)
	f := startFaultFleet(t)
	var order []int
	for range sched.rounds {
		for k := range netFaults {
			order = append(order, k)
		}
	}
	for i := len(order) - 1; i > 0; i-- {
		j := sched.intN(i + 1)
		order[i], order[j] = order[j], order[i]
	}
	f.settle(50, time.Minute)
	counts := map[string]int{}
	for round, k := range order {
		nf := netFaults[k]
		hold := sched.between(2*time.Second, 4*time.Second)
		if nf.long {
			hold = sched.between(5*time.Second, 8*time.Second)
		}
		before := f.l.nAccepted()
		what := nf.start(f, sched)
		time.Sleep(hold) // the fault's duration, from the schedule
		during := f.l.nAccepted() - before
		f.checkReadiness(time.Now().Add(-hold), time.Now())
		f.net.healAll()
		back := f.healthy(90 * time.Second)
		f.settle(20, time.Minute)
		counts[nf.name]++
		t.Logf("fault %d: %s for %v: %d webhooks answered 2xx meanwhile; both sidecars ready %v after healing", round+1, what, hold, during, back.Round(100*time.Millisecond))
	}
	v := f.finish()
	t.Logf("network faults %v: %v; webhook answers %v; %s", counts, v, f.answers(), f.readinessReport())
}
