package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Setups of the replication section.
const (
	clusterEmbedded = "embedded store, R1"
	clusterR3       = "3-node NATS cluster, R3"
)

// natsNode is one nats-server process of the bench's cluster.
type natsNode struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	client  string // host:port
	monitor string
	log     string
}

// startNATSCluster starts three nats-servers with JetStream, clustered on
// loopback, storing under dir, and waits until each answers /healthz
// (JetStream current with an elected meta leader). It returns the client
// URLs, comma-separated, and a function that stops them.
func (h *harness) startNATSCluster(ctx context.Context, bin, dir string) (string, func(), error) {
	const n = 3
	var clients, routes, monitors []string
	for range 3 * n {
		a, err := freePort()
		if err != nil {
			return "", nil, err
		}
		switch {
		case len(clients) < n:
			clients = append(clients, a)
		case len(routes) < n:
			routes = append(routes, a)
		default:
			monitors = append(monitors, a)
		}
	}
	var nodes []*natsNode
	stop := func() {
		for _, nd := range nodes {
			_ = nd.cmd.Process.Signal(os.Interrupt)
		}
		for _, nd := range nodes {
			select {
			case <-nd.exited:
			case <-time.After(10 * time.Second):
				_ = nd.cmd.Process.Kill()
				<-nd.exited
			}
		}
	}
	for i := range n {
		nd := &natsNode{client: clients[i], monitor: monitors[i], exited: make(chan struct{})}
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i+1))
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			stop()
			return "", nil, err
		}
		var conf strings.Builder
		fmt.Fprintf(&conf, "server_name: n%d\nlisten: %s\nhttp: %s\nmax_payload: 8MB\n", i+1, clients[i], monitors[i])
		fmt.Fprintf(&conf, "jetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}\n", ndir)
		fmt.Fprintf(&conf, "cluster {\n  name: chronoshub-bench\n  listen: %s\n  routes: [\n", routes[i])
		for j, r := range routes {
			if j != i {
				fmt.Fprintf(&conf, "    nats-route://%s\n", r)
			}
		}
		conf.WriteString("  ]\n}\n")
		cf := filepath.Join(ndir, "nats.conf")
		if err := os.WriteFile(cf, []byte(conf.String()), 0o644); err != nil {
			stop()
			return "", nil, err
		}
		nd.log = filepath.Join(ndir, "server.log")
		logf, err := os.Create(nd.log)
		if err != nil {
			stop()
			return "", nil, err
		}
		nd.cmd = exec.Command(bin, "-c", cf)
		nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
		if err := nd.cmd.Start(); err != nil {
			logf.Close()
			stop()
			return "", nil, err
		}
		go func() { _ = nd.cmd.Wait(); logf.Close(); close(nd.exited) }()
		nodes = append(nodes, nd)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for _, nd := range nodes {
		for {
			resp, err := client.Get("http://" + nd.monitor + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-nd.exited:
				stop()
				tail, _ := os.ReadFile(nd.log)
				return "", nil, fmt.Errorf("nats-server exited: %s", tail)
			case <-ctx.Done():
				stop()
				return "", nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				stop()
				return "", nil, fmt.Errorf("nats-server %s not healthy after 1m", nd.client)
			}
		}
	}
	var urls []string
	for _, c := range clients {
		urls = append(urls, "nats://"+c)
	}
	return strings.Join(urls, ","), stop, nil
}

