package sidecar

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin listener: /healthz (alive says whether the
// process is worth keeping), /readyz (ready says whether the sidecar can
// take events) and /metrics (reg, in Prometheus' format); with profiling,
// also Go's profiler under /debug/pprof/ (CHRONOSHUB_PPROF; config refuses
// it on an address beyond loopback unless asked for "any").
func adminHandler(reg *prometheus.Registry, alive, ready func(context.Context) error, profiling bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", probe(alive, "ok", "unhealthy"))
	mux.Handle("GET /readyz", probe(ready, "ready", "not ready"))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if profiling {
		// On this mux, not http.DefaultServeMux (where importing
		// net/http/pprof also registers them, unserved). pprof.Index serves
		// the named profiles (heap, allocs, goroutine, block, mutex, …).
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// probe answers 200 with ok when check passes, else 503 with bad and the
// reason.
func probe(check func(context.Context) error, ok, bad string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := check(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(bad + ": " + err.Error() + "\n"))
			return
		}
		w.Write([]byte(ok + "\n"))
	})
}
