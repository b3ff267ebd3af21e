package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

const testToken = "app-token-client-5c1d"

// cli runs "chronoshub-sidecar client args…" with env and returns its
// stdout and error, failing after 30s.
func cli(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"client"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	if strings.Contains(stdout.String()+stderr.String(), testToken) || (err != nil && strings.Contains(err.Error(), testToken)) {
		t.Fatalf("client %q printed the token", args)
	}
	return stdout.String(), err
}

// mustCLI is cli that fails the test on an error.
func mustCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, err := cli(t, env, args...)
	if err != nil {
		t.Fatalf("client %q = %v; stdout:\n%s", args, err, out)
	}
	return out
}

// jsonLines decodes every line of out.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %q is not JSON: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a any, b string) bool {
	t.Helper()
	ab, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var x, y any
	if json.Unmarshal(ab, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return cmp.Equal(x, y)
}

// TestClientEndToEnd drives every client command against a sidecar that
// requires a bearer token, the token coming from CHRONOSHUB_API_TOKEN.
func TestClientEndToEnd(t *testing.T) {
	t.Parallel()
	emu, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	env["CHRONOSHUB_API_TOKEN"] = testToken
	env["CHRONOSHUB_MAX_ATTEMPTS"] = "1" // a rejected event becomes a dead letter at once
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	webhookURL := "https://" + a.Webhook + "/webhook"
	cenv := map[string]string{"CHRONOSHUB_API_TOKEN": testToken}
	addr := "--addr=" + a.GRPC

	// stream: the payload printed as JSON, then acknowledged.
	e1, p1 := uuid.NewString(), `{"manuscriptId":"M-1","title":"Über 🧬 \"quoted\""}`
	if st := post(t, webhooks, webhookURL, testSecret, "manuscript.submitted", p1, e1); st != http.StatusOK {
		t.Fatalf("webhook = %d, want 200", st)
	}
	out := mustCLI(t, cenv, "stream", addr, "--subscription", "cli", "--start", "oldest", "--max-events", "1", "--ack")
	lines := jsonLines(t, out)
	if len(lines) != 1 || lines[0]["id"] != e1 || lines[0]["type"] != "manuscript.submitted" || lines[0]["attempt"] != 1.0 || lines[0]["receivedAt"] == nil {
		t.Fatalf("stream printed %s, want event %s", out, e1)
	}
	if !sameJSON(t, lines[0]["payload"], p1) {
		t.Fatalf("stream payload = %v, want %s", lines[0]["payload"], p1)
	}
	// --ack acknowledged it: acking again finds nothing.
	out = mustCLI(t, cenv, "ack", addr, "--subscription", "cli", e1)
	if !sameJSON(t, jsonLines(t, out)[0], `{"eventIds":[],"unknownEventIds":["`+e1+`"]}`) {
		t.Fatalf("ack of an acknowledged event printed %s", out)
	}

	// reject: with one attempt allowed, the event becomes a dead letter.
	sctx, cancelStream := context.WithCancel(t.Context())
	defer cancelStream()
	ctx := metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+testToken)
	grpcc, _ := grpcClient(t, a.GRPC)
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "cli", MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	e2 := uuid.NewString()
	if st := post(t, webhooks, webhookURL, testSecret, "manuscript.submitted", `{"manuscriptId":"M-2"}`, e2); st != http.StatusOK {
		t.Fatalf("webhook = %d, want 200", st)
	}
	if got := recvEvent(t, stream); got.GetId() != e2 {
		t.Fatalf("streamed %s, want %s", got.GetId(), e2)
	}
	out = mustCLI(t, cenv, "reject", addr, "--subscription", "cli", "--redeliver-delay", "10ms", e2)
	if !sameJSON(t, jsonLines(t, out)[0], `{"eventIds":["`+e2+`"],"unknownEventIds":[]}`) {
		t.Fatalf("reject printed %s", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out = mustCLI(t, cenv, "dead-letters", "list", addr, "--subscription", "cli")
		if strings.Contains(out, e2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a dead letter within 20s: %q", e2, out)
		}
		time.Sleep(20 * time.Millisecond) // polling the sidecar's state, not timing
	}
	dead := jsonLines(t, out)
	if len(dead) != 1 || dead[0]["id"] != e2 || dead[0]["deadAt"] == nil || !sameJSON(t, dead[0]["payload"], `{"manuscriptId":"M-2"}`) {
		t.Fatalf("dead-letters list printed %s", out)
	}

	// replay: the dead letter is offered again, and ack settles it.
	out = mustCLI(t, cenv, "dead-letters", "replay", addr, "--subscription", "cli", "--all")
	if !sameJSON(t, jsonLines(t, out)[0], `{"eventIds":["`+e2+`"],"unknownEventIds":[]}`) {
		t.Fatalf("dead-letters replay printed %s", out)
	}
	if got := recvEvent(t, stream); got.GetId() != e2 {
		t.Fatalf("after replay streamed %s, want %s", got.GetId(), e2)
	}
	out = mustCLI(t, cenv, "ack", addr, "--subscription", "cli", e2)
	if !sameJSON(t, jsonLines(t, out)[0], `{"eventIds":["`+e2+`"],"unknownEventIds":[]}`) {
		t.Fatalf("ack printed %s", out)
	}

	// subscriptions: list, get, a narrowing update, delete.
	out = mustCLI(t, cenv, "subscriptions", "list", addr)
	if l := jsonLines(t, out); len(l) != 1 || l[0]["name"] != "cli" {
		t.Fatalf("subscriptions list printed %s", out)
	}
	out = mustCLI(t, cenv, "subscriptions", "get", addr, "--subscription", "cli")
	if l := jsonLines(t, out)[0]; l["name"] != "cli" {
		t.Fatalf("subscriptions get printed %s", out)
	}
	out = mustCLI(t, cenv, "subscriptions", "update", addr, "--subscription", "cli", "--event-types", "manuscript.status.*")
	if l := jsonLines(t, out)[0]; !strings.Contains(out, "manuscript.status.*") || l["subscription"] == nil {
		t.Fatalf("subscriptions update printed %s", out)
	}
	if _, err := cli(t, cenv, "subscriptions", "get", addr, "--subscription", "nope"); status.Code(err) != codes.NotFound {
		t.Fatalf("subscriptions get of an unknown subscription = %v, want NotFound", err)
	}
	cancelStream()
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, err := cli(t, cenv, "subscriptions", "delete", addr, "--subscription", "cli")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions delete = %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := mustCLI(t, cenv, "subscriptions", "list", addr); strings.TrimSpace(out) != "" {
		t.Fatalf("subscriptions list after delete printed %s", out)
	}

	// send and sent, the payload from --payload and from a file.
	out = mustCLI(t, cenv, "send", addr, "--type", "manuscript.submitted", "--payload", `{"manuscriptId":"M-9"}`, "--idempotency-key", "k-1")
	if l := jsonLines(t, out)[0]; l["state"] != "SENT_EVENT_STATE_ACCEPTED" || l["idempotencyKey"] != "k-1" || l["eventId"] == "" {
		t.Fatalf("send printed %s", out)
	}
	file := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(file, []byte(`{"manuscriptId":"M-10"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, cenv, "send", addr, "--type", "manuscript.status.updated", "--idempotency-key", "k-2", "--async", file)
	if l := jsonLines(t, out)[0]; l["idempotencyKey"] != "k-2" {
		t.Fatalf("send --async printed %s", out)
	}
	out = mustCLI(t, cenv, "sent", addr, "k-1")
	if l := jsonLines(t, out)[0]; l["state"] != "SENT_EVENT_STATE_ACCEPTED" || l["type"] != "manuscript.submitted" || l["idempotencyKey"] != "k-1" {
		t.Fatalf("sent printed %s", out)
	}
	var got []string
	for _, in := range emu.Inbound() {
		got = append(got, string(in.Payload))
	}
	if !strings.Contains(strings.Join(got, " "), `"M-9"`) {
		t.Fatalf("ChronosHub received %q, want M-9", got)
	}

	// Errors carry the status and its details, and fail the command.
	errorCases := []struct {
		name string
		env  map[string]string
		args []string
		code codes.Code
		want []string
	}{
		{"no token", nil, []string{"sent", addr, "k-1"}, codes.Unauthenticated, []string{"client sent: Unauthenticated: a valid bearer token is required"}},
		{"unknown key", cenv, []string{"sent", addr, "nope"}, codes.NotFound, []string{"client sent: NotFound"}},
		{"ack on an unknown subscription", cenv, []string{"ack", addr, "--subscription", "clj", e1}, codes.NotFound, []string{"client ack: NotFound", "clj"}},
		{"reject on an unknown subscription", cenv, []string{"reject", addr, "--subscription", "clj", e1}, codes.NotFound, []string{"client reject: NotFound"}},
		{"dead letters of an unknown subscription", cenv, []string{"dead-letters", "list", addr, "--subscription", "clj"}, codes.NotFound, []string{"client dead-letters list: NotFound"}},
		{"bad type", cenv, []string{"send", addr, "--type", "Bad Type", "--payload", "{}"}, codes.InvalidArgument, []string{"client send: InvalidArgument", "\n  field type: "}},
		{"key reused with another payload", cenv, []string{"send", addr, "--type", "manuscript.submitted", "--payload", `{"manuscriptId":"other"}`, "--idempotency-key", "k-1"},
			codes.AlreadyExists, []string{"\n  reason: IDEMPOTENCY_KEY_CONFLICT ("}},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cli(t, tt.env, tt.args...)
			if status.Code(err) != tt.code {
				t.Fatalf("client %q = %v, want code %v", tt.args, err, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("client %q error = %q, want it to contain %q", tt.args, err, w)
				}
			}
		})
	}
}

// TestClientUnixSocket reaches a sidecar over a unix socket with the token
// from --token-file.
func TestClientUnixSocket(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["CHRONOSHUB_GRPC_ADDR"] = "unix://" + filepath.Join(dir, "grpc.sock")
	env["CHRONOSHUB_API_TOKEN_FILE"] = tokenFile
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	if !strings.HasPrefix(a.GRPC, "unix://") {
		t.Fatalf("gRPC address %q is not a unix socket", a.GRPC)
	}

	e1 := uuid.NewString()
	if st := post(t, webhooks, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"n":1}`, e1); st != http.StatusOK {
		t.Fatalf("webhook = %d, want 200", st)
	}
	out := mustCLI(t, nil, "stream", "--addr", a.GRPC, "--token-file", tokenFile, "--subscription", "sock", "--start", "oldest", "--event-types", "manuscript.*", "--max-events", "1", "--ack")
	if l := jsonLines(t, out)[0]; l["id"] != e1 || !sameJSON(t, l["payload"], `{"n":1}`) {
		t.Fatalf("stream over the socket printed %s", out)
	}

	// Without --max-events, stream runs until stopped (Ctrl-C), which is
	// not a failure. It keeps the subscription's filter: a stream with
	// another filter is refused while the sidecar still counts the first
	// stream as open.
	e2 := uuid.NewString()
	running := start(t, []string{"client", "stream", "--addr", a.GRPC, "--token-file", tokenFile, "--subscription", "sock", "--event-types", "manuscript.*"}, nil)
	if st := post(t, webhooks, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"n":2}`, e2); st != http.StatusOK {
		t.Fatalf("webhook = %d, want 200", st)
	}
	running.stdout.waitText(t, e2)
	if err := running.stop(t); err != nil {
		t.Fatalf("stream stopped by a signal = %v, want nil", err)
	}

	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, nil, "sent", "--addr", a.GRPC, "--token-file", wrong, "k"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("client with a wrong token = %v, want Unauthenticated", err)
	}
	// The file wins over the variable.
	if _, err := cli(t, map[string]string{"CHRONOSHUB_API_TOKEN": testToken}, "sent", "--addr", a.GRPC, "--token-file", wrong, "k"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("client with a wrong token file and a right variable = %v, want Unauthenticated", err)
	}
	if _, err := cli(t, nil, "sent", "--addr", a.GRPC, "--token-file", tokenFile, "k"); status.Code(err) != codes.NotFound {
		t.Fatalf("client with the token file = %v, want NotFound", err)
	}
	// The sidecar's own variables work too: the client run in its container.
	if _, err := cli(t, map[string]string{"CHRONOSHUB_API_TOKEN_FILE": tokenFile, "CHRONOSHUB_GRPC_ADDR": a.GRPC}, "sent", "k"); status.Code(err) != codes.NotFound {
		t.Fatalf("client with CHRONOSHUB_API_TOKEN_FILE and CHRONOSHUB_GRPC_ADDR = %v, want NotFound", err)
	}
}

// TestClientUsageErrors checks that bad invocations fail before any RPC,
// with a message saying what to change.
func TestClientUsageErrors(t *testing.T) {
	t.Parallel()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// An address nothing listens on: a command that got as far as an RPC
	// would fail with Unavailable instead of the usage error.
	const nowhere = "--addr=127.0.0.1:1"
	tests := []struct {
		args []string
		want string
	}{
		{nil, "client: missing command"},
		{[]string{"frobnicate"}, `client: unknown command "frobnicate"`},
		{[]string{"dead-letters"}, `want "list" or "replay"`},
		{[]string{"stream", nowhere}, "client stream: --subscription is required"},
		{[]string{"stream", nowhere, "--subscription", "s", "--start", "yesterday"}, `--start "yesterday": want "oldest", "now" or an RFC 3339 time`},
		{[]string{"stream", "--bogus"}, "client stream: flag provided but not defined: --bogus (see chronoshub-sidecar client stream --help)"},
		{[]string{"ack", nowhere, "--subscription", "s"}, "no event id given"},
		{[]string{"ack", nowhere, "e1"}, "--subscription is required"},
		{[]string{"send", nowhere, "--payload", "{}"}, "--type is required"},
		{[]string{"send", nowhere, "--type", "a.b", "--payload", "{not json"}, "the payload is not valid JSON"},
		{[]string{"send", nowhere, "--type", "a.b"}, "no payload"},
		{[]string{"send", nowhere, "--type", "a.b", "--payload", "{}", "file.json"}, "--payload and a payload file are both given"},
		{[]string{"send", nowhere, "--type", "a.b", "--sample"}, `--sample: the catalogue has no event type "a.b" (it has manuscript.status.updated, manuscript.submitted)`},
		{[]string{"send", nowhere, "--type", "manuscript.submitted", "--sample", "--payload", "{}"}, "--sample and a payload are both given"},
		{[]string{"sent", nowhere}, "one idempotency key expected"},
		{[]string{"dead-letters", "replay", nowhere, "--subscription", "s"}, "give event ids, or --all"},
		{[]string{"dead-letters", "replay", nowhere, "--subscription", "s", "--all", "e1"}, "give event ids or --all, not both"},
		{[]string{"sent", "--addr", "https://x:1", "k"}, "client sent: --addr:"},
		{[]string{"sent", nowhere, "--token-file", empty, "k"}, "client sent: --token-file:"},
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
	both := map[string]string{"CHRONOSHUB_API_TOKEN": "t", "CHRONOSHUB_API_TOKEN_FILE": empty}
	if _, err := cli(t, both, "sent", nowhere, "k"); err == nil || !strings.Contains(err.Error(), "CHRONOSHUB_API_TOKEN and CHRONOSHUB_API_TOKEN_FILE are both set") {
		t.Errorf("client with both token variables = %v, want a refusal", err)
	}
	// A sidecar that is not there: the status says Unavailable.
	_, err := cli(t, nil, "sent", nowhere, "k")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "client sent: Unavailable") {
		t.Fatalf("client against no sidecar = %v, want Unavailable", err)
	}
	if errors.Is(err, errExitStatus) {
		t.Fatal("an RPC error must be printed by main, not swallowed")
	}
}

// TestClientMaxEventsTakesNoMore runs "stream --max-events 1 --ack" five
// times over eight events: each run holds no more than the one event it
// prints, so no event uses attempts unseen and none becomes a dead letter.
// Before, each run took the whole window (256 events) and returned seven
// unprinted, each charged an attempt: after five runs three events were dead
// letters at attempt 5.
func TestClientMaxEventsTakesNoMore(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	a := start(t, []string{"serve"}, env).ready(t)
	addr := "--addr=" + a.GRPC
	var ids []string
	for i := range 8 {
		id := uuid.NewString()
		ids = append(ids, id)
		if st := post(t, webhooks, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", fmt.Sprintf(`{"n":%d}`, i), id); st != http.StatusOK {
			t.Fatalf("webhook %d = %d, want 200", i, st)
		}
	}
	for i := range 5 {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), []string{"client", "stream", addr, "--subscription", "one-by-one", "--max-events", "1", "--ack"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		// The first run created the subscription, and says so.
		created := strings.Contains(stderr.String(), `created subscription "one-by-one", which replays 8 stored events`)
		if created != (i == 0) {
			t.Errorf("run %d: stderr %q; want the creation note on the first run only", i, stderr.String())
		}
		out := stdout.String()
		if l := jsonLines(t, out); len(l) != 1 || l[0]["id"] != ids[i] {
			t.Fatalf("run %d printed %s, want event %s", i, out, ids[i])
		}
	}
	if out := mustCLI(t, nil, "dead-letters", "list", addr, "--subscription", "one-by-one"); strings.TrimSpace(out) != "" {
		t.Fatalf("dead letters after five runs of --max-events 1 --ack: %s, want none", out)
	}
	sub := jsonLines(t, mustCLI(t, nil, "subscriptions", "get", addr, "--subscription", "one-by-one"))[0]
	// No run was handed an event it did not print (each stream asked for one
	// event in all, not only one at a time): the three left were never
	// delivered. (Asking only for one at a time, acknowledging the printed
	// event let the sidecar hand over the next one before the client exited;
	// given back only once the sidecar noticed the client gone, it could
	// come after the event behind it in the next run.)
	if toInt(t, sub["pendingCount"]) != 3 || toInt(t, sub["unackedCount"]) != 0 || sub["deadLetterCount"] != "0" || sub["ackedSequence"] != "5" {
		t.Fatalf("subscription after five events acknowledged: %v, want 3 pending, none unacked, 5 acknowledged and no dead letters", sub)
	}
}

func TestStreamWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		maxEvents   int
		maxInFlight uint
		want        uint
	}{
		{0, 0, 0},
		{0, 7, 7},
		{1, 0, 1},
		{5, 3, 3},
		{5, 300, 5},
	}
	for _, tt := range tests {
		if got := streamWindow(tt.maxEvents, tt.maxInFlight); got != tt.want {
			t.Errorf("streamWindow(%d, %d) = %d, want %d", tt.maxEvents, tt.maxInFlight, got, tt.want)
		}
	}
}

// TestClientLargeEvent streams a 5 MiB event and lists it as a dead letter
// with the client, which prints every field: before, both failed with
// ResourceExhausted (grpc-go's 4 MiB receive limit), and dead-letters list
// dropped the reason.
func TestClientLargeEvent(t *testing.T) {
	t.Parallel()
	_, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	env["CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES"] = fmt.Sprint(6 << 20)
	env["CHRONOSHUB_MAX_ATTEMPTS"] = "1"
	a := start(t, []string{"serve"}, env).ready(t)
	addr := "--addr=" + a.GRPC
	payload := bigPayload(5 << 20)
	id := uuid.NewString()
	if st := post(t, webhooks, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", payload, id); st != http.StatusOK {
		t.Fatalf("5 MiB webhook = %d, want 200", st)
	}
	out := mustCLI(t, nil, "stream", addr, "--subscription", "big", "--max-events", "1")
	if l := jsonLines(t, out); len(l) != 1 || l[0]["id"] != id || !sameJSON(t, l[0]["payload"], payload) {
		t.Fatalf("stream of a 5 MiB event printed %.300s", out)
	}
	// With one attempt allowed, the event comes back as a dead letter when
	// a stream is open again.
	conn, err := grpcDial(a.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := sidecarv1.NewEventServiceClient(conn).StreamEvents(t.Context(), &sidecarv1.StreamEventsRequest{Subscription: "big"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out = mustCLI(t, nil, "dead-letters", "list", addr, "--subscription", "big")
		if strings.Contains(out, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a dead letter within 20s: %.300q", id, out)
		}
		time.Sleep(20 * time.Millisecond) // polling the sidecar's state, not timing
	}
	l := jsonLines(t, out)
	if len(l) != 1 || l[0]["reason"] != "max_attempts" || l[0]["deadAt"] == nil || l[0]["attempt"] != 1.0 || !sameJSON(t, l[0]["payload"], payload) {
		t.Fatalf("dead-letters list printed %.300s, want the event with reason max_attempts and attempt 1", out)
	}
}

// toInt reads a JSON number or a protojson 64-bit integer (a string); absent
// is 0.
func toInt(t *testing.T, v any) int {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return 0
	case float64:
		return int(v)
	case string:
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("%q is not a number", v)
		}
		return n
	}
	t.Fatalf("%v is not a number", v)
	return 0
}
