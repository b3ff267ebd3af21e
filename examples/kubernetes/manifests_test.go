package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kustomize is the pinned Kustomize that renders the kustomizations here. It
// runs as `go run kustomize`, outside this module's go.mod, so it needs
// nothing installed; examples/run-tests.sh reads this line to warm its build
// while the other installs run.
const kustomize = "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1"

// kustomizations are the directories TestVariants renders with kustomize
// build; the component (sidecar/) is rendered through each of them.
// singlePod are the files of the single-pod variant, decoded as they are.
var (
	kustomizations = []string{"add-to-deployment", "scaled", "statefulset"}
	singlePod      = []string{"deployment.yaml", "service.yaml"}
)

const component = "sidecar"

// settingLine matches a setting's first line in serve --help: a flag and its
// variable, or a variable alone (a secret).
var settingLine = regexp.MustCompile(`(?m)^  (?:--[a-z0-9-]+(?: \S+)?  \$)?(CHRONOSHUB_[A-Z0-9_]+)\b`)

// sidecarSettings returns the environment variables serve --help lists, so
// that a misspelled CHRONOSHUB_ variable in a manifest, which the sidecar
// would only warn about at start (running without the setting meant), fails
// the test.
func sidecarSettings(t *testing.T) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chronoshub-sidecar")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./sidecar/cmd/chronoshub-sidecar")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./sidecar/cmd/chronoshub-sidecar: %v\n%s", err, out)
	}
	out, _ := exec.CommandContext(t.Context(), bin, "serve", "--help").CombinedOutput()
	known := map[string]bool{}
	for _, m := range settingLine.FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if !known["CHRONOSHUB_BASE_URL"] || !known["CHRONOSHUB_API_KEY"] || !known["CHRONOSHUB_SYNC"] {
		t.Fatalf("cannot read the settings from serve --help (found %v):\n%s", known, out)
	}
	known[settingsBinary] = true
	settingsBinaries.Store(bin)
	return known
}

// settingsBinary is a key of sidecarSettings' map that stands for the
// built binary, kept in settingsBinaries for configProblems.
const settingsBinary = "\x00binary"

var settingsBinaries atomic.Value // string: the sidecar binary sidecarSettings built

// configProblems runs serve with the sidecar container's plain environment
// values (files are not there, and Secret references are left out) and
// returns the problems it reports other than missing files and required
// credentials: settings that cannot go together, or a value it refuses.
func configProblems(t *testing.T, env []corev1.EnvVar) []string {
	t.Helper()
	bin, _ := settingsBinaries.Load().(string)
	if bin == "" {
		t.Fatal("the sidecar binary was not built")
	}
	cmd := exec.CommandContext(t.Context(), bin, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve with the manifest's settings and no files started:\n%s", out)
	}
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l = strings.TrimPrefix(l, "chronoshub-sidecar: ")
		if strings.Contains(l, "no such file or directory") || strings.Contains(l, "required") {
			continue
		}
		problems = append(problems, l)
	}
	return problems
}

const sidecarName = "chronoshub-sidecar"

// manifests are decoded Kubernetes objects.
type manifests struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	secrets      []*corev1.Secret
	configMaps   []*corev1.ConfigMap
	budgets      []*policyv1.PodDisruptionBudget
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode decodes one YAML document strictly into the typed object for its
// kind, as the API server does: an unknown, misspelled or duplicate field, a
// field in the wrong case, or a wrong type, is an error.
func decode(doc []byte, m *manifests) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		d := new(appsv1.Deployment)
		m.deployments, obj = append(m.deployments, d), d
	case "apps/v1 StatefulSet":
		s := new(appsv1.StatefulSet)
		m.statefulSets, obj = append(m.statefulSets, s), s
	case "v1 Service":
		s := new(corev1.Service)
		m.services, obj = append(m.services, s), s
	case "v1 Secret":
		s := new(corev1.Secret)
		m.secrets, obj = append(m.secrets, s), s
	case "v1 ConfigMap":
		c := new(corev1.ConfigMap)
		m.configMaps, obj = append(m.configMaps, c), c
	case "policy/v1 PodDisruptionBudget":
		b := new(policyv1.PodDisruptionBudget)
		m.budgets, obj = append(m.budgets, b), b
	default:
		return fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	// sigs.k8s.io/yaml alone matches field names case-insensitively
	// (encoding/json); the API server does not.
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := json.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeAll decodes every document of a YAML stream into m.
func decodeAll(b []byte, m *manifests) error {
	var errs []error
	for i, doc := range docSeparator.Split(string(b), -1) {
		if len(bytes.TrimSpace(stripComments([]byte(doc)))) == 0 {
			continue
		}
		if err := decode([]byte(doc), m); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// loadFiles decodes the named files.
func loadFiles(t *testing.T, files ...string) manifests {
	t.Helper()
	var m manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeAll(b, &m); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	return m
}

// render runs kustomize build on dir and decodes its output.
func render(t *testing.T, dir string) manifests {
	t.Helper()
	out, err := kustomizeBuild(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	if err := decodeAll(out, &m); err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return m
}

func kustomizeBuild(ctx context.Context, dir string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "run", kustomize, "build", abs)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go run %s build %s: %w\n%s", kustomize, dir, err, stderr.Bytes())
	}
	return out, nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, nil)
}

