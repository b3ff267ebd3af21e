package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
)

// eventually retries f until it returns nil, failing after 20s with its last
// error. It waits for a condition, it does not time anything.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	eventuallyWithin(t, what, 20*time.Second, f)
}

// eventuallyWithin is eventually with a deadline of limit.
func eventuallyWithin(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %s", what, err, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestCredentialFilesReload rotates the webhook secret and the API key
// files of a running sidecar: the new secret is accepted as soon as it is
// read and the previous one during the rotation grace; the next SendEvent
// uses the new key. No secret appears in anything captured.
func TestCredentialFilesReload(t *testing.T) {
	t.Parallel()
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	dir := t.TempDir()
	secretFile, keyFile := filepath.Join(dir, "webhook-secret"), filepath.Join(dir, "api-key")
	writeFile(t, secretFile, "old-secret-5d1c\n")
	writeFile(t, keyFile, "stale-api-key-0000\n")
	delete(env, "CHRONOSHUB_WEBHOOK_SECRET")
	delete(env, "CHRONOSHUB_API_KEY")
	env["CHRONOSHUB_WEBHOOK_SECRET_FILE"] = secretFile
	env["CHRONOSHUB_API_KEY_FILE"] = keyFile
	env["CHRONOSHUB_CREDENTIALS_POLL_INTERVAL"] = "20ms"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	url := "https://" + a.Webhook + "/webhook"

	if st := post(t, client, url, "old-secret-5d1c", "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusOK {
		t.Fatalf("webhook with the current secret = %d", st)
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx := context.Background()
	_, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{}`)})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "sidecar's credentials") {
		t.Fatalf("SendEvent with a stale key = %v, want FailedPrecondition naming the sidecar's credentials", err)
	}

	writeFile(t, secretFile, "new-secret-9a7e\n")
	writeFile(t, keyFile, testAPIKey+"\n")
	eventually(t, "webhook signed with the new secret", func() error {
		if st := post(t, client, url, "new-secret-9a7e", "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusOK {
			return errors.New(http.StatusText(st))
		}
		return nil
	})
	if st := post(t, client, url, "old-secret-5d1c", "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusOK {
		t.Fatalf("webhook with the previous secret during the rotation = %d, want 200", st)
	}
	eventually(t, "SendEvent with the new key", func() error {
		_, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{"k":"new"}`)})
		return err
	})
	if in := emu.Inbound(); len(in) != 1 {
		t.Fatalf("ChronosHub accepted %d events, want 1", len(in))
	}
	_, metricsText := httpGet(t, "http://"+a.Admin+"/metrics")
	for _, want := range []string{
		`chronoshub_sidecar_credential_reloads_total{credential="webhook_secret",result="ok"}`,
		`chronoshub_sidecar_credential_reloads_total{credential="api_key",result="ok"}`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	r.stop(t)
	for _, secret := range []string{"old-secret-5d1c", "new-secret-9a7e", "stale-api-key-0000", testAPIKey} {
		if strings.Contains(r.stdout.String()+r.stderr.String()+metricsText, secret) {
			t.Errorf("captured output contains the secret %q", secret)
		}
	}
}

// TestCertificateReload replaces the webhook certificate of a running
// sidecar; new connections get the new one.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	env["CHRONOSHUB_CREDENTIALS_POLL_INTERVAL"] = "20ms"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	serial := func() (string, error) {
		conn, err := tls.Dial("tcp", a.Webhook, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	first, err := serial()
	if err != nil {
		t.Fatal(err)
	}
	newCert, newKey, err := devcert.Generate([]string{"127.0.0.1"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{newCert: env["CHRONOSHUB_TLS_CERT_FILE"], newKey: env["CHRONOSHUB_TLS_KEY_FILE"]} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, to, string(b))
	}
	want := mustSerial(t, newCert)
	eventually(t, "the new certificate served", func() error {
		got, err := serial()
		if err != nil {
			return err
		}
		if got != want {
			return errors.New("still serial " + got + ", first was " + first)
		}
		return nil
	})
}

