package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
)

// fleetEnv is serveEnv for a sidecar on the cluster c (no data dir).
func fleetEnv(t *testing.T, baseURL string, c *natstest.Cluster) (map[string]string, *http.Client) {
	t.Helper()
	env, client := serveEnv(t, baseURL)
	delete(env, "CHRONOSHUB_DATA_DIR")
	env["CHRONOSHUB_NATS_URL"] = c.URLs()
	env["CHRONOSHUB_NATS_REPLICAS"] = "3"
	// natstest's servers keep NATS's default max_payload (1 MiB), less than
	// the sidecar's default body limits need.
	env["CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES"] = "262144"
	env["CHRONOSHUB_MAX_PAYLOAD_BYTES"] = "262144"
	return env, client
}

// signedPost posts a webhook of type manuscript.submitted as ChronosHub
// does (emulator.SendWebhook), returning the response's headers too.
func signedPost(ctx context.Context, client *http.Client, url, id, payload string) (int, http.Header, error) {
	const eventType = "manuscript.submitted"
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", signature.UserAgent)
	req.Header.Set(signature.HeaderEventType, eventType)
	req.Header.Set(signature.HeaderEventID, id)
	req.Header.Set(signature.HeaderTimestamp, ts)
	req.Header.Set(signature.HeaderSignature, signature.Sign([]byte(testSecret), []byte(payload), eventType, id, ts))
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// readyStatus returns the status of the admin listener's /readyz.
func readyStatus(admin string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /readyz until it answers want, failing after limit.
func waitReadyz(t *testing.T, admin string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if readyStatus(admin) == want {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz did not answer %d within %v", want, limit)
	return 0
}

// TestQuorumLossReadinessRecovers runs serve on a three-node cluster and
// kills two nodes: the stream has no quorum, so a webhook waits the store
// timeout and gets 503 with Retry-After, and readiness goes false. When the
// nodes come back, readiness comes back by itself, without any webhook
// (an unready pod gets none), and webhooks are stored again.
func TestQuorumLossReadinessRecovers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := natstest.StartCluster(t, 3)
	_, baseURL := hub(t)
	env, client := fleetEnv(t, baseURL, c)
	env["CHRONOSHUB_WEBHOOK_STORE_TIMEOUT"] = "2s"
	p := startProcess(t, env)
	a := p.ready(t)
	url := "https://" + a.Webhook + "/webhook"
	send := func(id string) (int, http.Header, time.Duration) {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, hdr, err := signedPost(ctx, client, url, id, `{}`)
		if err != nil {
			t.Fatalf("webhook %s: %v", id, err)
		}
		return st, hdr, time.Since(start)
	}
	if st, _, _ := send(uuid.NewString()); st/100 != 2 {
		t.Fatalf("webhook before the kill: %d", st)
	}
	waitReadyz(t, a.Admin, http.StatusOK, 30*time.Second)
	c.Kill(1)
	c.Kill(2)
	st, hdr, took := send(uuid.NewString())
	if st != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("webhook without quorum: %d, Retry-After %q; want 503 with Retry-After", st, hdr.Get("Retry-After"))
	}
	t.Logf("webhook without quorum answered 503 (Retry-After %s) in %v (store timeout 2s)", hdr.Get("Retry-After"), took.Round(time.Millisecond))
	notReady := waitReadyz(t, a.Admin, http.StatusServiceUnavailable, 30*time.Second)
	t.Logf("readiness false %v after the 503", notReady.Round(time.Millisecond))
	restarted := time.Now()
	c.Restart(1)
	c.Restart(2)
	nodesUp := time.Since(restarted)
	back := waitReadyz(t, a.Admin, http.StatusOK, 60*time.Second)
	t.Logf("nodes restarted in %v; readiness back %v later, with no webhook sent", nodesUp.Round(time.Millisecond), back.Round(time.Millisecond))
	if st, _, _ := send(uuid.NewString()); st/100 != 2 {
		t.Fatalf("webhook after quorum returned: %d", st)
	}
}
