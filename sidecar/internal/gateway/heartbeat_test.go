package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// TestStreamOpensAtOnceAndHeartbeats opens a stream on which nothing
// happens: the status and headers arrive at once (before, nothing at all
// was sent until the first event, and clients, proxies and read timeouts cut
// the stream), heartbeat lines {"result":{}} follow while it is idle,
// and an event that then arrives is a whole line among them.
func TestStreamOpensAtOnceAndHeartbeats(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	big := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	ts := startGateway(t, &eventService{
		streamEvents: func(_ *sidecarv1.StreamEventsRequest, stream grpc.ServerStreamingServer[sidecarv1.StreamEventsResponse]) error {
			if err := stream.SendHeader(metadata.Pairs("chronoshub-subscription-created", "true")); err != nil {
				return err
			}
			select {
			case <-release:
			case <-stream.Context().Done():
				return nil
			}
			for _, id := range []string{"e-1", "e-2"} {
				if err := stream.Send(&sidecarv1.StreamEventsResponse{Event: testEvent(id, big)}); err != nil {
					return err
				}
			}
			<-stream.Context().Done()
			return nil
		},
	}, Options{HeartbeatInterval: time.Millisecond})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/events:stream?subscription=s", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req) // returns once the status line and headers arrive
	if err != nil {
		t.Fatalf("GET /v1/events:stream on an idle stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" || resp.Header.Get("Chronoshub-Subscription-Created") != "true" {
		t.Fatalf("idle stream answered %d %v, want 200 application/x-ndjson with Chronoshub-Subscription-Created: true", resp.StatusCode, resp.Header)
	}
	lines := bufio.NewReaderSize(resp.Body, 4<<20)
	next := func() map[string]json.RawMessage {
		t.Helper()
		line, err := lines.ReadBytes('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil || len(m) != 1 {
			t.Fatalf("stream line %.100q is not an object with one key: %v", line, err)
		}
		return m
	}
	for range 3 {
		if m := next(); string(m["result"]) != "{}" {
			t.Fatalf("idle stream line %v, want {\"result\":{}}", m)
		}
	}
	close(release)
	var events []string
	for len(events) < 2 {
		m := next()
		if string(m["result"]) == "{}" {
			continue // heartbeat
		}
		var r struct {
			Result struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(m["result"], &r.Result); err != nil {
			t.Fatalf("stream line %v: %v", m, err)
		}
		events = append(events, r.Result.Event.ID)
	}
	if strings.Join(events, ",") != "e-1,e-2" {
		t.Fatalf("events %q, want e-1,e-2", events)
	}
}