func mustSerial(t *testing.T, certFile string) string {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, strings.TrimSuffix(certFile, devcert.CertFile)+devcert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.SerialNumber.String()
}

// TestRemoteAPI checks that the app-facing API refuses a non-loopback
// address unless the operator opts in, and then requires the bearer token
// over gRPC and REST.
func TestRemoteAPI(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	env["CHRONOSHUB_GRPC_ADDR"] = "0.0.0.0:0"
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, newCapture(), newCapture())
	if err == nil || !strings.Contains(err.Error(), "CHRONOSHUB_ALLOW_REMOTE_API") {
		t.Fatalf("serve with a remote gRPC address = %v, want a refusal naming CHRONOSHUB_ALLOW_REMOTE_API", err)
	}

	env["CHRONOSHUB_ALLOW_REMOTE_API"] = "true"
	env["CHRONOSHUB_API_TOKEN"] = "app-token-3e8b"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	grpcc, _ := grpcClient(t, strings.Replace(a.GRPC, "0.0.0.0", "127.0.0.1", 1))
	ctx := context.Background()
	if _, err := grpcc.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC without the token = %v, want Unauthenticated", err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer app-token-3e8b")
	if _, err := grpcc.GetSentEvent(authed, &sidecarv1.GetSentEventRequest{IdempotencyKey: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC with the token = %v, want NotFound", err)
	}
	rest := "http://" + a.HTTP + "/v1/sent-events/x"
	if st, _ := httpGet(t, rest); st != http.StatusUnauthorized {
		t.Fatalf("REST without the token = %d, want 401", st)
	}
	req, _ := http.NewRequest(http.MethodGet, rest, nil)
	req.Header.Set("Authorization", "Bearer app-token-3e8b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("REST with the token = %d, want 404", resp.StatusCode)
	}
}

// TestUnixSocket serves the gRPC API on a unix socket only its owner can use.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	sock := filepath.Join(t.TempDir(), "api", "grpc.sock")
	env["CHRONOSHUB_GRPC_ADDR"] = "unix://" + sock
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	if _, err := grpcc.GetSentEvent(context.Background(), &sidecarv1.GetSentEventRequest{IdempotencyKey: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("gRPC over the socket = %v, want NotFound", err)
	}
	// REST goes through the gateway's connection to the socket.
	if st, _ := httpGet(t, "http://"+a.HTTP+"/v1/sent-events/x"); st != http.StatusNotFound {
		t.Fatalf("REST through the socket = %d, want 404", st)
	}
}

// TestShutdownUnderLoad stops the sidecar while webhooks keep arriving and a
// consumer acks: every webhook answered 2xx is delivered after a restart on
// the same data dir unless it was acked before, and the webhook answers 503
// while draining.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	// Events a fetch was handing to the stream when it was cut off count as
	// delivered; they return when their ack deadline passes (README,
	// Guarantees).
	env["CHRONOSHUB_ACK_WAIT"] = "2s"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	url := "https://" + a.Webhook + "/webhook"

	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		statuses = map[int]int{}
	)
	stopSenders := make(chan struct{})
	var senders sync.WaitGroup
	for range 8 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for {
				select {
				case <-stopSenders:
					return
				default:
				}
				id := uuid.NewString()
				st, _, err := sendWebhook(client, url, id)
				mu.Lock()
				statuses[st]++
				if err == nil && st/100 == 2 {
					accepted[id] = true
				}
				mu.Unlock()
				if err != nil {
					return // the listener is gone
				}
			}
		}()
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "load"})
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for range 50 {
		e := recvEvent(t, stream)
		if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "load", EventIds: []string{e.GetId()}}); err != nil {
			t.Fatal(err)
		}
		acked[e.GetId()] = true
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run = %v", err)
	}
	close(stopSenders)
	senders.Wait()

	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n < 50 {
		t.Fatalf("only %d webhooks accepted", n)
	}
	t.Logf("statuses during the run: %v", statuses)

	// Restart on the same data dir and drain the subscription.
	r = start(t, []string{"serve"}, env)
	a = r.ready(t)
	grpcc, _ = grpcClient(t, a.GRPC)
	stream, err = grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "load", MaxInFlight: 100})
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{}
	for id := range accepted {
		if !acked[id] {
			missing[id] = true
		}
	}
	for len(missing) > 0 {
		e := recvEvent(t, stream)
		if acked[e.GetId()] {
			continue // at-least-once: an ack racing the shutdown may be redelivered
		}
		if !accepted[e.GetId()] {
			continue // stored, but its 2xx was lost in the shutdown
		}
		delete(missing, e.GetId())
		if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "load", EventIds: []string{e.GetId()}}); err != nil {
			t.Fatal(err)
		}
	}
}