func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, doc string }{
		{"misspelled field", "apiVersion: v1\nkind: Service\nspec:\n  selctor: {a: b}\n"},
		{"field in the wrong place", "apiVersion: v1\nkind: Secret\nspec: {}\n"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: one\n"},
		{"misplaced claim template", "apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  template:\n    spec:\n      volumeClaimTemplates: []\n"},
		{"field with the wrong case", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          securityContext:\n            readOnlyRootFileSystem: true\n"},
		{"duplicate field", "apiVersion: v1\nkind: Service\nspec:\n  type: ClusterIP\n  type: LoadBalancer\n"},
		{"misspelled budget field", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nspec:\n  maxUnavialable: 1\n"},
		{"unknown kind", "apiVersion: v1\nkind: Sekret\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := decode([]byte(tc.doc), new(manifests)); err == nil {
				t.Errorf("decode(%q) = nil, want an error", tc.doc)
			}
		})
	}
}

// TestRenderIsStrict checks that the render path fails on what a typo in a
// kustomization or in a patch produces: kustomize refuses an unknown field in
// kustomization.yaml, and a patch that adds a misspelled field renders but
// does not decode.
func TestRenderIsStrict(t *testing.T) {
	t.Parallel()
	deployment := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          image: a\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"unknown kustomization field", map[string]string{
			"kustomization.yaml": "resourcez: [a.yaml]\n",
			"a.yaml":             deployment,
		}},
		{"misspelled field in a patch", map[string]string{
			"kustomization.yaml": "resources: [a.yaml]\npatches: [{path: p.yaml}]\n",
			"a.yaml":             deployment,
			"p.yaml":             "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: s\n          restartPolcy: Always\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := kustomizeBuild(t.Context(), dir)
			if err == nil {
				err = decodeAll(out, new(manifests))
			}
			if err == nil {
				t.Errorf("kustomize build and decode of %v succeeded, want an error", tc.files)
			}
		})
	}
}

// workload is a Deployment's or StatefulSet's pod template with what the
// checks need.
type workload struct {
	kind, name string
	replicas   int32
	labels     map[string]string
	pod        corev1.PodSpec
	claims     []corev1.PersistentVolumeClaim // a StatefulSet's volumeClaimTemplates
}

