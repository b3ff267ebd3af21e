package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// TestServeBehindTLSProxy runs serve with a plaintext webhook listener
// behind an HTTPS reverse proxy that terminates TLS, as an ingress does
// (docs/ingress.md). Through the proxy: a webhook with a wrong signature, one
// whose body the proxy changed by one byte, and one with a wrong signature
// and forged forwarding headers are refused with 401 and store nothing; a
// signed webhook with forged forwarding headers is stored and reaches the app
// byte for byte, the headers changing nothing.
func TestServeBehindTLSProxy(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	delete(env, "CHRONOSHUB_TLS_CERT_FILE")
	delete(env, "CHRONOSHUB_TLS_KEY_FILE")
	env["CHRONOSHUB_WEBHOOK_PLAINTEXT"] = "true"
	a := start(t, []string{"serve"}, env).ready(t)

	backend := &url.URL{Scheme: "http", Host: a.Webhook}
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(backend)
		r.SetXForwarded()
		// A proxy that alters the body (re-encoding, say): one byte.
		if r.In.Header.Get("X-Test-Tamper") != "" {
			b, _ := io.ReadAll(r.In.Body)
			b[len(b)-2] ^= 1
			r.Out.Body = io.NopCloser(bytes.NewReader(b))
		}
	}})
	t.Cleanup(proxy.Close)
	client := proxy.Client()
	client.Timeout = 30 * time.Second
	url := proxy.URL + "/webhook"

	send := func(secret, payload string, header map[string]string) int {
		t.Helper()
		body := []byte(payload)
		req, err := emulator.NewWebhookRequest(context.Background(), url, []byte(secret), "manuscript.submitted", body, uuid.NewString(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	forged := map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.7;proto=https", "X-Real-IP": "203.0.113.7"}
	for _, tc := range []struct {
		name   string
		secret string
		header map[string]string
	}{
		{"wrong signature", "not-the-secret", nil},
		{"body changed by the proxy", testSecret, map[string]string{"X-Test-Tamper": "1"}},
		{"wrong signature with forged forwarding headers", "not-the-secret", forged},
	} {
		if st := send(tc.secret, `{"manuscriptId":"refused"}`, tc.header); st != http.StatusUnauthorized {
			t.Errorf("%s through the proxy = %d, want 401", tc.name, st)
		}
	}
	const payload = "{\"manuscriptId\":\"M-1\", \"title\": \"𝔸 café\"}"
	if st := send(testSecret, payload, forged); st != http.StatusOK {
		t.Fatalf("signed webhook through the proxy = %d, want 200", st)
	}

	// The log keeps arrival order: had a refused webhook been stored, it
	// would come first.
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if got := recvEvent(t, stream); string(got.GetPayload()) != payload {
		t.Fatalf("first event = %q, want the signed webhook %q byte for byte", got.GetPayload(), payload)
	}
	sub, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if s := sub.GetSubscription(); s.GetPendingCount() != 0 || s.GetUnackedCount() != 1 {
		t.Errorf("subscription after the one signed webhook: %d pending, %d unacked; want 0 and 1: a refused webhook was stored", s.GetPendingCount(), s.GetUnackedCount())
	}
}
