package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// bigPayload is a JSON object of about n bytes.
func bigPayload(n int) string {
	return `{"pad":"` + strings.Repeat("x", n-10) + `"}`
}

// TestLimitsAgree configures 10 MiB limits and uses them end to end: a
// 9 MiB webhook is stored and delivered over gRPC and over the REST stream,
// and a 5 MiB SendEvent goes through over gRPC and over REST. Before, the
// store's 8 MiB message limit answered such a webhook 503 forever (and
// turned readiness off), the gateway's 4 MiB gRPC limit kept the event from
// REST, and the gRPC server's refused the SendEvent.
func TestLimitsAgree(t *testing.T) {
	t.Parallel()
	emu, err := emulator.New(emulator.Options{APIKey: testAPIKey, WebhookSecret: []byte("unused"), MaxBodyBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	hubSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(hubSrv.Close)
	env, client := serveEnv(t, hubSrv.URL)
	env["CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES"] = fmt.Sprint(10 << 20)
	env["CHRONOSHUB_MAX_PAYLOAD_BYTES"] = fmt.Sprint(10 << 20)
	a := start(t, []string{"serve"}, env).ready(t)

	webhook := bigPayload(9 << 20)
	id := uuid.NewString()
	if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", webhook, id); st != http.StatusOK {
		t.Fatalf("9 MiB webhook under a 10 MiB limit = %d, want 200", st)
	}
	if st, body := httpGet(t, "http://"+a.Admin+"/readyz"); st != http.StatusOK {
		t.Fatalf("/readyz after a 9 MiB webhook = %d %s", st, body)
	}

	// gRPC: an app that accepts messages of that size.
	conn, err := grpcDial(a.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	grpcc := sidecarv1.NewEventServiceClient(conn)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "big-grpc"}, grpc.MaxCallRecvMsgSize(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, stream); e.GetId() != id || string(e.GetPayload()) != webhook {
		t.Fatalf("gRPC stream gave event %s of %d bytes, want %s of %d", e.GetId(), len(e.GetPayload()), id, len(webhook))
	}

	// REST: the NDJSON stream carries it as one line.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTP+"/v1/events:stream?subscription=big-rest", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReaderSize(resp.Body, 1<<20).ReadBytes('\n')
	if err != nil {
		t.Fatalf("REST stream: %v (status %d)", err, resp.StatusCode)
	}
	var got struct {
		Result struct {
			Event struct {
				ID      string          `json:"id"`
				Payload json.RawMessage `json:"payload"`
			} `json:"event"`
		} `json:"result"`
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("REST stream line of %d bytes: %v: %.200s", len(line), err, line)
	}
	if got.Result.Event.ID != id || len(got.Result.Event.Payload) != len(webhook) {
		t.Fatalf("REST stream gave event %s with %d payload bytes, want %s with %d", got.Result.Event.ID, len(got.Result.Event.Payload), id, len(webhook))
	}

	// SendEvent of 5 MiB, over gRPC and over REST.
	send := bigPayload(5 << 20)
	if _, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.submitted", Payload: []byte(send)}, grpc.MaxCallSendMsgSize(16<<20)); err != nil {
		t.Fatalf("5 MiB SendEvent over gRPC under a 10 MiB limit: %v", err)
	}
	body := `{"type":"manuscript.submitted","payload":` + send + `}`
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.HTTP+"/v1/events:send", bytes.NewReader([]byte(body)))
	sreq.Header.Set("Content-Type", "application/json")
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(sresp.Body)
	sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK {
		t.Fatalf("5 MiB SendEvent over REST under a 10 MiB limit = %d %.300s", sresp.StatusCode, b)
	}
	if n := len(emu.Inbound()); n != 2 {
		t.Fatalf("ChronosHub received %d events, want 2", n)
	}
}

