package kubernetes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// natsContainer returns the StatefulSet's nats container.
func natsContainer(t *testing.T, nats *appsv1.StatefulSet) corev1.Container {
	t.Helper()
	i := slices.IndexFunc(nats.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "nats" })
	if i < 0 {
		t.Fatal("no container nats")
	}
	return nats.Spec.Template.Spec.Containers[i]
}

// writeNATSLayout writes the nats.conf of the ConfigMap that nats mounts, and
// the stand-ins for the Secrets it mounts, under a temporary root at the
// paths the container sees, with the absolute paths in nats.conf moved under
// that root. It returns the path of nats.conf.
func writeNATSLayout(t *testing.T, m manifests, nats *appsv1.StatefulSet, files map[string]map[string][]byte) (root, path string) {
	t.Helper()
	pod := nats.Spec.Template.Spec
	c := natsContainer(t, nats)
	confPath := ""
	if i := slices.Index(c.Args, "--config"); i >= 0 && i+1 < len(c.Args) {
		confPath = c.Args[i+1]
	}
	if confPath == "" {
		t.Fatalf("nats args %v have no --config", c.Args)
	}
	root = t.TempDir()
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
			if files[v.Secret.SecretName] == nil {
				t.Errorf("the test has no stand-in for Secret %q", v.Secret.SecretName)
			}
			for key, data := range files[v.Secret.SecretName] {
				if err := os.WriteFile(filepath.Join(dir, key), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if conf == "" {
		t.Fatalf("--config %s is not a key of a mounted ConfigMap", confPath)
	}
	for _, mnt := range c.VolumeMounts {
		conf = strings.ReplaceAll(conf, mnt.MountPath+"/", filepath.Join(root, mnt.MountPath)+"/")
	}
	path = filepath.Join(root, confPath)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, path
}

// checkNATSConfig parses nats.conf as the StatefulSet's second pod sees it
// and checks it against the StatefulSet.
func checkNATSConfig(t *testing.T, m manifests, nats *appsv1.StatefulSet) {
	t.Setenv("POD_NAME", nats.Name+"-1")
	pod := nats.Spec.Template.Spec
	c := natsContainer(t, nats)
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Error("POD_NAME (nats.conf's server_name) is not the pod's name")
	}
	root, path := writeNATSLayout(t, m, nats, newNATSFixture(t).files)
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
	// The sidecar refuses a server that cannot take its largest event: the
	// default 1 MiB body limits plus 64 KiB of headers.
	if need := int32(1<<20 + 64<<10); opts.MaxPayload < need {
		t.Errorf("max_payload = %d, want at least %d for the sidecar's default limits", opts.MaxPayload, need)
	}
	// Every write is fsynced before it is acknowledged: NATS's default (every
	// 2 minutes) loses acknowledged webhooks when all three nodes lose power.
	if !opts.SyncAlways {
		t.Error("jetstream.sync_interval is not always: a coordinated power cut loses events answered 2xx")
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

// natsFixture holds stand-ins for the Secrets of scaled/: what
// `nsc generate config --mem-resolver` writes for a real operator, system
// account and JetStream-enabled account, a user's credentials file, and a
// self-signed certificate for the servers (also valid for 127.0.0.1).
type natsFixture struct {
	files map[string]map[string][]byte // by Secret and key
	creds []byte                       // chronoshub.creds: the sidecar's user
	ca    []byte
}

func newNATSFixture(t *testing.T) natsFixture {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	check(err)
	operatorPub, err := operator.PublicKey()
	check(err)
	account := func(name string, jetstream bool) (kp nkeys.KeyPair, pub, token string) {
		kp, err := nkeys.CreateAccount()
		check(err)
		pub, err = kp.PublicKey()
		check(err)
		claims := jwt.NewAccountClaims(pub)
		claims.Name = name
		if jetstream {
			claims.Limits.JetStreamLimits.DiskStorage = -1
			claims.Limits.JetStreamLimits.MemoryStorage = -1
		}
		token, err = claims.Encode(operator)
		check(err)
		return kp, pub, token
	}
	_, sysPub, sysJWT := account("SYS", false)
	app, appPub, appJWT := account("chronoshub-sidecar", true)
	oc := jwt.NewOperatorClaims(operatorPub)
	oc.Name = "chronoshub"
	oc.SystemAccount = sysPub
	operatorJWT, err := oc.Encode(operator)
	check(err)
	resolver := fmt.Sprintf("operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		operatorJWT, sysPub, sysPub, sysJWT, appPub, appJWT)

	user, err := nkeys.CreateUser()
	check(err)
	userPub, err := user.PublicKey()
	check(err)
	userJWT, err := jwt.NewUserClaims(userPub).Encode(app)
	check(err)
	seed, err := user.Seed()
	check(err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	check(err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nats"},
		DNSNames:              []string{"*.nats-headless"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	check(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	check(err)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return natsFixture{
		files: map[string]map[string][]byte{
			"nats-resolver": {"resolver.conf": []byte(resolver)},
			"nats-server-tls": {
				corev1.TLSCertKey:       cert,
				corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
				"ca.crt":                cert,
			},
		},
		creds: creds,
		ca:    cert,
	}
}

// TestNATSClusterForms runs scaled/'s nats.conf for real: three nats-servers
// in this process, each with the configuration its pod would get (TLS on
// clients and routes, operator-mode accounts, JetStream), on loopback, with
// the routes pointed at each other. A client with the sidecar's settings
// (every server's URL, the credentials file, the CA) then creates a stream
// replicated on every server, as the sidecar does with
// CHRONOSHUB_NATS_REPLICAS, and stores an event in it.
func TestNATSClusterForms(t *testing.T) {
	m := render(t, "scaled")
	i := slices.IndexFunc(m.statefulSets, func(s *appsv1.StatefulSet) bool { return s.Name == "nats" })
	if i < 0 {
		t.Fatal("no StatefulSet nats")
	}
	nats := m.statefulSets[i]
	n := int(replicas(nats.Spec.Replicas))
	fx := newNATSFixture(t)
	root, path := writeNATSLayout(t, m, nats, fx.files)

	// Every route names every server, so the cluster ports are chosen
	// before the servers start: bound on :0, read back and released.
	routes := make([]*url.URL, n)
	for i := range routes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		routes[i] = &url.URL{Scheme: "nats-route", Host: l.Addr().String()}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var clientURLs []string
	for i := range n {
		t.Setenv("POD_NAME", fmt.Sprintf("%s-%d", nats.Name, i))
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("nats-server refuses nats.conf: %v", err)
		}
		if len(opts.Routes) != n {
			t.Fatalf("nats.conf has %d routes, want %d", len(opts.Routes), n)
		}
		// Only the addresses change: loopback instead of the pods' names.
		opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
		opts.Cluster.Host = "127.0.0.1"
		_, port, _ := net.SplitHostPort(routes[i].Host)
		opts.Cluster.Port, _ = strconv.Atoi(port)
		opts.Routes = routes
		opts.StoreDir = filepath.Join(root, "data", strconv.Itoa(i))
		opts.NoSigs = true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %d not ready within 10s", i)
		}
		clientURLs = append(clientURLs, "tls://"+s.Addr().String())
	}

	creds := filepath.Join(root, "chronoshub.creds")
	ca := filepath.Join(root, "ca.crt")
	for f, b := range map[string][]byte{creds: fx.creds, ca: fx.ca} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := natsclient.Connect(strings.Join(clientURLs, ","), natsclient.UserCredentials(creds), natsclient.RootCAs(ca))
	if err != nil {
		t.Fatalf("connect with the sidecar's credentials and CA: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster elects its JetStream leader after the routes connect:
	// retry until the stream exists, within a deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: n, Storage: jetstream.FileStorage}
	var stream jetstream.Stream
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		stream, err = js.CreateStream(attempt, cfg)
		cancelAttempt()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no stream with %d replicas within 60s: %v", n, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if _, err := js.Publish(ctx, "events.manuscript.submitted", []byte(`{"manuscriptId":"M-1"}`)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != n-1 {
		t.Fatalf("stream cluster = %+v, want a leader and %d replicas", info.Cluster, n-1)
	}
	names := []string{info.Cluster.Leader}
	for _, r := range info.Cluster.Replicas {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	for i, name := range names {
		if want := fmt.Sprintf("%s-%d", nats.Name, i); name != want {
			t.Errorf("stream peers %v, want %s-0 … %s-%d", names, nats.Name, nats.Name, n-1)
			break
		}
	}
}
