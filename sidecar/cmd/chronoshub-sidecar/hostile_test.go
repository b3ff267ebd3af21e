package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// TestSlowAndHostileWebhookClients checks that the webhook listener cuts off
// a client that never finishes its headers, and refuses oversized headers.
func TestSlowAndHostileWebhookClients(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)

	t.Run("slowloris", func(t *testing.T) {
		conn, err := tls.Dial("tcp", a.Webhook, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Event-Type: manuscript.sub"); err != nil {
			t.Fatal(err)
		}
		// The server must close the connection by itself (ReadHeaderTimeout);
		// the deadline here only keeps a broken server from hanging the test.
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, err = io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept a connection with unfinished headers open for 60s")
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "https://"+a.Webhook+"/webhook", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
		// Over HTTP/1.1 the answer is 431 (read raw: the server closes the
		// connection while a client may still be writing); over HTTP/2 the
		// server refuses the header block and closes the connection.
		conn, err := tls.Dial("tcp", a.Webhook, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go io.WriteString(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Padding: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.Contains(line, " 431 ") {
			t.Fatalf("HTTP/1.1 answer = %q, %v; want 431", line, err)
		}
		req2, _ := http.NewRequest(http.MethodPost, "https://"+a.Webhook+"/webhook", strings.NewReader(`{}`))
		req2.Header = req.Header
		if resp, err := client.Do(req2); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("HTTP/2 status = %d, want 431 or a refused connection", resp.StatusCode)
			}
		}
	})
}

// TestHostileConsumers runs a consumer that never acks, one that never
// reads, and one that opens and drops streams in a loop, next to a healthy
// consumer on another subscription: the healthy one gets every event, the
// bad ones hold no more than their in-flight limit, and nothing is lost.
func TestHostileConsumers(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["CHRONOSHUB_MAX_IN_FLIGHT"] = "5"
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	url := "https://" + a.Webhook + "/webhook"
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		if st := post(t, client, url, testSecret, "manuscript.submitted", `{"i":1}`, ids[i]); st != http.StatusOK {
			t.Fatalf("webhook = %d", st)
		}
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Never acks: gets its in-flight limit, then nothing more.
	lazy, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "lazy"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		recvEvent(t, lazy)
	}
	// Never reads: its events wait in flow control, bounded the same way.
	if _, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "deaf"}); err != nil {
		t.Fatal(err)
	}
	// Opens and drops streams in a loop, each with one event in flight, so
	// that every offer is one the app reads: nothing is in transit when a
	// stream is dropped.
	offers := map[string]int{}
	for range 30 {
		sctx, scancel := context.WithCancel(ctx)
		s, err := grpcc.StreamEvents(sctx, &sidecarv1.StreamEventsRequest{Subscription: "churn", MaxInFlight: 1})
		if err != nil {
			t.Fatal(err)
		}
		offers[recvEvent(t, s).GetId()]++
		scancel()
		// The next stream opens once this one's event is back in line,
		// so that it is offered that event again (and not the next one).
		eventually(t, "the dropped churn stream closed", func() error {
			sub, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "churn"})
			if err != nil {
				return err
			}
			if n := sub.GetSubscription().GetOpenStreams(); n != 0 {
				return fmt.Errorf("%d streams open", n)
			}
			return nil
		})
	}

	// The healthy consumer gets everything.
	healthy, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "healthy"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := recvEvent(t, healthy)
		if e.GetId() != ids[i] {
			t.Fatalf("healthy event %d = %s, want %s", i, e.GetId(), ids[i])
		}
		if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "healthy", EventIds: []string{e.GetId()}}); err != nil {
			t.Fatal(err)
		}
	}
	// The churned subscription lost nothing: each event is either delivered
	// to a proper consumer or, having been offered and dropped more than
	// CHRONOSHUB_MAX_ATTEMPTS times by the churning streams, in its dead
	// letters.
	churn, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	delivered := map[string]bool{}
	go func() {
		for {
			r, err := churn.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			delivered[r.GetEvent().GetId()] = true
			mu.Unlock()
			grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "churn", EventIds: []string{r.GetEvent().GetId()}})
		}
	}()
	var nDead int
	eventually(t, "every churned event delivered or dead-lettered", func() error {
		dead, err := grpcc.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{Subscription: "churn", PageSize: 1000})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		seen := maps.Clone(delivered)
		for _, d := range dead.GetDeadLetters() {
			seen[d.GetEvent().GetId()] = true
		}
		nDead = len(dead.GetDeadLetters())
		if len(seen) < n {
			return fmt.Errorf("%d of %d accounted for", len(seen), n)
		}
		return nil
	})
	// Every dead letter was offered to the app exactly
	// CHRONOSHUB_MAX_ATTEMPTS (5) times: offers, not fetches, are attempts.
	dead, err := grpcc.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{Subscription: "churn", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead.GetDeadLetters() {
		id := d.GetEvent().GetId()
		if offers[id] != 5 || d.GetEvent().GetAttempt() != 5 {
			t.Errorf("dead letter %s: offered to the app %d times, recorded %d attempts; want 5 and 5", id, offers[id], d.GetEvent().GetAttempt())
		}
	}
	if nDead != 30/5 {
		t.Errorf("%d dead letters after 30 dropped streams of one event each, want %d", nDead, 30/5)
	}
	t.Logf("churned subscription: %d events dead-lettered by 30 dropped streams, each offered 5 times; the rest delivered", nDead)
	// The lazy and deaf consumers hold exactly their limit; the metrics count
	// their deliveries.
	for _, want := range []string{
		`chronoshub_sidecar_events_delivered_total{subscription="lazy"} 5`,
		`chronoshub_sidecar_events_delivered_total{subscription="deaf"} 5`,
	} {
		eventually(t, want, func() error {
			if _, text := httpGet(t, "http://"+a.Admin+"/metrics"); !strings.Contains(text, want) {
				return errors.New("not in /metrics")
			}
			return nil
		})
	}
}
