package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClientReplay replays an acknowledged event by id and by time from
// the command line: it comes back to the app marked as a replay.
func TestClientReplay(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	addr := "--addr=" + a.GRPC
	id := uuid.NewString()
	if st := post(t, webhooks, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"manuscriptId":"M-9"}`, id); st != http.StatusOK {
		t.Fatalf("webhook = %d, want 200", st)
	}
	mustCLI(t, nil, "stream", addr, "--subscription", "rp", "--max-events", "1", "--ack")

	missing := uuid.NewString()
	out := mustCLI(t, nil, "replay", addr, "--subscription", "rp", id, missing)
	lines := jsonLines(t, out)
	if len(lines) != 2 || !sameJSON(t, lines[0]["eventIds"], `["`+id+`"]`) || !sameJSON(t, lines[0]["unknownEventIds"], `["`+missing+`"]`) || !sameJSON(t, lines[1], `{"replayed":1}`) {
		t.Fatalf("client replay by id printed:\n%s", out)
	}
	lines = jsonLines(t, mustCLI(t, nil, "stream", addr, "--subscription", "rp", "--max-events", "1", "--ack"))
	if lines[0]["id"] != id || lines[0]["replay"] != true || lines[0]["attempt"] != 1.0 {
		t.Fatalf("replayed event printed as %v; want %s, replay, attempt 1", lines[0], id)
	}

	out = mustCLI(t, nil, "replay", addr, "--subscription", "rp", "--since", "1h", "--event-types", "manuscript.*", "--page-size", "1")
	if lines := jsonLines(t, out); !sameJSON(t, lines[len(lines)-1], `{"replayed":1}`) {
		t.Fatalf("client replay --since 1h printed:\n%s", out)
	}
	if lines := jsonLines(t, mustCLI(t, nil, "stream", addr, "--subscription", "rp", "--max-events", "1", "--ack")); lines[0]["id"] != id || lines[0]["replay"] != true {
		t.Fatalf("replayed event printed as %v; want %s, replay", lines[0], id)
	}
	// Nothing is found past the newest event.
	out = mustCLI(t, nil, "replay", addr, "--subscription", "rp", "--since", time.Now().Add(time.Minute).Format(time.RFC3339))
	if lines := jsonLines(t, out); !sameJSON(t, lines[len(lines)-1], `{"replayed":0}`) {
		t.Fatalf("client replay from the future printed:\n%s", out)
	}
	_, err := cli(t, nil, "replay", addr, "--subscription", "nobody", id)
	if status.Code(err) != codes.NotFound {
		t.Errorf("client replay to an unknown subscription = %v, want NotFound", err)
	}
}

func TestClientReplayUsageErrors(t *testing.T) {
	t.Parallel()
	const nowhere = "--addr=127.0.0.1:1"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"replay", nowhere, "e1"}, "--subscription is required"},
		{[]string{"replay", nowhere, "--subscription", "s"}, "give event ids, or --since"},
		{[]string{"replay", nowhere, "--subscription", "s", "--since", "1h", "e1"}, "not both"},
		{[]string{"replay", nowhere, "--subscription", "s", "--until", "1h"}, "--until needs --since"},
		{[]string{"replay", nowhere, "--subscription", "s", "--since", "yesterday"}, `--since: "yesterday" is neither`},
		{[]string{"replay", nowhere, "--subscription", "s", "--since", "-5m"}, "positive duration"},
		{[]string{"replay", nowhere, "--subscription", "s", "--since", "1h", "--until", "2h"}, "is not after --since"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, err := cli(t, nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("client %q = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if status.Code(err) == codes.Unavailable {
				t.Fatalf("client %q made an RPC: %v", tt.args, err)
			}
		})
	}
}
