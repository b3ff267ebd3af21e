package kubernetes

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestNATSConfig loads scaled/'s nats.conf with nats-server's own parser (the
// release the sidecar embeds), laid out as the StatefulSet mounts it: a real
// operator, accounts and certificate stand in for the Secrets. An unknown or
// misspelled setting is an error there. It is not parallel: nats.conf reads
// the server name from $POD_NAME, which the test sets.
func TestNATSConfig(t *testing.T) {
	m := render(t, "scaled")
	i := slices.IndexFunc(m.statefulSets, func(s *appsv1.StatefulSet) bool { return s.Name == "nats" })
	if i < 0 {
		t.Fatal("no StatefulSet nats")
	}
	checkNATSConfig(t, m, m.statefulSets[i])

	t.Run("parser is strict", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte("jetstream {\n  store_dirr: /data\n}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := server.ProcessConfigFile(path); err == nil {
			t.Error("ProcessConfigFile accepted a misspelled setting")
		}
	})
}

// checkNATSConfig writes the nats.conf of the ConfigMap that nats mounts, and
// the files of its other volumes, under a temporary root at the paths the
// container sees, parses it and checks it against the StatefulSet.
func checkNATSConfig(t *testing.T, m manifests, nats *appsv1.StatefulSet) {
	t.Setenv("POD_NAME", nats.Name+"-1")
	pod := nats.Spec.Template.Spec
	i := slices.IndexFunc(pod.Containers, func(c corev1.Container) bool { return c.Name == "nats" })
	if i < 0 {
		t.Fatal("no container nats")
	}
	c := pod.Containers[i]
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Error("POD_NAME (nats.conf's server_name) is not the pod's name")
	}
	confPath := ""
	if i := slices.Index(c.Args, "--config"); i >= 0 && i+1 < len(c.Args) {
		confPath = c.Args[i+1]
	}
	if confPath == "" {
		t.Fatalf("nats args %v have no --config", c.Args)
	}

	root := t.TempDir()
	files := natsFiles(t)
	conf := ""
	for _, mnt := range c.VolumeMounts {
		dir := filepath.Join(root, mnt.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		v := volume(pod, mnt.Name)
		switch {
		case v != nil && v.ConfigMap != nil:
			j := slices.IndexFunc(m.configMaps, func(cm *corev1.ConfigMap) bool { return cm.Name == v.ConfigMap.Name })
			if j < 0 {
				t.Fatalf("ConfigMap %q is not in the render", v.ConfigMap.Name)
			}
			for key, data := range m.configMaps[j].Data {
				if filepath.Join(mnt.MountPath, key) == confPath {
					conf = data
				}
			}
		case v != nil && v.Secret != nil:
			for key, data := range files[v.Secret.SecretName] {
				if err := os.WriteFile(filepath.Join(dir, key), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if files[v.Secret.SecretName] == nil {
				t.Errorf("the test has no stand-in for Secret %q", v.Secret.SecretName)
			}
		}
	}
	if conf == "" {
		t.Fatalf("--config %s is not a key of a mounted ConfigMap", confPath)
	}
	// The absolute paths in nats.conf are the container's mount paths: move
	// them under root.
	for _, mnt := range c.VolumeMounts {
		conf = strings.ReplaceAll(conf, mnt.MountPath+"/", filepath.Join(root, mnt.MountPath)+"/")
	}
	path := filepath.Join(root, confPath)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses nats.conf: %v", err)
	}

	if opts.ServerName != nats.Name+"-1" {
		t.Errorf("server_name = %q, want the pod's name %s-1", opts.ServerName, nats.Name)
	}
	for _, tc := range []struct {
		name string
		got  int
		port string
	}{
		{"listen", opts.Port, "client"},
		{"cluster.listen", opts.Cluster.Port, "cluster"},
		{"http_port", opts.HTTPPort, "monitor"},
	} {
		if want := containerPort(pod, "nats", tc.port); tc.got != int(want) {
			t.Errorf("%s port = %d, want the container's %s port %d", tc.name, tc.got, tc.port, want)
		}
	}
	if !opts.JetStream {
		t.Error("JetStream is not enabled")
	}
	if opts.TLSConfig == nil || opts.Cluster.TLSConfig == nil {
		t.Error("client or cluster connections are not TLS")
	}
	if len(opts.TrustedOperators) != 1 || opts.SystemAccount == "" || opts.AccountResolver == nil {
		t.Error("no operator, system account and account resolver (the sidecar authenticates with a creds file)")
	}
	if opts.Cluster.Name == "" {
		t.Error("the cluster has no name")
	}

	t.Run("store on the volume", func(t *testing.T) {
		claims := nats.Spec.VolumeClaimTemplates
		j := slices.IndexFunc(c.VolumeMounts, func(mnt corev1.VolumeMount) bool {
			return len(claims) > 0 && mnt.Name == claims[0].Name
		})
		if j < 0 {
			t.Fatal("nats does not mount its volumeClaimTemplate")
		}
		mountDir := filepath.Join(root, c.VolumeMounts[j].MountPath)
		if !strings.HasPrefix(opts.StoreDir, mountDir+"/") && opts.StoreDir != mountDir {
			t.Errorf("store_dir %s is not on the volume (mounted at %s)", strings.TrimPrefix(opts.StoreDir, root), c.VolumeMounts[j].MountPath)
		}
		size := claims[0].Spec.Resources.Requests[corev1.ResourceStorage]
		if opts.JetStreamMaxStore <= 0 || opts.JetStreamMaxStore >= size.Value() {
			t.Errorf("max_file_store = %d, want a limit below the volume's %s", opts.JetStreamMaxStore, size.String())
		}
	})

	t.Run("routes to every server", func(t *testing.T) {
		var got, want []string
		for _, r := range opts.Routes {
			got = append(got, r.Host)
		}
		for i := range replicas(nats.Spec.Replicas) {
			want = append(want, fmt.Sprintf("%s-%d.%s:%d", nats.Name, i, nats.Spec.ServiceName, opts.Cluster.Port))
		}
		if !slices.Equal(got, want) {
			t.Errorf("routes = %v, want %v", got, want)
		}
	})

	t.Run("lame duck within the grace period", func(t *testing.T) {
		grace := time.Duration(firstInt(pod.TerminationGracePeriodSeconds)) * time.Second
		if grace <= opts.LameDuckDuration {
			t.Errorf("terminationGracePeriodSeconds %v is not more than lame_duck_duration %v", grace, opts.LameDuckDuration)
		}
	})
}

// natsFiles returns stand-ins for the Secrets nats mounts, by Secret and key:
// what `nsc generate config --mem-resolver` writes, with a real operator and
// accounts, and a self-signed certificate.
func natsFiles(t *testing.T) map[string]map[string][]byte {
	t.Helper()
	operator, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	operatorPub, err := operator.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	account := func(name string, jetstream bool) (pub, token string) {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		pub, err = kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		claims := jwt.NewAccountClaims(pub)
		claims.Name = name
		if jetstream {
			claims.Limits.JetStreamLimits.DiskStorage = -1
			claims.Limits.JetStreamLimits.MemoryStorage = -1
		}
		token, err = claims.Encode(operator)
		if err != nil {
			t.Fatal(err)
		}
		return pub, token
	}
	sysPub, sysJWT := account("SYS", false)
	appPub, appJWT := account("chronoshub-sidecar", true)
	oc := jwt.NewOperatorClaims(operatorPub)
	oc.Name = "chronoshub"
	oc.SystemAccount = sysPub
	operatorJWT, err := oc.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	resolver := fmt.Sprintf("operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		operatorJWT, sysPub, sysPub, sysJWT, appPub, appJWT)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nats"},
		DNSNames:              []string{"*.nats-headless"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return map[string]map[string][]byte{
		"nats-resolver": {"resolver.conf": []byte(resolver)},
		"nats-server-tls": {
			corev1.TLSCertKey:       cert,
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
			"ca.crt":                cert,
		},
	}
}
