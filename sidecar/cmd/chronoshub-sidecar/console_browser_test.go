package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// TestBrowserConsole opens the console in a real Chromium and checks what
// an operator sees and does there: a webhook received a moment ago (and one
// refused, with its reason), its delivery to the app (acknowledged), a dead
// letter, and replays started from the page (a dead letter, and an event by
// id) that reach the app. A page of another origin can neither read the
// console or the API it uses nor start a replay through them.
//
// With CHRONOSHUB_CONSOLE_SCREENSHOT set to a path, it saves a PNG of the
// page there (docs/console.png is made so).
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	chromium := installChromium(t)
	_, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	env["CHRONOSHUB_MAX_ATTEMPTS"] = "1" // a rejected event is a dead letter when it comes back
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	webhookURL := "https://" + a.Webhook + "/webhook"
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx := t.Context()

	// The app streams; it acknowledges the first event and rejects the
	// next two, which become dead letters.
	stream, err := grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app", EventTypes: []string{"manuscript.>"}, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	webhook := func(typ, payload string) string {
		t.Helper()
		id := uuid.NewString()
		if st := post(t, webhooks, webhookURL, testSecret, typ, payload, id); st != http.StatusOK {
			t.Fatalf("webhook = %d, want 200", st)
		}
		return id
	}
	settle := func(id string, reject bool) {
		t.Helper()
		if e := recvEvent(t, stream); e.GetId() != id {
			t.Fatalf("the app got %s, want %s", e.GetId(), id)
		}
		if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: []string{id}, Reject: reject}); err != nil {
			t.Fatal(err)
		}
	}
	acked := webhook("manuscript.submitted", `{"manuscriptId":"MS-2026-0042","title":"Über 𝔸lgebra 🧪"}`)
	settle(acked, false)
	dead1 := webhook("manuscript.status.updated", `{"manuscriptId":"MS-2026-0043","status":"accepted"}`)
	settle(dead1, true)
	dead2 := webhook("manuscript.status.updated", `{"manuscriptId":"MS-2026-0044","status":"rejected"}`)
	settle(dead2, true)
	if st := post(t, webhooks, webhookURL, "not-the-secret", "manuscript.submitted", `{"manuscriptId":"MS-X"}`, uuid.NewString()); st != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong signature = %d, want 401", st)
	}
	if _, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: "manuscript.status.updated", Payload: []byte(`{"manuscriptId":"MS-2026-0042","status":"in_review"}`), IdempotencyKey: "review-MS-2026-0042"}); err != nil {
		t.Fatal(err)
	}
	latest := webhook("manuscript.submitted", `{"manuscriptId":"MS-2026-0045","title":"A moment ago"}`)
	settle(latest, false)

	browser := startChromium(t, chromium)
	consoleURL := "http://" + a.HTTP + "/console"
	page := browser.page(t, consoleURL)
	page.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1440, "height": 1200, "deviceScaleFactor": 1, "mobile": false}, nil)

	// A webhook received a moment ago, and the refused one with its reason.
	page.waitTrue(t, "the latest webhook, stored", fmt.Sprintf(`!!document.querySelector('#webhooks tr[data-event-id=%q][data-outcome="stored"]')`, latest))
	page.waitTrue(t, "the refused webhook, with its reason", `[...document.querySelectorAll('#webhooks tr[data-outcome="rejected"]')].some(r => r.textContent.includes('bad_signature') && r.textContent.includes('401'))`)
	page.waitTrue(t, "the app's subscription with its open stream", `(() => { const r = document.querySelector('#subs tr[data-subscription="app"]'); return !!r && r.cells[1].textContent === 'manuscript.>' && r.cells[5].textContent === '1'; })()`)
	page.waitTrue(t, "the sent event, accepted", `!!document.querySelector('#sent tr[data-key="review-MS-2026-0042"][data-state="accepted"]')`)
	// Its delivery to the app: opened from the webhook list.
	page.eval(t, fmt.Sprintf(`document.querySelector('#webhooks button[data-event-id=%q]').click()`, acked))
	page.waitTrue(t, "the event's payload", `document.getElementById('event-payload').textContent.includes('MS-2026-0042') && document.getElementById('event-payload').textContent.includes('𝔸lgebra')`)
	page.waitTrue(t, "its delivery to the app, acknowledged", `!!document.querySelector('#event-deliveries tr[data-subscription="app"][data-state="acked"]')`)
	// The dead letters.
	for _, id := range []string{dead1, dead2} {
		page.waitTrue(t, "dead letter "+id, fmt.Sprintf(`!!document.querySelector('#dead tr[data-event-id=%q]')`, id))
	}
	if path := os.Getenv("CHRONOSHUB_CONSOLE_SCREENSHOT"); path != "" {
		page.eval(t, `window.scrollTo(0, 0)`)
		var shot struct {
			Data string `json:"data"`
		}
		page.call(t, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
		png, err := base64.StdEncoding.DecodeString(shot.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of the console: %s (%d bytes)", path, len(png))
	}

	// Replays started from the page reach the app: a dead letter, then an
	// acknowledged event by id through the replay form.
	page.eval(t, fmt.Sprintf(`document.querySelector('#dead button[data-replay=%q]').click()`, dead1))
	e := recvEvent(t, stream)
	if e.GetId() != dead1 || e.GetAttempt() != 1 || !e.GetReplay() {
		t.Fatalf("after the page's dead-letter replay the app got %s (attempt %d, replay %v), want %s, attempt 1, replay", e.GetId(), e.GetAttempt(), e.GetReplay(), dead1)
	}
	settle2(t, grpcc, e.GetId())
	page.eval(t, fmt.Sprintf(`(() => {
		document.getElementById('replay-sub').value = 'app';
		document.getElementById('replay-ids').value = %q;
		document.getElementById('replay-form').requestSubmit();
	})()`, acked))
	e = recvEvent(t, stream)
	if e.GetId() != acked || e.GetAttempt() != 1 || !e.GetReplay() || string(e.GetPayload()) != `{"manuscriptId":"MS-2026-0042","title":"Über 𝔸lgebra 🧪"}` {
		t.Fatalf("after the page's replay the app got %s (attempt %d, replay %v, payload %s), want %s replayed byte for byte", e.GetId(), e.GetAttempt(), e.GetReplay(), e.GetPayload(), acked)
	}
	settle2(t, grpcc, e.GetId())
	page.waitTrue(t, "the replay's result", `document.getElementById('replay-result').dataset.replayed === '1'`)
	page.waitTrue(t, "the replayed dead letter gone from the list", fmt.Sprintf(`!document.querySelector('#dead tr[data-event-id=%q]') && !!document.querySelector('#dead tr[data-event-id=%q]')`, dead1, dead2))

	// A page of another origin tries to read the console and the API and to
	// start a replay.
	_, apiPort, _ := strings.Cut(a.HTTP, ":")
	api := "http://127.0.0.1:" + apiPort
	attackPage := fmt.Sprintf(`<!doctype html><body><script>
const api = %q, results = {};
const read = (name, p) => p.then(r => r.text()).then(() => 'read', () => 'blocked').then(v => { results[name] = v; });
Promise.all([
  read('console', fetch(api + '/console')),
  read('script', fetch(api + '/console/app.js')),
  read('subscriptions', fetch(api + '/v1/subscriptions')),
  read('event', fetch(api + '/v1/events/%s')),
  read('delete', fetch(api + '/v1/subscriptions/app', {method: 'DELETE'})),
  fetch(api + '/v1/subscriptions/app/events:replay', {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({eventIds: [%q]})}).then(() => { results.replay = 'sent'; }, () => { results.replay = 'failed'; }),
  fetch(api + '/v1/subscriptions/app/dead-letters:replay', {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({all: true})}).then(() => { results.deadReplay = 'sent'; }, () => { results.deadReplay = 'failed'; }),
]).then(() => { document.body.dataset.results = JSON.stringify(results); });
</script></body>`, api, acked, acked)
	attackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, attackPage)
	}))
	t.Cleanup(attackSrv.Close)
	mark := r.stderr.lineCount()
	attack := browser.page(t, attackSrv.URL+"/attack.html")
	attack.waitTrue(t, "the attack page's results", `!!document.body.dataset.results`)
	var results map[string]string
	if err := json.Unmarshal([]byte(attack.evalString(t, `document.body.dataset.results`)), &results); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"console", "script", "subscriptions", "event", "delete"} {
		if results[k] != "blocked" {
			t.Errorf("a page of another origin could read %s: %v", k, results)
		}
	}
	if missing := r.stderr.waitRefusals(mark, []refusal{
		{http.MethodGet, "/v1/subscriptions", "cross-origin"},
		{http.MethodGet, "/v1/events/" + acked, "cross-origin"},
		{http.MethodPost, "/v1/subscriptions/app/events:replay", "cross-origin"},
		{http.MethodPost, "/v1/subscriptions/app/dead-letters:replay", "cross-origin"},
	}, 10*time.Second); len(missing) > 0 {
		t.Errorf("the sidecar did not refuse with 403 %v", missing)
	}
	// Nothing was replayed: the app's subscription holds nothing, and the
	// remaining dead letter is still there.
	sub, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if s := sub.GetSubscription(); s.GetPendingCount() != 0 || s.GetUnackedCount() != 0 || s.GetDeadLetterCount() != 1 {
		t.Errorf("after the attack the app's subscription = %v; want nothing pending or unacked and 1 dead letter", s)
	}

	// The operator deletes an unused subscription from the page: two clicks.
	oldCtx, stopOld := context.WithCancel(ctx)
	if _, err := grpcc.StreamEvents(oldCtx, &sidecarv1.StreamEventsRequest{Subscription: "unused", StartPosition: sidecarv1.StartPosition_START_POSITION_NOW}); err != nil {
		t.Fatal(err)
	}
	page.waitTrue(t, "the unused subscription", `!!document.querySelector('#subs button[data-delete="unused"]')`)
	stopOld()
	page.eval(t, `document.querySelector('#subs button[data-delete="unused"]').click()`)
	if _, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "unused"}); err != nil {
		t.Fatalf("one click deleted the subscription: %v", err)
	}
	page.eval(t, `document.querySelector('#subs button[data-delete="unused"]').click()`)
	page.waitTrue(t, "the unused subscription gone", `!document.querySelector('#subs tr[data-subscription="unused"]') && !!document.querySelector('#subs tr[data-subscription="app"]')`)
	if _, err := grpcc.GetSubscription(ctx, &sidecarv1.GetSubscriptionRequest{Subscription: "unused"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetSubscription(unused) after the page deleted it = %v, want NotFound", err)
	}

	// An id that is not in the log: the page says so, and does not ask again
	// at every refresh (each refused call is a line in the sidecar's log).
	page.eval(t, `(() => {
		document.getElementById('event-id').value = 'no-such-event';
		document.getElementById('event-form').requestSubmit();
	})()`)
	page.waitTrue(t, "the event's absence", `!document.getElementById('event-error').hidden && document.getElementById('event-error').textContent.includes('not in the log')`)
	for range 2 { // two whole refreshes after it
		before := page.evalString(t, `document.body.dataset.updated`)
		page.waitTrue(t, "a refresh", fmt.Sprintf(`document.body.dataset.updated !== %q && !document.getElementById('event-error').hidden`, before))
	}
	asked := 0
	for _, l := range r.stderr.linesSince(0) {
		if l["msg"] == "REST call failed" && l["path"] == "/v1/events/no-such-event" {
			asked++
		}
	}
	if asked != 1 {
		t.Errorf("the page asked for the missing event %d times, want once", asked)
	}
}