func workloads(m manifests) []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, replicas(d.Spec.Replicas), d.Spec.Template.Labels, d.Spec.Template.Spec, nil})
	}
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, replicas(s.Spec.Replicas), s.Spec.Template.Labels, s.Spec.Template.Spec, s.Spec.VolumeClaimTemplates})
	}
	return ws
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// exampleSecrets are the Secrets of the *.example.yaml files, which every
// variant's secret volumes must name.
func exampleSecrets(t *testing.T) map[string]*corev1.Secret {
	t.Helper()
	files, err := filepath.Glob("*.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("*/*.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := loadFiles(t, append(files, more...)...)
	secrets := map[string]*corev1.Secret{}
	for _, s := range m.secrets {
		secrets[s.Name] = s
	}
	return secrets
}

// TestVariants renders every variant and checks the sidecar in each workload
// that has one, then what the variant is for.
func TestVariants(t *testing.T) {
	t.Parallel()
	secrets := exampleSecrets(t)
	settings := sidecarSettings(t)
	for _, name := range []string{"chronoshub-credentials", "chronoshub-webhook-tls"} {
		if secrets[name] == nil {
			t.Fatalf("secret %q is not in secret.example.yaml", name)
		}
	}
	if s := secrets["chronoshub-webhook-tls"]; s.Type != corev1.SecretTypeTLS {
		t.Errorf("chronoshub-webhook-tls has type %q, want %q", s.Type, corev1.SecretTypeTLS)
	}

	variants := []struct {
		name     string
		sidecars int // workloads with the sidecar
		check    func(*testing.T, manifests, workload)
	}{
		{"single-pod", 1, checkSinglePod},
		{"add-to-deployment", 1, checkAddToDeployment},
		{"scaled", 1, checkScaled},
		{"statefulset", 1, checkStatefulSet},
	}
	// Rendered one after the other: on a cold cache the first go run builds
	// kustomize, and the others reuse it.
	rendered := map[string]manifests{}
	for _, v := range variants {
		start := time.Now()
		if v.name == "single-pod" {
			rendered[v.name] = loadFiles(t, singlePod...)
			continue
		}
		if !slices.Contains(kustomizations, v.name) {
			t.Fatalf("variant %s is not in kustomizations", v.name)
		}
		rendered[v.name] = render(t, v.name)
		t.Logf("kustomize build %s: %v", v.name, time.Since(start).Round(time.Millisecond))
	}

	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			m := rendered[v.name]
			var with []workload
			for _, w := range workloads(m) {
				checkPodSecurity(t, w)
				if slices.ContainsFunc(w.pod.InitContainers, isSidecar) || slices.ContainsFunc(w.pod.Containers, isSidecar) {
					with = append(with, w)
				}
			}
			if len(with) != v.sidecars {
				t.Fatalf("%d workloads have a %s container, want %d", len(with), sidecarName, v.sidecars)
			}
			for _, w := range with {
				t.Run(w.kind+"/"+w.name, func(t *testing.T) { checkSidecar(t, w, m.services, secrets, settings) })
			}
			v.check(t, m, with[0])
		})
	}
}

// TestEveryFileIsChecked fails on a manifest that no test reads: every YAML
// file here is a single-pod file, an example Secrets file, or in a
// kustomization that TestVariants renders (or the component they use).
func TestEveryFileIsChecked(t *testing.T) {
	t.Parallel()
	top, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range top {
		if !slices.Contains(singlePod, f) && !strings.HasSuffix(f, ".example.yaml") {
			t.Errorf("%s is not checked: add it to singlePod or a kustomization", f)
		}
	}
	dirs, err := filepath.Glob("*/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range dirs {
		dir := filepath.Dir(k)
		if dir != component && !slices.Contains(kustomizations, dir) {
			t.Errorf("%s is not rendered: add it to kustomizations", dir)
		}
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		var kz struct {
			Resources []string
			Patches   []struct{ Path string }
		}
		if err := yaml.Unmarshal(b, &kz); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		used := slices.Clone(kz.Resources)
		for _, p := range kz.Patches {
			used = append(used, p.Path)
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			base := filepath.Base(f)
			if base != "kustomization.yaml" && !strings.HasSuffix(base, ".example.yaml") && !slices.Contains(used, base) {
				t.Errorf("%s is not in %s's resources or patches", f, k)
			}
		}
	}
	if len(dirs) != len(kustomizations)+1 {
		t.Errorf("found kustomizations %v, want %v and %s", dirs, kustomizations, component)
	}
}

func isSidecar(c corev1.Container) bool { return c.Name == sidecarName }

// checkSidecar checks the sidecar container of w: its settings exist, a native sidecar, the API
// on loopback, credentials from mounted Secret files, probes, resources, the
// data dir on a volume, and a Service that exposes only its webhook.
func checkSidecar(t *testing.T, w workload, services []*corev1.Service, secrets map[string]*corev1.Secret, settings map[string]bool) {
	pod := w.pod
	if slices.ContainsFunc(pod.Containers, isSidecar) {
		t.Fatalf("%s is a regular container; make it a native sidecar (an init container with restartPolicy: Always)", sidecarName)
	}
	sidecar := pod.InitContainers[slices.IndexFunc(pod.InitContainers, isSidecar)]
	env := map[string]corev1.EnvVar{}
	for _, e := range sidecar.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s is set twice", e.Name)
		}
		env[e.Name] = e
	}

	t.Run("settings exist", func(t *testing.T) {
		for _, e := range sidecar.Env {
			if strings.HasPrefix(e.Name, "CHRONOSHUB_") && !settings[e.Name] {
				t.Errorf("%s is not a setting of serve --help: the sidecar would ignore it", e.Name)
			}
		}
	})

	t.Run("settings go together", func(t *testing.T) {
		for _, p := range configProblems(t, sidecar.Env) {
			t.Errorf("serve refuses the manifest's settings: %s", p)
		}
	})

	t.Run("native sidecar", func(t *testing.T) {
		if p := sidecar.RestartPolicy; p == nil || *p != corev1.ContainerRestartPolicyAlways {
			t.Errorf("restartPolicy = %v, want Always", p)
		}
		if len(pod.Containers) == 0 {
			t.Error("the pod has no app container")
		}
	})

	t.Run("app API on loopback only", func(t *testing.T) {
		if got := env["CHRONOSHUB_GRPC_ADDR"].Value; got != "127.0.0.1:50051" {
			t.Errorf("CHRONOSHUB_GRPC_ADDR = %q, want 127.0.0.1:50051", got)
		}
		if got := env["CHRONOSHUB_HTTP_ADDR"].Value; !strings.HasPrefix(got, "127.0.0.1:") {
			t.Errorf("CHRONOSHUB_HTTP_ADDR = %q, want a loopback address", got)
		}
		if _, ok := env["CHRONOSHUB_ALLOW_REMOTE_API"]; ok {
			t.Error("CHRONOSHUB_ALLOW_REMOTE_API is set")
		}
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			for _, p := range c.Ports {
				if p.ContainerPort == 50051 || p.ContainerPort == 50052 {
					t.Errorf("container %s declares port %d; the app API must stay inside the pod", c.Name, p.ContainerPort)
				}
			}
		}
		for _, svc := range selecting(services, w.labels) {
			for _, p := range svc.Spec.Ports {
				if tp := p.TargetPort.String(); tp != "webhook" && tp != "8443" {
					t.Errorf("service %s port %s targets %s, want only the webhook port", svc.Name, p.Name, tp)
				}
			}
		}
	})

	t.Run("credentials are files", func(t *testing.T) {
		for _, e := range sidecar.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("%s comes from a secret as an environment value; mount it as a file", e.Name)
			}
		}
		for _, name := range []string{"CHRONOSHUB_API_KEY", "CHRONOSHUB_WEBHOOK_SECRET", "CHRONOSHUB_API_TOKEN"} {
			if _, ok := env[name]; ok {
				t.Errorf("%s is set; use %s_FILE", name, name)
			}
		}
		want := map[string]struct{ secret, key string }{
			"CHRONOSHUB_API_KEY_FILE":        {"chronoshub-credentials", "api-key"},
			"CHRONOSHUB_WEBHOOK_SECRET_FILE": {"chronoshub-credentials", "webhook-secret"},
			"CHRONOSHUB_TLS_CERT_FILE":       {"chronoshub-webhook-tls", corev1.TLSCertKey},
			"CHRONOSHUB_TLS_KEY_FILE":        {"chronoshub-webhook-tls", corev1.TLSPrivateKeyKey},
		}
		// Every other *_FILE setting (NATS credentials and TLS) must be a
		// mounted key of an example Secret too.
		for name := range env {
			if _, ok := want[name]; !ok && strings.HasSuffix(name, "_FILE") {
				want[name] = struct{ secret, key string }{}
			}
		}
		for name, w := range want {
			path := env[name].Value
			secret, key := mountedSecretKey(pod, sidecar, path)
			if w.secret != "" && (secret != w.secret || key != w.key) {
				t.Errorf("%s = %q is key %q of secret %q, want key %q of secret %q", name, path, key, secret, w.key, w.secret)
				continue
			}
			if secret == "" {
				t.Errorf("%s = %q is not a file of a mounted secret", name, path)
				continue
			}
			if s := secrets[secret]; s == nil {
				t.Errorf("secret %q (%s) is not in an example Secrets file", secret, name)
			} else if _, ok := s.StringData[key]; !ok {
				t.Errorf("secret %q has no key %q (%s)", secret, key, name)
			}
		}
	})

	t.Run("probes on the admin port", func(t *testing.T) {
		admin := slices.IndexFunc(sidecar.Ports, func(p corev1.ContainerPort) bool { return p.Name == "admin" })
		if admin < 0 || sidecar.Ports[admin].ContainerPort != 9090 || env["CHRONOSHUB_ADMIN_ADDR"].Value != ":9090" {
			t.Fatalf("the admin port is not 9090 (ports %v, CHRONOSHUB_ADMIN_ADDR %q)", sidecar.Ports, env["CHRONOSHUB_ADMIN_ADDR"].Value)
		}
		for _, tc := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			// The startup probe holds the app's containers back until the
			// sidecar is ready.
			{"startup", sidecar.StartupProbe, "/readyz"},
			{"readiness", sidecar.ReadinessProbe, "/readyz"},
			{"liveness", sidecar.LivenessProbe, "/healthz"},
		} {
			if tc.probe == nil || tc.probe.HTTPGet == nil {
				t.Errorf("%s probe is not an HTTP GET", tc.name)
				continue
			}
			if g := tc.probe.HTTPGet; g.Path != tc.path || g.Port.String() != "admin" {
				t.Errorf("%s probe = GET %s on port %s, want GET %s on port admin", tc.name, g.Path, g.Port.String(), tc.path)
			}
		}
	})

	t.Run("webhook exposed", func(t *testing.T) {
		if !slices.ContainsFunc(sidecar.Ports, func(p corev1.ContainerPort) bool { return p.Name == "webhook" && p.ContainerPort == 8443 }) {
			t.Errorf("sidecar ports %v have no webhook port 8443", sidecar.Ports)
		}
		exposed := slices.ContainsFunc(selecting(services, w.labels), func(s *corev1.Service) bool {
			return s.Spec.ClusterIP != corev1.ClusterIPNone && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool {
				return p.TargetPort.String() == "webhook"
			})
		})
		if !exposed {
			t.Errorf("no Service selects the pod's labels %v and targets its webhook port", w.labels)
		}
	})

	t.Run("resources", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			got  resource.Quantity
			want string
		}{
			{"requests.cpu", sidecar.Resources.Requests[corev1.ResourceCPU], "100m"},
			{"requests.memory", sidecar.Resources.Requests[corev1.ResourceMemory], "64Mi"},
			{"limits.memory", sidecar.Resources.Limits[corev1.ResourceMemory], "256Mi"},
		} {
			if want := resource.MustParse(tc.want); tc.got.Cmp(want) != 0 {
				t.Errorf("sidecar %s = %s, want %s", tc.name, tc.got.String(), tc.want)
			}
		}
	})

	t.Run("data dir is a volume", func(t *testing.T) {
		dir := env["CHRONOSHUB_DATA_DIR"].Value
		if env["CHRONOSHUB_NATS_URL"].Value != "" {
			// On a cluster the sidecar keeps nothing on disk; "settings go
			// together" refuses a data dir there.
			return
		}
		i := slices.IndexFunc(sidecar.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
		if dir == "" || i < 0 {
			t.Fatalf("CHRONOSHUB_DATA_DIR = %q is not a mount path of the sidecar", dir)
		}
		name := sidecar.VolumeMounts[i].Name
		v, claim := volume(pod, name), claimTemplate(w, name)
		switch {
		case v != nil && claim != nil:
			t.Errorf("the data dir's volume %q is both a pod volume and a claim template", name)
		case claim != nil:
		case v == nil || (v.EmptyDir == nil && v.PersistentVolumeClaim == nil):
			t.Errorf("the data dir's volume %q is not an emptyDir, a persistentVolumeClaim or a claim template", name)
		}
	})

	t.Run("security context", func(t *testing.T) {
		var user *int64
		if pod.SecurityContext != nil {
			user = pod.SecurityContext.RunAsUser
		}
		if u := firstInt(sidecar.SecurityContext.RunAsUser, user); u != 65532 {
			t.Errorf("the sidecar runs as user %d, want 65532 (the image's nonroot user)", u)
		}
	})
}

