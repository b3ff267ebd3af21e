package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// pushed is one POST the app received.
type pushed struct {
	header http.Header
	body   []byte
}

// TestDevForwardTo runs "dev --forward-to": an event ChronosHub delivers
// reaches the app's endpoint as a signed POST of its payload, is
// acknowledged by the 2xx, and the push subscription refuses streams.
func TestDevForwardTo(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan pushed, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- pushed{r.Header.Clone(), body}
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })

	url := "http://" + lis.Addr().String() + "/chronoshub"
	// The app started by dev gets the push signing secret.
	r := start(t, append(devArgs(t), "--forward-to", url, "--emulator-retry-base", "10ms",
		"--", "bash", "-c", `echo "push-secret=$CHRONOSHUB_PUSH_SECRET"; exec sleep 120`), nil)
	a := r.ready(t)
	out := r.stdout.waitText(t, "its push state")
	m := regexp.MustCompile(`POSTed to (\S+) .*\n\s+signed in the Standard Webhooks format with (whsec_\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] != url {
		t.Fatalf("dev banner lacks the push delivery to %s:\n%s", url, out)
	}
	if app := r.stdout.waitText(t, "push-secret="); !strings.Contains(app, "push-secret="+m[2]+"\n") {
		t.Errorf("the app got another CHRONOSHUB_PUSH_SECRET than the banner's %s:\n%s", m[2], app)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(m[2], "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	emulatorURL := "http://" + r.stderr.waitLine(t, "emulator listening")["emulator_addr"].(string)

	id := uuid.NewString()
	body, _ := json.Marshal(map[string]string{"url": "https://" + a.Webhook + "/webhook", "event_type": "manuscript.submitted", "event_id": id})
	if st, resp := httpPost(t, emulatorURL+"/_emulator/deliveries", string(body)); st != http.StatusAccepted {
		t.Fatalf("start delivery = %d %s", st, resp)
	}
	var p pushed
	select {
	case p = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no POST within 30s")
	}
	if string(p.body) != string(emulator.DefaultPayload("manuscript.submitted")) {
		t.Errorf("pushed body = %s, want the sample payload byte for byte", p.body)
	}
	if p.header.Get("Chronoshub-Event-Id") != id || p.header.Get("Chronoshub-Event-Type") != "manuscript.submitted" || p.header.Get("Chronoshub-Attempt") != "1" {
		t.Errorf("pushed headers = %v", p.header)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(p.header.Get("Webhook-Id") + "." + p.header.Get("Webhook-Timestamp") + "."))
	mac.Write(p.body)
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); p.header.Get("Webhook-Signature") != want {
		t.Errorf("webhook-signature = %q, want %q", p.header.Get("Webhook-Signature"), want)
	}

	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "forward"})
		if err != nil {
			t.Fatal(err)
		}
		if s := resp.GetSubscription(); s.GetUnackedCount() == 0 && s.GetPendingCount() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("forward subscription still holds events: %v", resp)
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The banner's command shows the push state.
	cmd := regexp.MustCompile(`client subscriptions get --addr (\S+) --subscription forward`).FindStringSubmatch(out)
	if cmd == nil {
		t.Fatalf("dev banner lacks the subscriptions get command:\n%s", out)
	}
	state := mustCLI(t, nil, "subscriptions", "get", "--addr", cmd[1], "--subscription", "forward")
	var sub struct {
		Push struct {
			URL        string `json:"url"`
			Paused     bool   `json:"paused"`
			LastStatus int    `json:"lastStatus"`
		} `json:"push"`
	}
	if err := json.Unmarshal([]byte(state), &sub); err != nil || sub.Push.URL != url || sub.Push.Paused || sub.Push.LastStatus != 200 {
		t.Errorf("client subscriptions get = %s (%v), want push state with url %s, last status 200", state, err, url)
	}
	waitMetric(t, "http://"+a.Admin+"/metrics", regexp.MustCompile(`chronoshub_sidecar_push_requests_total\{outcome="2xx",subscription="forward"\} 1\n`))
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "forward"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "delivered by push") {
		t.Errorf("StreamEvents(forward) = %v, want NotFound: delivered by push", err)
	}
}

// pushReceiver is an app that receives a push subscription, "push", on
// loopback and answers 200 to each POST whose body is payload(id). It
// returns the subscriptions file that declares it (with timeout, which must
// be shorter than the sidecar's ack wait) and a function that returns the
// ids accepted not yet received, "push:"-prefixed, and the corrupted ones.
func pushReceiver(t *testing.T, timeout string, payload func(id string) string) (file string, outstanding func(accepted map[string]bool) (missing, corrupted []string)) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	var bad []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		id := r.Header.Get("Chronoshub-Event-Id")
		mu.Lock()
		defer mu.Unlock()
		got[id]++
		if string(body) != payload(id) {
			bad = append(bad, id)
		}
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	decl, _ := json.Marshal(map[string]any{"subscriptions": []any{map[string]any{
		"name": "push", "push": map[string]any{"url": "http://" + lis.Addr().String() + "/events", "concurrency": 8, "timeout": timeout},
	}}})
	file = filepath.Join(t.TempDir(), "subscriptions.json")
	if err := os.WriteFile(file, decl, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, func(accepted map[string]bool) (missing, corrupted []string) {
		mu.Lock()
		defer mu.Unlock()
		for id := range accepted {
			if got[id] == 0 {
				missing = append(missing, "push:"+id)
			}
		}
		return missing, slices.Clone(bad)
	}
}

// TestServeStrictSubscriptions runs serve with declared subscriptions in
// strict mode: a declared one streams (it existed before the first stream,
// from the oldest event), an undeclared name is refused with NOT_FOUND over
// gRPC and 404 over REST, and creates nothing.
func TestServeStrictSubscriptions(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	file := filepath.Join(t.TempDir(), "subscriptions.json")
	if err := os.WriteFile(file, []byte(`{"subscriptions": [{"name": "journal", "event_types": ["manuscript.*"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env["CHRONOSHUB_SUBSCRIPTIONS_FILE"] = file
	env["CHRONOSHUB_STRICT_SUBSCRIPTIONS"] = "true"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	id := uuid.NewString()
	if st := post(t, client, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"manuscriptId":"M-1"}`, id); st != http.StatusOK {
		t.Fatalf("webhook = %d", st)
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "journal"})
	if err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, stream); e.GetId() != id {
		t.Fatalf("journal stream got %s, want %s", e.GetId(), id)
	}
	typo, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "jounral"})
	if err == nil {
		_, err = typo.Recv()
	}
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "declared: journal") {
		t.Errorf("StreamEvents(jounral) = %v, want NotFound naming the declared subscriptions", err)
	}
	if st, body := httpGet(t, "http://"+a.HTTP+"/v1/events:stream?subscription=jounral"); st != http.StatusNotFound {
		t.Errorf("REST stream on jounral = %d %s, want 404", st, body)
	}
	if _, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "jounral"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetSubscription(jounral) = %v, want NotFound: nothing was created", err)
	}
}

// TestDevForwardToRemote refuses a --forward-to URL beyond loopback before
// anything starts.
func TestDevForwardToRemote(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), append(devArgs(t), "--forward-to", "http://app.example/hook"), nil, newCapture(), newCapture())
	if err == nil || !strings.Contains(err.Error(), "dev: --forward-to: url host app.example is not loopback") {
		t.Errorf("dev --forward-to http://app.example/hook = %v, want a --forward-to error", err)
	}
}