// settle2 acknowledges one event of the app's subscription.
func settle2(t *testing.T, c sidecarv1.EventServiceClient, id string) {
	t.Helper()
	resp, err := c.AckEvents(t.Context(), &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: []string{id}})
	if err != nil || len(resp.GetEventIds()) != 1 {
		t.Fatalf("AckEvents(%s) = %v, %v", id, resp, err)
	}
}

// page is a browser tab driven over its DevTools session.
type page struct {
	b       *browser
	session string
}

// page opens url in a new tab and attaches to it.
func (b *browser) page(t *testing.T, url string) *page {
	t.Helper()
	target, err := b.open(url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("Target.attachToTarget", map[string]any{"targetId": target, "flatten": true}, &attached); err != nil {
		t.Fatalf("attach to %s: %v", url, err)
	}
	return &page{b: b, session: attached.SessionID}
}

// call sends one DevTools command to the tab.
func (p *page) call(t *testing.T, method string, params, result any) {
	t.Helper()
	b := p.b
	b.lastID++
	id := b.lastID
	if err := b.ws.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params, "sessionId": p.session}); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	for {
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &resp); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		switch {
		case resp.ID != id:
			continue // an event
		case resp.Error != nil:
			t.Fatalf("%s: %s", method, resp.Error.Message)
		case result != nil:
			if err := json.Unmarshal(resp.Result, result); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// eval evaluates a JavaScript expression in the tab and returns its value
// as JSON; a thrown exception fails the test.
func (p *page) eval(t *testing.T, expr string) json.RawMessage {
	t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	p.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if d := res.ExceptionDetails; d != nil {
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		t.Fatalf("evaluate %s: %s", expr, msg)
	}
	return res.Result.Value
}

func (p *page) evalString(t *testing.T, expr string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(p.eval(t, expr), &s); err != nil {
		t.Fatalf("evaluate %s: not a string: %v", expr, err)
	}
	return s
}

// waitTrue waits until expr is true in the tab, failing after 20s with what
// the page shows.
func (p *page) waitTrue(t *testing.T, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Until the page has loaded, what expr reads may not exist yet.
		if string(p.eval(t, "(() => { try { return !!("+expr+"); } catch (e) { return false; } })()")) == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page does not show %s within 20s (%s); it shows:\n%s", what, expr, p.eval(t, `document.body.innerText`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserConsoleToken: with an API token, the console shows nothing
// until the operator gives the token, then shows what the API answers.
func TestBrowserConsoleToken(t *testing.T) {
	t.Parallel()
	chromium := installChromium(t)
	_, baseURL := hub(t)
	env, webhooks := serveEnv(t, baseURL)
	env["CHRONOSHUB_API_TOKEN"] = testToken
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	id := uuid.NewString()
	if st := post(t, webhooks, "https://"+a.Webhook+"/webhook", testSecret, "manuscript.submitted", `{"manuscriptId":"M-1"}`, id); st != http.StatusOK {
		t.Fatalf("webhook = %d, want 200", st)
	}
	page := startChromium(t, chromium).page(t, "http://"+a.HTTP+"/console")
	page.waitTrue(t, "the token form", `!document.getElementById('token-form').hidden && document.getElementById('status').textContent.includes('bearer token')`)
	if got := page.evalString(t, `document.getElementById('webhooks').textContent`); strings.Contains(got, id) {
		t.Fatalf("the console showed a webhook without the token: %s", got)
	}
	// Until the token is given, the page stops calling (each refused call
	// is a line in the sidecar's log).
	refused := func() int {
		n := 0
		for _, l := range r.stderr.linesSince(0) {
			if l["msg"] == "REST call failed" && l["status"] == float64(http.StatusUnauthorized) {
				n++
			}
		}
		return n
	}
	waitTicks := func(n int) {
		t.Helper()
		for range n {
			before := page.evalString(t, `document.body.dataset.ticks || '0'`)
			page.waitTrue(t, "the page's next tick", fmt.Sprintf(`(document.body.dataset.ticks || '0') !== %q`, before))
		}
	}
	waitTicks(1) // the first calls' answers are in
	before := refused()
	waitTicks(2)
	if after := refused(); after != before {
		t.Errorf("without its token the page kept calling: %d refused calls, then %d two refresh periods later", before, after)
	}
	page.eval(t, fmt.Sprintf(`(() => {
		document.getElementById('token').value = %q;
		document.getElementById('token-form').requestSubmit();
	})()`, testToken))
	page.waitTrue(t, "the webhook, once the token is given", fmt.Sprintf(`!!document.querySelector('#webhooks tr[data-event-id=%q][data-outcome="stored"]') && document.getElementById('token-form').hidden`, id))
	if strings.Contains(r.stderr.String(), testToken) {
		t.Error("the sidecar logged the token")
	}
}

// linesSince returns a copy of the JSON lines written after the first mark.
func (c *capture) linesSince(mark int) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.lines[mark:]...)
}