// checkPodSecurity checks every container of w (the sidecar, the app, NATS):
// non-root, read-only root filesystem, no privilege escalation, no
// capabilities, RuntimeDefault seccomp, no service account token.
func checkPodSecurity(t *testing.T, w workload) {
	t.Helper()
	psc := w.pod.SecurityContext
	if psc == nil {
		psc = new(corev1.PodSecurityContext)
	}
	if w.pod.AutomountServiceAccountToken == nil || *w.pod.AutomountServiceAccountToken {
		t.Errorf("%s %s: automountServiceAccountToken is not false", w.kind, w.name)
	}
	for _, c := range slices.Concat(w.pod.InitContainers, w.pod.Containers) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s %s: container %s has no securityContext", w.kind, w.name, c.Name)
			continue
		}
		if !firstBool(sc.RunAsNonRoot, psc.RunAsNonRoot) {
			t.Errorf("%s %s: container %s: runAsNonRoot is not true", w.kind, w.name, c.Name)
		}
		if firstInt(sc.RunAsUser, psc.RunAsUser) == 0 {
			t.Errorf("%s %s: container %s: no non-zero runAsUser", w.kind, w.name, c.Name)
		}
		if !firstBool(sc.ReadOnlyRootFilesystem) {
			t.Errorf("%s %s: container %s: readOnlyRootFilesystem is not true", w.kind, w.name, c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s %s: container %s: allowPrivilegeEscalation is not false", w.kind, w.name, c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s %s: container %s: capabilities = %+v, want drop [ALL]", w.kind, w.name, c.Name, sc.Capabilities)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s %s: container %s: seccompProfile is not RuntimeDefault", w.kind, w.name, c.Name)
		}
	}
}