// benchCluster measures, round by round, webhook ingest (keep-alive) and
// end-to-end latency at the lowest offered rate on the embedded store and
// on a three-node NATS cluster (separate nats-server processes on this
// machine) with every stream and bucket replicated three times: what
// replication costs.
func (h *harness) benchCluster(ctx context.Context) error {
	bin := filepath.Join(h.tmp, "nats-server")
	h.logf("go build -o %s github.com/nats-io/nats-server/v2", bin)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		return fmt.Errorf("go build nats-server: %w\n%s", err, out)
	}
	rate := h.cfg.Rates[0]
	for round := range h.cfg.Runs {
		rates := map[string]float64{}
		p99s := map[string]time.Duration{}
		for _, setup := range []string{clusterEmbedded, clusterR3} {
			env := sidecarEnv{DataDir: h.dataDir("cluster"), Sync: "1s"}
			var stopNATS func()
			if setup == clusterR3 {
				dir := h.dataDir("nats")
				urls, stop, err := h.startNATSCluster(ctx, bin, dir)
				if err != nil {
					return err
				}
				stopNATS = func() { stop(); os.RemoveAll(dir) }
				env = sidecarEnv{Extra: []string{"CHRONOSHUB_NATS_URL=" + urls, "CHRONOSHUB_NATS_REPLICAS=3"}}
			}
			p, err := h.startSidecar(ctx, env)
			if err != nil {
				if stopNATS != nil {
					stopNATS()
				}
				return err
			}
			url := "https://" + p.Webhook + "/webhook"
			r := h.ingestRun(ctx, url, modeKeepAlive, h.cfg.Warmup, h.cfg.Duration)
			get(h.res.Ingest, ingestKey(setup, modeKeepAlive)).add(r)
			rates[setup] = r.Rate
			h.logf("round %d  %-28s ingest %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d", round+1, setup, r.Rate, ms(r.Lat.P50), ms(r.Lat.P99), r.Errors)
			err = h.e2eRound(ctx, round, setup, url, p.GRPC, []int{rate}, false)
			if s := h.res.E2E[e2eKey(setup, rate)]; s != nil && len(s.Runs) > round {
				p99s[setup] = s.Runs[round].Lat.P99
			}
			p.stop()
			if env.DataDir != "" {
				os.RemoveAll(env.DataDir)
			}
			if stopNATS != nil {
				stopNATS()
			}
			if err != nil {
				return err
			}
		}
		if b := rates[clusterEmbedded]; b > 0 {
			h.res.ClusterIngestRatio = append(h.res.ClusterIngestRatio, rates[clusterR3]/b)
		}
		if b := p99s[clusterEmbedded]; b > 0 {
			h.res.ClusterP99Ratio = append(h.res.ClusterP99Ratio, float64(p99s[clusterR3])/float64(b))
		}
	}
	return nil
}

func (r *results) mdCluster(p printer) {
	if len(r.ClusterIngestRatio) == 0 && len(r.ClusterP99Ratio) == 0 {
		return
	}
	c := r.Cfg
	rate := c.Rates[0]
	p("")
	p("## 4b. Replication: a three-node NATS cluster")
	p("")
	p("The sidecar on its embedded store (`SYNC=1s`) and on a cluster of three `nats-server` processes on this")
	p("machine (`CHRONOSHUB_NATS_URL` with all three, `CHRONOSHUB_NATS_REPLICAS=3`: every event is stored on")
	p("three nodes before the webhook is answered), round by round: keep-alive webhook ingest as in section 1,")
	p("and end to end at %s/s as in section 2. The three servers share the machine's CPUs with the rest, so", formatRate(float64(rate)))
	p("this measures replication's work and round trips, not network latency between hosts.")
	p("")
	p("| setup | ingest requests/s | ingest p99 ms | end to end p50 ms | end to end p99 ms |")
	p("|---|---|---|---|---|")
	for _, setup := range []string{clusterEmbedded, clusterR3} {
		in, e := r.Ingest[ingestKey(setup, modeKeepAlive)], r.E2E[e2eKey(setup, rate)]
		if in == nil || e == nil {
			continue
		}
		p("| %s | %s | %s | %s | %s |", setup, fmtFig(in.rate(), formatRate), fmtFig(in.latency(p99), fmtMs), fmtFig(e.latency(p50), fmtMs), fmtFig(e.latency(p99), fmtMs))
	}
	p("")
	p("The cluster as a multiple of the embedded store, per round: ingest throughput **%s**, end-to-end p99 at %s/s **%s**.",
		fmtFig(summarizeRuns(r.ClusterIngestRatio), fmtRatio), formatRate(float64(rate)), fmtFig(summarizeRuns(r.ClusterP99Ratio), fmtRatio))
}
