package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/health/grpc_health_v1"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

const (
	testAPIKey = "sk_e2e_api_key_7f3a9c"
	testSecret = "whsec_e2e_current_41d2"
)

// hub starts an emulated ChronosHub for SendEvent. It keeps every inbound
// event (no MaxHistory bound), so that long runs of the harnesses can check
// each queued event against it.
func hub(t *testing.T) (*emulator.Emulator, string) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{APIKey: testAPIKey, WebhookSecret: []byte("unused"), MaxHistory: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return emu, srv.URL
}

// serveEnv is the configuration of a sidecar on loopback :0 ports with TLS.
func serveEnv(t *testing.T, baseURL string) (map[string]string, *http.Client) {
	t.Helper()
	certFile, keyFile, client := tlsFiles(t)
	return map[string]string{
		"CHRONOSHUB_BASE_URL":       baseURL,
		"CHRONOSHUB_API_KEY":        testAPIKey,
		"CHRONOSHUB_WEBHOOK_SECRET": testSecret,
		"CHRONOSHUB_TLS_CERT_FILE":  certFile,
		"CHRONOSHUB_TLS_KEY_FILE":   keyFile,
		"CHRONOSHUB_WEBHOOK_ADDR":   "127.0.0.1:0",
		"CHRONOSHUB_GRPC_ADDR":      "127.0.0.1:0",
		"CHRONOSHUB_HTTP_ADDR":      "127.0.0.1:0",
		"CHRONOSHUB_ADMIN_ADDR":     "127.0.0.1:0",
		"CHRONOSHUB_DATA_DIR":       t.TempDir(),
		"CHRONOSHUB_SHUTDOWN_GRACE": "2s",
	}, client
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	url := "https://" + a.Webhook + "/webhook"

	events := []struct{ id, typ, payload string }{
		{uuid.NewString(), "manuscript.submitted", `{"manuscriptId":"M-1","title":"Plain"}`},
		{uuid.NewString(), "manuscript.status.updated", "{\"title\": \"Über 𝔸𝕓𝒞 🧬 中文 | a:b\",\n \"n\": 1.50}"},
	}
	for _, e := range events {
		if st := post(t, client, url, testSecret, e.typ, e.payload, e.id); st != http.StatusOK {
			t.Fatalf("webhook %s = %d, want 200", e.id, st)
		}
	}
	if st := post(t, client, url, testSecret, events[0].typ, events[0].payload, events[0].id); st/100 != 2 {
		t.Fatalf("repeated webhook = %d, want 2xx", st)
	}
	if st := post(t, client, url, "wrong-secret", "manuscript.submitted", `{}`, uuid.NewString()); st != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong secret = %d, want 401", st)
	}
	// gRPC: byte-exact delivery, then ack.
	grpcc, conn := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, want := range events {
		got := recvEvent(t, stream)
		if got.GetId() != want.id || got.GetType() != want.typ || string(got.GetPayload()) != want.payload || got.GetAttempt() != 1 || got.GetSignedAt() == nil || got.GetReceivedAt() == nil {
			t.Fatalf("event = %v, want id %s type %s payload %q attempt 1", got, want.id, want.typ, want.payload)
		}
		ids = append(ids, got.GetId())
	}
	ack, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: ids})
	if err != nil || len(ack.GetEventIds()) != 2 || len(ack.GetUnknownEventIds()) != 0 {
		t.Fatalf("AckEvents = %v, %v", ack, err)
	}
	health, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "chronoshub.sidecar.v1.EventService"})
	if err != nil || health.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", health, err)
	}

	// REST: the same events as NDJSON with the payload as a JSON value, then ack.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTP+"/v1/events:stream?subscription=rest", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.Contains(ct, "ndjson") {
		t.Fatalf("REST stream: %d %s", resp.StatusCode, ct)
	}
	lines := make(chan map[string]any, 10)
	go ndjson(resp.Body, lines)
	for _, want := range events {
		var line map[string]any
		select {
		case line = <-lines:
		case <-time.After(20 * time.Second):
			t.Fatal("no NDJSON line within 20s")
		}
		ev, _ := line["result"].(map[string]any)["event"].(map[string]any)
		var wantPayload any
		json.Unmarshal([]byte(want.payload), &wantPayload)
		if ev["id"] != want.id || fmt.Sprint(ev["payload"]) != fmt.Sprint(wantPayload) {
			t.Fatalf("REST event = %v, want id %s payload %v", line, want.id, wantPayload)
		}
	}
	body, _ := json.Marshal(map[string]any{"subscription": "rest", "eventIds": []string{events[0].id, events[1].id}})
	if st, out := httpPost(t, "http://"+a.HTTP+"/v1/events:ack", string(body)); st != 200 || !strings.Contains(out, events[1].id) {
		t.Fatalf("REST ack = %d %s", st, out)
	}

	// SendEvent over REST reaches ChronosHub byte-exact with the API key.
	st, out := httpPost(t, "http://"+a.HTTP+"/v1/events:send", `{"type":"manuscript.submitted","payload":{"manuscriptId":"M-9","title":"𝔸 ü"},"idempotencyKey":"rest-1"}`)
	if st != 200 || !strings.Contains(out, `"eventId"`) {
		t.Fatalf("REST send = %d %s", st, out)
	}
	in := emu.Inbound()
	if len(in) != 1 || string(in[0].Payload) != `{"manuscriptId":"M-9","title":"𝔸 ü"}` {
		t.Fatalf("ChronosHub received %+v", in)
	}
	if st, out := httpPost(t, "http://"+a.HTTP+"/v1/events:send", `{"type":"Not A Type","payload":{}}`); st != 400 || !strings.Contains(out, "type") {
		t.Fatalf("REST send of a bad type = %d %s, want 400 naming the type", st, out)
	}

	// Operations: health, readiness, metrics that moved.
	if st, _ := httpGet(t, "http://"+a.Admin+"/healthz"); st != 200 {
		t.Fatalf("/healthz = %d", st)
	}
	if st, out := httpGet(t, "http://"+a.Admin+"/readyz"); st != 200 {
		t.Fatalf("/readyz = %d %s", st, out)
	}
	_, metricsText := httpGet(t, "http://"+a.Admin+"/metrics")
	for _, want := range []string{
		`chronoshub_sidecar_webhooks_total{outcome="stored",reason=""} 2`,
		`chronoshub_sidecar_webhooks_total{outcome="duplicate",reason=""} 1`,
		`chronoshub_sidecar_webhook_verification_failures_total{reason="bad_signature"} 1`,
		`chronoshub_sidecar_sent_events_total{state="accepted"} 1`,
		`chronoshub_sidecar_events_delivered_total{subscription="app"} 2`,
		`chronoshub_sidecar_event_ack_latency_seconds_count{subscription="app"} 2`,
		`chronoshub_sidecar_grpc_requests_total{code="OK",method="/chronoshub.sidecar.v1.EventService/SendEvent"} 1`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	cancel()
	if err := r.stop(t); err != nil {
		t.Fatalf("run = %v, want nil after shutdown", err)
	}
	for _, secret := range []string{testAPIKey, testSecret} {
		for name, text := range map[string]string{"stdout": r.stdout.String(), "stderr": r.stderr.String(), "metrics": metricsText} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret", name)
			}
		}
	}
}