func checkSinglePod(t *testing.T, m manifests, w workload) {
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.statefulSets) != 0 {
		t.Errorf("got %d deployments, %d services, %d statefulsets; want 1, 1, 0", len(m.deployments), len(m.services), len(m.statefulSets))
	}
	if w.replicas != 1 {
		t.Errorf("replicas = %d, want 1: each pod has its own log on an emptyDir", w.replicas)
	}
}

// checkAddToDeployment checks that the component adds the sidecar and its
// volumes and keeps everything of the partner's Deployment.
func checkAddToDeployment(t *testing.T, m manifests, w workload) {
	original := loadFiles(t, "add-to-deployment/my-app.yaml").deployments[0].Spec.Template.Spec
	for _, c := range original.InitContainers {
		i := slices.IndexFunc(w.pod.InitContainers, func(r corev1.Container) bool { return r.Name == c.Name })
		if i < 0 || !slices.Equal(w.pod.InitContainers[i].Args, c.Args) {
			t.Errorf("the partner's init container %s is lost or changed", c.Name)
		}
	}
	for _, c := range original.Containers {
		i := slices.IndexFunc(w.pod.Containers, func(r corev1.Container) bool { return r.Name == c.Name })
		if i < 0 || len(w.pod.Containers[i].VolumeMounts) != len(c.VolumeMounts) || len(w.pod.Containers[i].Env) != len(c.Env) {
			t.Errorf("the partner's container %s is lost or changed", c.Name)
		}
	}
	if len(w.pod.Containers) != len(original.Containers) {
		t.Errorf("%d containers after the component, want the partner's %d", len(w.pod.Containers), len(original.Containers))
	}
	if w.pod.InitContainers[0].Name != sidecarName {
		t.Errorf("the first init container is %s, want %s (so that the others can use it)", w.pod.InitContainers[0].Name, sidecarName)
	}
	// kustomization.yaml's own settings reach the sidecar.
	sidecar := w.pod.InitContainers[0]
	if want := "registry.example.com/my-team/chronoshub-sidecar:1.0.0"; sidecar.Image != want {
		t.Errorf("sidecar image = %q, want %q (kustomization.yaml's images)", sidecar.Image, want)
	}
	if i := slices.IndexFunc(sidecar.Env, func(e corev1.EnvVar) bool { return e.Name == "CHRONOSHUB_BASE_URL" }); i < 0 || sidecar.Env[i].Value != "https://staging.chronoshub.example" {
		t.Error("CHRONOSHUB_BASE_URL is not kustomization.yaml's https://staging.chronoshub.example")
	}
	for _, v := range original.Volumes {
		if got := volume(w.pod, v.Name); got == nil || got.EmptyDir == nil {
			t.Errorf("the partner's volume %s is lost or changed", v.Name)
		}
	}
	for _, v := range w.pod.Volumes {
		if volume(original, v.Name) == nil && !strings.HasPrefix(v.Name, "chronoshub-") {
			t.Errorf("the component adds volume %q; its volumes are named chronoshub-* so that they never merge into the partner's", v.Name)
		}
	}
}

