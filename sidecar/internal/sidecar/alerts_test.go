package sidecar

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// The alerting rules shipped with the Kubernetes examples.
var (
	alertsDir      = filepath.Join("..", "..", "..", "examples", "kubernetes", "alerts")
	rulesFile      = filepath.Join(alertsDir, "chronoshub-sidecar.rules.yaml")
	rulesTestFile  = filepath.Join(alertsDir, "chronoshub-sidecar.rules.test.yaml")
	prometheusRule = filepath.Join(alertsDir, "prometheusrule.yaml")
)

var updateAlerts = flag.Bool("update-alerts", false, "rewrite examples/kubernetes/alerts/prometheusrule.yaml from the rules file")

// promtool returns promtool's path, failing the test when it is missing.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: install Debian's prometheus package (make debian-packages does)")
	}
	return p
}

// TestAlertRules checks the rules with promtool and runs their unit tests:
// when each alert fires and when it does not.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool(t), args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// prometheusRuleFrom returns the PrometheusRule manifest holding the rule
// file's groups.
func prometheusRuleFrom(rules []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`# Generated from chronoshub-sidecar.rules.yaml: do not edit; edit the rules
# file and run
#   go test ./sidecar/internal/sidecar -run TestPrometheusRule -update-alerts
# The same alerts for the Prometheus Operator. Its rule selector must match
# these labels (kube-prometheus-stack's default selects its Helm release's).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: chronoshub-sidecar
  labels:
    app.kubernetes.io/name: chronoshub-sidecar
spec:
`)
	inBody := false
	for line := range strings.Lines(string(rules)) {
		if !inBody && strings.HasPrefix(line, "groups:") {
			inBody = true
		}
		if !inBody {
			continue // the rule file's header comment
		}
		if strings.TrimSpace(line) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("  " + line)
	}
	return b.Bytes()
}

// TestPrometheusRule keeps the PrometheusRule equal to the rules file.
func TestPrometheusRule(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := prometheusRuleFrom(rules)
	if *updateAlerts {
		if err := os.WriteFile(prometheusRule, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not the rules of %s: run go test ./sidecar/internal/sidecar -run TestPrometheusRule -update-alerts", prometheusRule, rulesFile)
	}
}

// TestAlertMetricsExist starts a sidecar, makes a subscription so that the
// per-subscription series appear, scrapes /metrics and checks that every
// metric the rules and their unit tests name is exposed, with every label
// the unit tests give it, and that promtool check metrics passes on the
// scrape: a renamed metric or label cannot silently disable an alert.
func TestAlertMetricsExist(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	s, _ := runSidecar(t, testEnv(t), nil)
	conn, err := grpc.NewClient("passthrough:///"+s.Addrs().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A stream creates the subscription; it stays open until the end.
	if _, err := sidecarv1.NewEventServiceClient(conn).StreamEvents(t.Context(), &sidecarv1.StreamEventsRequest{Subscription: "alerts"}); err != nil {
		t.Fatal(err)
	}

	scrape := func() []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.Addrs().Admin+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil // not served yet
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil
		}
		return b
	}
	// Wait for the subscription's and the ready series (the sidecar is
	// ready once its listeners and tasks run).
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		body = scrape()
		if bytes.Contains(body, []byte(`chronoshub_sidecar_oldest_unacked_age_seconds{subscription="alerts"}`)) &&
			bytes.Contains(body, []byte("chronoshub_sidecar_ready 1")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no subscription series or not ready within 30s; last scrape:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The exposed families and the label names of their samples.
	labels := map[string]map[string]bool{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	labelName := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for line := range strings.Lines(string(body)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			labels[f[2]] = map[string]bool{}
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		family := m[1]
		if _, ok := labels[family]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if _, ok := labels[strings.TrimSuffix(family, suffix)]; ok {
					family = strings.TrimSuffix(family, suffix)
				}
			}
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			if labels[family] != nil {
				labels[family][l[1]] = true
			}
		}
	}

	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`chronoshub_sidecar_[a-z0-9_]+`).FindAllString(string(rules)+string(tests), -1)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) < 6 {
		t.Fatalf("the rules name only %v", names)
	}
	for _, name := range names {
		if _, ok := labels[name]; !ok {
			t.Errorf("the rules use %s, which /metrics does not expose", name)
		}
	}
	// The unit tests' series: every label but the target's is the
	// sidecar's.
	series := regexp.MustCompile(`series: '(chronoshub_sidecar_[a-z0-9_]+)\{([^}]*)\}'`)
	for _, m := range series.FindAllStringSubmatch(string(tests), -1) {
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "instance" && labels[m[1]] != nil && !labels[m[1]][l[1]] {
				t.Errorf("the rules' tests give %s the label %s, which /metrics does not", m[1], l[1])
			}
		}
	}

	check := exec.Command(tool, "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
