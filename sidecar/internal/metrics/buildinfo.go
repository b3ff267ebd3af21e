package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterBuildInfo registers chronoshub_sidecar_build_info on reg: a gauge
// that is always 1, labelled with the module version, the VCS revision and
// the Go version of the running binary, so that a dashboard can tell which
// build each replica runs. It fails if reg already has it.
func RegisterBuildInfo(reg prometheus.Registerer, version, revision, goVersion string) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; its labels are the version, the VCS revision and the Go version of the binary.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return reg.Register(g)
}