// checkScaled checks the app replicas on the NATS cluster: the sidecar's
// server list names every NATS pod, replication matches the cluster,
// replicas and NATS servers spread over nodes, disruption budgets, and the
// NATS StatefulSet itself (volumes, headless Service; nats.conf is
// TestNATSConfig's).
func checkScaled(t *testing.T, m manifests, app workload) {
	if app.replicas < 2 {
		t.Errorf("my-app has %d replicas, want several", app.replicas)
	}
	i := slices.IndexFunc(m.statefulSets, func(s *appsv1.StatefulSet) bool { return s.Name == "nats" })
	if i < 0 {
		t.Fatal("no StatefulSet nats")
	}
	nats := m.statefulSets[i]
	natsPod := nats.Spec.Template.Spec
	natsReplicas := replicas(nats.Spec.Replicas)
	if natsReplicas != 3 {
		t.Errorf("nats has %d replicas, want 3 (a JetStream quorum survives one lost server)", natsReplicas)
	}
	sidecar := app.pod.InitContainers[slices.IndexFunc(app.pod.InitContainers, isSidecar)]
	env := map[string]string{}
	for _, e := range sidecar.Env {
		env[e.Name] = e.Value
	}

	t.Run("sidecar on the NATS cluster", func(t *testing.T) {
		client := containerPort(natsPod, "nats", "client")
		var want []string
		for i := range natsReplicas {
			want = append(want, fmt.Sprintf("%s-%d.%s:%d", nats.Name, i, nats.Spec.ServiceName, client))
		}
		var got []string
		for u := range strings.SplitSeq(env["CHRONOSHUB_NATS_URL"], ",") {
			p, err := url.Parse(strings.TrimSpace(u))
			if err != nil || p.Scheme != "tls" {
				t.Errorf("CHRONOSHUB_NATS_URL has %q, want tls://host:port", u)
				continue
			}
			got = append(got, p.Host)
		}
		if !slices.Equal(got, want) {
			t.Errorf("CHRONOSHUB_NATS_URL servers = %v, want every NATS pod %v", got, want)
		}
		if r := env["CHRONOSHUB_NATS_REPLICAS"]; r != strconv.Itoa(int(natsReplicas)) {
			t.Errorf("CHRONOSHUB_NATS_REPLICAS = %q, want %d (every server)", r, natsReplicas)
		}
		for _, name := range []string{"CHRONOSHUB_NATS_CREDS_FILE", "CHRONOSHUB_NATS_TLS_CA_FILE"} {
			if env[name] == "" {
				t.Errorf("%s is not set", name)
			}
		}
	})

	t.Run("headless service", func(t *testing.T) {
		i := slices.IndexFunc(m.services, func(s *corev1.Service) bool { return s.Name == nats.Spec.ServiceName })
		if i < 0 {
			t.Fatalf("no Service %q (the StatefulSet's serviceName)", nats.Spec.ServiceName)
		}
		svc := m.services[i]
		if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v; want None, true", svc.Name, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
		}
		if len(selecting([]*corev1.Service{svc}, nats.Spec.Template.Labels)) == 0 {
			t.Errorf("Service %s does not select the NATS pods", svc.Name)
		}
		for _, name := range []string{"client", "cluster"} {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.String() == name }) {
				t.Errorf("Service %s has no port for %s", svc.Name, name)
			}
		}
	})

	t.Run("spread over nodes", func(t *testing.T) {
		if !requiredAntiAffinity(natsPod, nats.Spec.Template.Labels) {
			t.Error("the NATS pods have no required anti-affinity on kubernetes.io/hostname against each other")
		}
		if !spreadOverNodes(app.pod, app.labels) {
			t.Error("the app replicas have no DoNotSchedule topology spread over kubernetes.io/hostname")
		}
	})

	t.Run("disruption budgets", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			labels map[string]string
		}{{"my-app", app.labels}, {"nats", nats.Spec.Template.Labels}} {
			i := slices.IndexFunc(m.budgets, func(b *policyv1.PodDisruptionBudget) bool {
				s, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
				return err == nil && !s.Empty() && s.Matches(labels.Set(tc.labels))
			})
			if i < 0 {
				t.Errorf("no PodDisruptionBudget selects the %s pods", tc.name)
				continue
			}
			if b := m.budgets[i]; b.Spec.MaxUnavailable == nil || b.Spec.MaxUnavailable.IntValue() != 1 {
				t.Errorf("PodDisruptionBudget %s: maxUnavailable %v, want 1", b.Name, b.Spec.MaxUnavailable)
			}
		}
	})

	t.Run("NATS storage", func(t *testing.T) {
		if nats.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("podManagementPolicy = %q, want Parallel (the cluster forms only with a quorum)", nats.Spec.PodManagementPolicy)
		}
		if len(nats.Spec.VolumeClaimTemplates) != 1 {
			t.Fatalf("nats has %d volumeClaimTemplates, want 1", len(nats.Spec.VolumeClaimTemplates))
		}
		if p := nats.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
			t.Errorf("persistentVolumeClaimRetentionPolicy = %+v, want Retain, Retain", p)
		}
	})
	// nats.conf: TestNATSConfig.
}