// TestLogCapLargerThanDisk sets a size cap the data dir's file system
// cannot hold: serve refuses to start, naming the setting.
func TestLogCapLargerThanDisk(t *testing.T) {
	t.Parallel()
	dir := tmpfs(t, "16m")
	_, baseURL := hub(t)
	env, _ := serveEnv(t, baseURL)
	env["CHRONOSHUB_DATA_DIR"] = dir + "/data"
	env["CHRONOSHUB_LOG_MAX_BYTES"] = fmt.Sprint(1 << 30)
	err := run(t.Context(), []string{"serve"}, func(k string) string { return env[k] }, newCapture(), newCapture())
	if err == nil || !strings.Contains(err.Error(), "CHRONOSHUB_LOG_MAX_BYTES") {
		t.Fatalf("serve with a 1 GiB cap on a 16 MiB disk = %v, want an error naming CHRONOSHUB_LOG_MAX_BYTES", err)
	}
	// The automatic cap fits.
	delete(env, "CHRONOSHUB_LOG_MAX_BYTES")
	start(t, []string{"serve"}, env).ready(t)
}

// TestFullLog fills a small event log that a subscription has not
// acknowledged: webhooks get 503 with Retry-After (ChronosHub retries),
// never a 2xx for an event that was not stored, readiness stays true (a
// full log is not a broken store, and a restart would not help), and every
// event answered 2xx is delivered.
func TestFullLog(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["CHRONOSHUB_LOG_MAX_BYTES"] = fmt.Sprint(64 << 10)
	a := start(t, []string{"serve"}, env).ready(t)
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The subscription exists (and holds everything) before the webhooks.
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "slow", MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}

	payload := bigPayload(4 << 10)
	var accepted []string
	full := false
	for i := 0; i < 100 && !full; i++ {
		id := uuid.NewString()
		code, hdr, err := signedPost(t.Context(), client, "https://"+a.Webhook+"/webhook", id, payload)
		if err != nil {
			t.Fatal(err)
		}
		switch code {
		case http.StatusOK:
			accepted = append(accepted, id)
		case http.StatusServiceUnavailable:
			if hdr.Get("Retry-After") == "" {
				t.Fatal("503 for a full log without Retry-After")
			}
			full = true
		default:
			t.Fatalf("webhook %d = %d", i, code)
		}
	}
	if !full {
		t.Fatalf("100 webhooks of 4 KiB fit a 64 KiB log")
	}
	if st, body := httpGet(t, "http://"+a.Admin+"/readyz"); st != http.StatusOK {
		t.Fatalf("/readyz with a full log = %d %s, want ready", st, body)
	}
	got := map[string]bool{}
	for len(got) < len(accepted) {
		e := recvEvent(t, stream)
		got[e.GetId()] = true
		if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "slow", EventIds: []string{e.GetId()}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range accepted {
		if !got[id] {
			t.Fatalf("accepted event %s not delivered", id)
		}
	}
	// Acknowledged events make room again.
	if code, _, err := signedPost(t.Context(), client, "https://"+a.Webhook+"/webhook", uuid.NewString(), payload); err != nil || code != http.StatusOK {
		t.Fatalf("webhook after the app caught up = %d, %v; want 200", code, err)
	}
}

// TestEventIDCaseEndToEnd retries a webhook with its X-Event-Id in upper
// case, as RFC 9562 allows: the sidecar stores it once and delivers the id
// as ChronosHub first sent it.
func TestEventIDCaseEndToEnd(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	a := start(t, []string{"serve"}, env).ready(t)
	id := uuid.NewString()
	url := "https://" + a.Webhook + "/webhook"
	for _, sent := range []string{id, strings.ToUpper(id)} {
		if st := post(t, client, url, testSecret, "manuscript.submitted", `{"n":1}`, sent); st != http.StatusOK {
			t.Fatalf("webhook %s = %d", sent, st)
		}
	}
	sentinel := uuid.NewString()
	if st := post(t, client, url, testSecret, "manuscript.submitted", `{"n":2}`, sentinel); st != http.StatusOK {
		t.Fatalf("webhook %s = %d", sentinel, st)
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	stream, err := grpcc.StreamEvents(t.Context(), &sidecarv1.StreamEventsRequest{Subscription: "case"})
	if err != nil {
		t.Fatal(err)
	}
	// The log is in order: the retry, had it been stored, would come
	// between the first event and the sentinel.
	if e := recvEvent(t, stream); e.GetId() != id {
		t.Fatalf("first event %s, want %s as first sent", e.GetId(), id)
	}
	if e := recvEvent(t, stream); e.GetId() != sentinel {
		t.Fatalf("second event %s, want the sentinel %s: the upper-case retry was stored again", e.GetId(), sentinel)
	}
}
