package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

// startDev runs the dev playground on :0 ports and returns what it printed.
func startDev(t *testing.T) (r *running, out, emulatorURL, webhookURL, certFile, secret string, a sidecar.Addrs) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".chronoshub-dev")
	r = start(t, []string{"dev", "--dir", dir,
		"--webhook-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0", "--emulator-retry-base", "10ms"}, nil)
	a = r.ready(t)
	out = r.stdout.waitText(t, "Ctrl-C stops everything")
	find := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("dev output has no %s:\n%s", re, out)
		}
		return m[1]
	}
	if l := r.stderr.waitLine(t, "emulator listening"); "http://"+l["emulator_addr"].(string) != find(`emulator  (http://\S+)`) {
		t.Fatalf("emulator address in the log %v differs from the printed one", l)
	}
	return r, out, find(`emulator  (http://\S+)`), find(`webhook   (https://\S+)`), find(`self-signed certificate (\S+)\)`), find(`webhook secret  (\S+)`), a
}

// TestDev drives the playground end to end: an event delivered by the
// emulator comes out of a stream, and an event sent with SendEvent reaches
// the emulator.
func TestDev(t *testing.T) {
	t.Parallel()
	r, out, emulatorURL, webhookURL, _, _, a := startDev(t)
	for _, want := range []string{"client stream --addr " + a.GRPC + " --subscription dev --ack", "curl -N 'http://" + a.HTTP + "/v1/events:stream", "/_emulator/deliveries", "/v1/events:send"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output lacks %q", want)
		}
	}
	// The console the banner names answers.
	if st, page := httpGet(t, "http://"+a.HTTP+"/console"); !strings.Contains(out, "console   http://"+a.HTTP+"/console") || st != http.StatusOK || !strings.Contains(page, "chronoshub-sidecar console") {
		t.Errorf("dev's console: banner names it %v, GET = %d", strings.Contains(out, "/console"), st)
	}
	// The banner's send command works as printed, and again: it uses no
	// idempotency key that a second run would find taken.
	m := regexp.MustCompile(`client send --addr (\S+) --type (\S+) --payload '([^']+)'`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev output has no client send command:\n%s", out)
	}
	for i := range 2 {
		stdout := newCapture()
		if err := run(t.Context(), []string{"client", "send", "--addr", m[1], "--type", m[2], "--payload", m[3]}, nil, stdout, newCapture()); err != nil {
			t.Fatalf("the banner's client send, run %d: %v", i+1, err)
		}
	}
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	body, _ := json.Marshal(map[string]string{"url": webhookURL, "event_type": "manuscript.submitted", "event_id": id})
	if st, resp := httpPost(t, emulatorURL+"/_emulator/deliveries", string(body)); st != http.StatusAccepted {
		t.Fatalf("start delivery = %d %s", st, resp)
	}
	got := recvEvent(t, stream)
	if got.GetId() != id || string(got.GetPayload()) != string(emulator.DefaultPayload("manuscript.submitted")) {
		t.Fatalf("event = %v, want %s with the sample payload", got, id)
	}
	if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "dev", EventIds: []string{id}}); err != nil {
		t.Fatal(err)
	}

	resp, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"manuscriptId":"M-1","status":"accepted"}`), IdempotencyKey: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, inbound := httpGet(t, emulatorURL+"/_emulator/inbound")
	if !strings.Contains(inbound, resp.GetEventId()) || !strings.Contains(inbound, `"manuscriptId":"M-1"`) {
		t.Fatalf("emulator inbound %s lacks event %s", inbound, resp.GetEventId())
	}
	// client send --sample sends the catalogue's fixture for each type, as
	// trigger does for webhooks.
	for _, typ := range emulator.DefaultEventTypes() {
		stdout := newCapture()
		if err := run(t.Context(), []string{"client", "send", "--addr", a.GRPC, "--type", typ, "--sample"}, nil, stdout, newCapture()); err != nil {
			t.Fatalf("client send --type %s --sample: %v", typ, err)
		}
		var sent struct{ EventID string }
		if err := json.Unmarshal([]byte(stdout.String()), &sent); err != nil || sent.EventID == "" {
			t.Fatalf("client send --sample printed %q", stdout.String())
		}
		var got []emulator.InboundEvent
		_, list := httpGet(t, emulatorURL+"/_emulator/inbound")
		if err := json.Unmarshal([]byte(list), &got); err != nil {
			t.Fatal(err)
		}
		// The list shows payloads as JSON values, compacted.
		var want bytes.Buffer
		if err := json.Compact(&want, emulator.DefaultPayload(typ)); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(got, func(e emulator.InboundEvent) bool { return e.EventID == sent.EventID })
		if i < 0 || got[i].EventType != typ || !bytes.Equal(got[i].Payload, want.Bytes()) {
			t.Errorf("emulator received %+v, want %s with the sample payload of %s", got, sent.EventID, typ)
		}
	}
	// A type outside the catalogue is refused by the emulator, as
	// ChronosHub refuses a type the partner is not authorised for, and the
	// app hears it; before, every one of these was accepted and forwarded.
	for _, typ := range []string{"manuscript_submitted", "manuscript.submittd", "Manuscript.Submitted", "x"} {
		_, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: typ, Payload: []byte(`{"manuscriptId":"M-1"}`)})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "not authorised") {
			t.Errorf("SendEvent(%q) = %v, want INVALID_ARGUMENT saying the type is not authorised", typ, err)
		}
	}
	cancel()
	if err := r.stop(t); err != nil {
		t.Fatalf("dev = %v, want nil after Ctrl-C", err)
	}
}

// TestTrigger sends webhooks with the trigger subcommand to a dev sidecar.
func TestTrigger(t *testing.T) {
	t.Parallel()
	_, _, _, webhookURL, certFile, secret, a := startDev(t)
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "t"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr error // nil, errExitStatus, or any error (errAny)
		stdout  string
	}{
		{"accepted", []string{"--ca-file", certFile, "--event-id", "7d5c2a4e-8a51-4b5e-9d33-0a3a2f9d1e11", webhookURL},
			map[string]string{"CHRONOSHUB_WEBHOOK_SECRET": secret}, nil, "accepted: event 7d5c2a4e-8a51-4b5e-9d33-0a3a2f9d1e11"},
		{"wrong secret", []string{"--ca-file", certFile, webhookURL},
			map[string]string{"CHRONOSHUB_WEBHOOK_SECRET": "not-the-secret"}, errExitStatus, "HTTP 401"},
		{"retries then gives up", []string{"--ca-file", certFile, "--retries", "1", "--retry-wait", "1ms", webhookURL},
			map[string]string{"CHRONOSHUB_WEBHOOK_SECRET": "not-the-secret"}, errExitStatus, "not accepted after 2 attempt(s)"},
		{"untrusted certificate", []string{webhookURL},
			map[string]string{"CHRONOSHUB_WEBHOOK_SECRET": secret}, errExitStatus, "no answer"},
		{"no secret", []string{"--ca-file", certFile, webhookURL}, nil, errAny, ""},
		{"bad type", []string{"--type", "Bad Type", "--ca-file", certFile, webhookURL},
			map[string]string{"CHRONOSHUB_WEBHOOK_SECRET": secret}, errAny, ""},
		{"unknown type without payload", []string{"--type", "invoice.paid", "--ca-file", certFile, webhookURL},
			map[string]string{"CHRONOSHUB_WEBHOOK_SECRET": secret}, errAny, ""},
		{"help", []string{"--help"}, nil, flag.ErrHelp, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := newCapture(), newCapture()
			err := run(context.Background(), append([]string{"trigger"}, tt.args...), func(k string) string { return tt.env[k] }, stdout, stderr)
			switch {
			case tt.wantErr == errAny && err == nil,
				tt.wantErr != errAny && !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil):
				t.Fatalf("trigger = %v, want %v; stdout:\n%s", err, tt.wantErr, stdout.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Fatalf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), secret) {
				t.Fatal("trigger printed the secret")
			}
		})
	}
	if got := recvEvent(t, stream); got.GetId() != "7d5c2a4e-8a51-4b5e-9d33-0a3a2f9d1e11" {
		t.Fatalf("triggered event = %v", got)
	}
}

// errAny stands for "some error" in test tables.
var errAny = errors.New("any error")

func TestEmulate(t *testing.T) {
	t.Parallel()
	r := start(t, []string{"emulate", "--addr", "127.0.0.1:0"}, map[string]string{"CHRONOSHUB_EMULATOR_API_KEY": "emu-key"})
	out := r.stdout.waitText(t, "ChronosHub emulator on ")
	m := regexp.MustCompile(`ChronosHub emulator on (http://\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no address in %q", out)
	}
	if strings.Contains(out, "generated API key") || !strings.Contains(out, "generated webhook secret") {
		t.Fatalf("emulate should generate only the webhook secret:\n%s", out)
	}
	post := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, m[1]+"/inbound/manuscript.submitted", strings.NewReader(`{"manuscriptId":"M-1"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post("emu-key"); st != http.StatusAccepted {
		t.Fatalf("inbound with the key = %d, want 202", st)
	}
	if st := post("wrong"); st != http.StatusUnauthorized {
		t.Fatalf("inbound with a wrong key = %d, want 401", st)
	}
	// The catalogue is authorised by default; another type is refused.
	req, _ := http.NewRequest(http.MethodPost, m[1]+"/inbound/manuscript_submitted", strings.NewReader(`{"manuscriptId":"M-2"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", "emu-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"eventType"`) {
		t.Fatalf("inbound of an unauthorised type = %d %s, want 400 naming eventType", resp.StatusCode, body)
	}
	if _, list := httpGet(t, m[1]+"/_emulator/inbound"); !strings.Contains(list, `"manuscriptId":"M-1"`) {
		t.Fatalf("received list = %s", list)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("emulate = %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no subcommand", nil},
		{"unknown subcommand", []string{"frobnicate"}},
		{"serve without configuration", []string{"serve"}},
		{"serve with a secret flag", []string{"serve", "--api-key", "x"}},
		{"emulate with arguments", []string{"emulate", "extra"}},
		{"emulate authorising no event type", []string{"emulate", "--addr", "127.0.0.1:0", "--event-types", " , "}},
		{"emulate with an invalid event type", []string{"emulate", "--addr", "127.0.0.1:0", "--event-types", "manuscript..submitted"}},
		{"dev with arguments", []string{"dev", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := newCapture(), newCapture()
			if err := run(context.Background(), tt.args, func(string) string { return "" }, stdout, stderr); err == nil {
				t.Fatalf("run(%q) = nil, want an error", tt.args)
			}
		})
	}
}