func checkStatefulSet(t *testing.T, m manifests, w workload) {
	if w.kind != "StatefulSet" {
		t.Fatalf("the sidecar is in a %s, want a StatefulSet", w.kind)
	}
	s := m.statefulSets[0]
	sidecar := w.pod.InitContainers[slices.IndexFunc(w.pod.InitContainers, isSidecar)]
	env := map[string]string{}
	for _, e := range sidecar.Env {
		env[e.Name] = e.Value
	}
	if env["CHRONOSHUB_SYNC"] != "always" {
		t.Errorf("CHRONOSHUB_SYNC = %q, want always (the log outlives the node)", env["CHRONOSHUB_SYNC"])
	}
	if _, ok := env["CHRONOSHUB_NATS_URL"]; ok {
		t.Error("CHRONOSHUB_NATS_URL is set; this variant keeps the log in the pod")
	}
	i := slices.IndexFunc(sidecar.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == env["CHRONOSHUB_DATA_DIR"] })
	if i < 0 || claimTemplate(w, sidecar.VolumeMounts[i].Name) == nil {
		t.Errorf("the data dir %q is not on a volumeClaimTemplate", env["CHRONOSHUB_DATA_DIR"])
	}
	if psc := w.pod.SecurityContext; psc == nil || firstInt(psc.FSGroup) != 65532 {
		t.Error("pod fsGroup is not 65532: the sidecar cannot write the volume")
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("persistentVolumeClaimRetentionPolicy = %+v, want Retain, Retain (a removed pod's events are on its volume)", p)
	}
	i = slices.IndexFunc(m.services, func(svc *corev1.Service) bool { return svc.Name == s.Spec.ServiceName })
	if i < 0 || m.services[i].Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q is not a headless Service", s.Spec.ServiceName)
	}
}