// sendWebhook posts one signed webhook without failing the test, for
// senders that race a shutdown.
func sendWebhook(client *http.Client, url, id string) (int, []byte, error) {
	return sendSigned(client, url, testSecret, id)
}

// TestSecondSignalStopsAtOnce sends SIGTERM to the binary while a stream
// holds an unacked event (so the grace period would wait): it drains (not
// ready, webhook 503, SendEvent still working). A second SIGTERM then stops
// the process without waiting for the grace period.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["CHRONOSHUB_SHUTDOWN_GRACE"] = "10m"
	p := startProcess(t, env)
	a := p.ready(t)
	if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusOK {
		t.Fatalf("webhook = %d", st)
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recvEvent(t, stream) // held, never acked
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.stderr.waitLine(t, "shutting down")
	// Shutdown says what it waits for: one stream holding one event of
	// the default subscription.
	w := p.stderr.waitLine(t, "waiting for open streams to settle the events they hold")
	if held, _ := w["unsettled_by_subscription"].(map[string]any); w["streams"] != 1.0 || held["default"] != 1.0 || w["grace"] != "10m0s" {
		t.Errorf("shutdown's wait line = %v, want 1 stream holding 1 event of default, grace 10m0s", w)
	}
	if st, _ := httpGet(t, "http://"+a.Admin+"/readyz"); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining = %d, want 503", st)
	}
	if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusServiceUnavailable {
		t.Fatalf("webhook while draining = %d, want 503", st)
	}
	if resp, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(`{"draining":true}`)}); err != nil || resp.GetEventId() == "" {
		t.Fatalf("SendEvent while draining = %v, %v; want it to keep working", resp, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("exit after the second signal: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second SIGTERM did not stop the process")
	}
}

// TestPlaintextWebhook serves the webhook over plain HTTP, as when TLS ends
// at an ingress, only when the operator says so.
func TestPlaintextWebhook(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	delete(env, "CHRONOSHUB_TLS_CERT_FILE")
	delete(env, "CHRONOSHUB_TLS_KEY_FILE")
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, newCapture(), newCapture())
	if err == nil || !strings.Contains(err.Error(), "CHRONOSHUB_TLS_CERT_FILE") {
		t.Fatalf("serve without a certificate = %v, want an error naming CHRONOSHUB_TLS_CERT_FILE", err)
	}
	env["CHRONOSHUB_WEBHOOK_PLAINTEXT"] = "true"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	if st := post(t, &http.Client{Timeout: 10 * time.Second}, "http://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusOK {
		t.Fatalf("plain HTTP webhook = %d, want 200", st)
	}
}

// TestStartFailureReleasesEverything starts serve on a webhook address that
// is taken: it fails naming the listener, and a second start on the same data
// dir works (the store was closed again).
func TestStartFailureReleasesEverything(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env["CHRONOSHUB_WEBHOOK_ADDR"] = taken.Addr().String()
	err = run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, newCapture(), newCapture())
	if err == nil || !strings.Contains(err.Error(), "webhook listener") {
		t.Fatalf("serve on a taken address = %v, want an error naming the webhook listener", err)
	}
	env["CHRONOSHUB_WEBHOOK_ADDR"] = "127.0.0.1:0"
	r := start(t, []string{"serve"}, env)
	r.ready(t)
}
