package main

import (
	"context"
	"os"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

// Setups of the replication section.
const (
	clusterEmbedded = "embedded store, R1"
	clusterR3       = "3-node NATS cluster, R3"
)

// benchCluster measures, round by round, webhook ingest (keep-alive) and
// end-to-end latency at the lowest offered rate on the embedded store and
// on a three-node NATS cluster (natstest's: separate nats-server processes
// on this machine, the version go.mod requires) with every stream and
// bucket replicated three times: what replication costs.
func (h *harness) benchCluster(ctx context.Context) error {
	rate := h.cfg.Rates[0]
	for round := range h.cfg.Runs {
		for _, setup := range []string{clusterEmbedded, clusterR3} {
			env := sidecarEnv{Name: "cluster", Sync: "always"} // the default
			stopNATS := func() {}
			if setup == clusterR3 {
				dir := h.dataDir("nats")
				cl, err := natstest.New(dir, natstest.Options{Nodes: 3, MaxPayload: 8 << 20, MaxFileStore: 4 << 30})
				if err != nil {
					return err
				}
				stopNATS = func() { cl.Close(); os.RemoveAll(dir) }
				env = sidecarEnv{Extra: []string{"CHRONOSHUB_NATS_URL=" + cl.URLs(), "CHRONOSHUB_NATS_REPLICAS=3"}}
			}
			p, err := h.startSidecar(ctx, env)
			if err != nil {
				stopNATS()
				return err
			}
			r := h.ingestRun(ctx, p.url(), modeKeepAlive, h.cfg.Warmup, h.cfg.Duration)
			get(h.res.Ingest, ingestKey(setup, modeKeepAlive)).add(r)
			h.logRun(round, setup+" ingest", r)
			err = h.e2eRound(ctx, round, setup, p, []int{rate}, false)
			p.close()
			stopNATS()
			if err != nil {
				return err
			}
		}
		h.res.ClusterIngestRatio = appendRatio(h.res.ClusterIngestRatio, h.res.Ingest, round, rateOf, ingestKey(clusterR3, modeKeepAlive), ingestKey(clusterEmbedded, modeKeepAlive))
		h.res.ClusterP99Ratio = appendRatio(h.res.ClusterP99Ratio, h.res.E2E, round, latOf(p99), e2eKey(clusterR3, rate), e2eKey(clusterEmbedded, rate))
	}
	return nil
}

func (r *results) mdCluster(p printer) {
	if len(r.ClusterIngestRatio) == 0 && len(r.ClusterP99Ratio) == 0 {
		return
	}
	rate := r.Cfg.Rates[0]
	heading(p, "## 4b. Replication: a three-node NATS cluster")
	p("The sidecar on its embedded store (the default `SYNC=always`: fsynced before the 2xx) and on a cluster")
	p("of three `nats-server` processes on this machine (`CHRONOSHUB_NATS_URL` with all three,")
	p("`CHRONOSHUB_NATS_REPLICAS=3`: every event is stored on a majority of three nodes before the webhook is")
	p("answered; the servers fsync on their own `sync_interval`, 2 minutes by default), round by round:")
	p("keep-alive webhook ingest as in section 1,")
	p("and end to end at %s/s as in section 2. The three servers share the machine's CPUs with the rest, so", formatRate(float64(rate)))
	p("this measures replication's work and round trips, not network latency between hosts.")
	p("")
	table(p, "setup", "ingest requests/s", "ingest p99 ms", "end to end p50 ms", "end to end p99 ms")
	for _, setup := range []string{clusterEmbedded, clusterR3} {
		if in, e := r.Ingest[ingestKey(setup, modeKeepAlive)], r.E2E[e2eKey(setup, rate)]; in != nil && e != nil {
			row(p, setup, fmtFig(in.rate(), formatRate), fmtFig(in.latency(p99), fmtMs), fmtFig(e.latency(p50), fmtMs), fmtFig(e.latency(p99), fmtMs))
		}
	}
	p("")
	p("The cluster as a multiple of the embedded store, per round: ingest throughput **%s**, end-to-end p99 at %s/s **%s**.",
		fmtRuns(r.ClusterIngestRatio, fmtRatio), formatRate(float64(rate)), fmtRuns(r.ClusterP99Ratio, fmtRatio))
}