// selecting returns the services whose non-empty selector matches labels.
func selecting(services []*corev1.Service, podLabels map[string]string) []*corev1.Service {
	var out []*corev1.Service
	for _, s := range services {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			out = append(out, s)
		}
	}
	return out
}

func requiredAntiAffinity(pod corev1.PodSpec, podLabels map[string]string) bool {
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
		return false
	}
	return slices.ContainsFunc(pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, func(term corev1.PodAffinityTerm) bool {
		s, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		return err == nil && !s.Empty() && term.TopologyKey == corev1.LabelHostname && s.Matches(labels.Set(podLabels))
	})
}

func spreadOverNodes(pod corev1.PodSpec, podLabels map[string]string) bool {
	return slices.ContainsFunc(pod.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
		s, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		return err == nil && !s.Empty() && c.TopologyKey == corev1.LabelHostname && c.MaxSkew == 1 &&
			c.WhenUnsatisfiable == corev1.DoNotSchedule && s.Matches(labels.Set(podLabels))
	})
}

// containerPort returns the number of the named port of container c in pod.
func containerPort(pod corev1.PodSpec, c, port string) int32 {
	for _, ct := range pod.Containers {
		if ct.Name != c {
			continue
		}
		for _, p := range ct.Ports {
			if p.Name == port {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// mountedSecretKey returns the secret and key that path names in container
// c's mounts of secret volumes.
func mountedSecretKey(pod corev1.PodSpec, c corev1.Container, path string) (secret, key string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		v := volume(pod, m.Name)
		if v == nil || v.Secret == nil {
			return "", ""
		}
		if len(v.Secret.Items) == 0 {
			return v.Secret.SecretName, rel
		}
		for _, item := range v.Secret.Items {
			if item.Path == rel {
				return v.Secret.SecretName, item.Key
			}
		}
		return "", "" // with items, only they are in the volume
	}
	return "", ""
}

func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func claimTemplate(w workload, name string) *corev1.PersistentVolumeClaim {
	for i := range w.claims {
		if w.claims[i].Name == name {
			return &w.claims[i]
		}
	}
	return nil
}

func firstBool(bs ...*bool) bool {
	for _, b := range bs {
		if b != nil {
			return *b
		}
	}
	return false
}

func firstInt(is ...*int64) int64 {
	for _, i := range is {
		if i != nil {
			return *i
		}
	}
	return 0
}
