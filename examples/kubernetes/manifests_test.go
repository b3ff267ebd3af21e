package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// manifests are the decoded documents of every *.yaml file here.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	secrets     []*corev1.Secret
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode decodes one YAML document strictly into the typed object for its
// kind: an unknown or misspelled field, or a wrong type, is an error.
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
	case "v1 Service":
		s := new(corev1.Service)
		m.services, obj = append(m.services, s), s
	case "v1 Secret":
		s := new(corev1.Secret)
		m.secrets, obj = append(m.secrets, s), s
	default:
		return fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	return yaml.UnmarshalStrict(doc, obj)
}

func load(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.yaml files")
	}
	var m manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			if len(bytes.TrimSpace(stripComments([]byte(doc)))) == 0 {
				continue
			}
			if err := decode([]byte(doc), &m); err != nil {
				t.Errorf("%s: document %d: %v", f, i+1, err)
			}
		}
	}
	return m
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
	for _, tc := range []struct{ name, doc string }{
		{"misspelled field", "apiVersion: v1\nkind: Service\nspec:\n  selctor: {a: b}\n"},
		{"field in the wrong place", "apiVersion: v1\nkind: Secret\nspec: {}\n"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: one\n"},
		{"unknown kind", "apiVersion: v1\nkind: Sekret\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := decode([]byte(tc.doc), new(manifests)); err == nil {
				t.Errorf("decode(%q) = nil, want an error", tc.doc)
			}
		})
	}
}

func TestManifests(t *testing.T) {
	m := load(t)
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.secrets) != 2 {
		t.Fatalf("got %d deployments, %d services, %d secrets; want 1, 1, 2", len(m.deployments), len(m.services), len(m.secrets))
	}
	d, svc := m.deployments[0], m.services[0]
	pod := d.Spec.Template.Spec
	secrets := map[string]*corev1.Secret{}
	for _, s := range m.secrets {
		secrets[s.Name] = s
	}

	if len(pod.Containers) != 2 {
		t.Fatalf("pod has %d containers, want 2 (the app and the sidecar)", len(pod.Containers))
	}
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == "chronoshub-sidecar" })
	if i < 0 {
		t.Fatal("no container named chronoshub-sidecar")
	}
	sidecar := pod.Containers[i]
	env := map[string]corev1.EnvVar{}
	for _, e := range sidecar.Env {
		env[e.Name] = e
	}

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
		for _, c := range pod.Containers {
			for _, p := range c.Ports {
				if p.ContainerPort == 50051 || p.ContainerPort == 50052 {
					t.Errorf("container %s declares port %d; the app API must stay inside the pod", c.Name, p.ContainerPort)
				}
			}
		}
		for _, p := range svc.Spec.Ports {
			if tp := p.TargetPort.String(); tp != "webhook" && tp != "8443" {
				t.Errorf("service port %s targets %s, want only the webhook port", p.Name, tp)
			}
		}
	})

	t.Run("secrets are files", func(t *testing.T) {
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
		for _, tc := range []struct{ env, secret, key string }{
			{"CHRONOSHUB_API_KEY_FILE", "chronoshub-credentials", "api-key"},
			{"CHRONOSHUB_WEBHOOK_SECRET_FILE", "chronoshub-credentials", "webhook-secret"},
			{"CHRONOSHUB_TLS_CERT_FILE", "chronoshub-webhook-tls", corev1.TLSCertKey},
			{"CHRONOSHUB_TLS_KEY_FILE", "chronoshub-webhook-tls", corev1.TLSPrivateKeyKey},
		} {
			path := env[tc.env].Value
			secret, key := mountedSecretKey(pod, sidecar, path)
			if secret != tc.secret || key != tc.key {
				t.Errorf("%s = %q is key %q of secret %q, want key %q of secret %q", tc.env, path, key, secret, tc.key, tc.secret)
				continue
			}
			s := secrets[secret]
			if s == nil {
				t.Errorf("secret %q is not in secret.example.yaml", secret)
			} else if _, ok := s.StringData[key]; !ok {
				t.Errorf("secret %q has no key %q", secret, key)
			}
		}
		if s := secrets["chronoshub-webhook-tls"]; s != nil && s.Type != corev1.SecretTypeTLS {
			t.Errorf("chronoshub-webhook-tls has type %q, want %q", s.Type, corev1.SecretTypeTLS)
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
		for k, v := range svc.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("service selector %s=%s does not match the pod's labels %v", k, v, d.Spec.Template.Labels)
			}
		}
		if len(svc.Spec.Selector) == 0 {
			t.Error("service has no selector")
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
		i := slices.IndexFunc(sidecar.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
		if dir == "" || i < 0 {
			t.Fatalf("CHRONOSHUB_DATA_DIR = %q is not a mount path of the sidecar", dir)
		}
		v := volume(pod, sidecar.VolumeMounts[i].Name)
		if v == nil || (v.EmptyDir == nil && v.PersistentVolumeClaim == nil) {
			t.Errorf("the data dir's volume %q is not an emptyDir or a persistentVolumeClaim", sidecar.VolumeMounts[i].Name)
		}
	})

	t.Run("security context", func(t *testing.T) {
		psc := pod.SecurityContext
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("pod seccompProfile is not RuntimeDefault")
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Error("automountServiceAccountToken is not false")
		}
		for _, c := range pod.Containers {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", c.Name)
				continue
			}
			nonRoot := firstBool(sc.RunAsNonRoot, psc.RunAsNonRoot)
			user := firstInt(sc.RunAsUser, psc.RunAsUser)
			if !nonRoot || user != 65532 {
				t.Errorf("%s: runAsNonRoot %v, runAsUser %d; want true, 65532", c.Name, nonRoot, user)
			}
			if !firstBool(sc.ReadOnlyRootFilesystem) {
				t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities = %+v, want drop [ALL]", c.Name, sc.Capabilities)
			}
		}
	})
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
		for _, item := range v.Secret.Items {
			if item.Path == rel {
				return v.Secret.SecretName, item.Key
			}
		}
		return v.Secret.SecretName, rel
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
