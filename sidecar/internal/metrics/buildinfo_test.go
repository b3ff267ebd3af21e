package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
)

func TestRegisterBuildInfo(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	if err := metrics.RegisterBuildInfo(reg, "v1.2.3", "0123abcd", "go1.26.0"); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP chronoshub_sidecar_build_info Always 1; its labels are the version, the VCS revision and the Go version of the binary.
# TYPE chronoshub_sidecar_build_info gauge
chronoshub_sidecar_build_info{goversion="go1.26.0",revision="0123abcd",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "chronoshub_sidecar_build_info"); err != nil {
		t.Fatal(err)
	}
	if err := metrics.RegisterBuildInfo(reg, "v1.2.3", "0123abcd", "go1.26.0"); err == nil {
		t.Fatal("registering build_info twice succeeded, want an error")
	}
}
