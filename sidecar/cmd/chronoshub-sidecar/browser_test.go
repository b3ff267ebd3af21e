package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/websocket"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// chromiumPath is Debian's Chromium, which the browser test installs when it
// runs as root (as CI does) and it is missing.
const chromiumPath = "/usr/bin/chromium"

// refusal is a REST request the sidecar must log as refused with 403.
type refusal struct {
	method, path string
	reason       string // a part of the refusal's message
}

// attack is one web page that tries to use the local API.
type attack struct {
	name   string
	url    string // where the browser opens the page
	page   string // its HTML
	refuse []refusal
}

// TestBrowserCannotUseTheAPI opens, in a real Chromium, pages of other
// origins that try every request a page can make to the sidecar's REST API
// without the API's consent: fetch (a GET of the stream, no-cors text/plain
// POSTs of ack and send), an <img> and an EventSource on the stream, a form
// POST into an iframe, from 127.0.0.1 to localhost and back, and a DNS
// rebinding. The sidecar must have refused each request (its log says so,
// which also proves the browser sent it), and the app's subscription must be
// untouched: every webhook stored before and during the attack reaches the
// real app (a gRPC consumer) on its first attempt, no other consumer was
// handed an event (the delivery counter), its filter never changed, and
// nothing was sent to ChronosHub.
func TestBrowserCannotUseTheAPI(t *testing.T) {
	t.Parallel()
	chromium := installChromium(t)
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	r := start(t, []string{"serve"}, env)
	a := r.ready(t)
	webhookURL := "https://" + a.Webhook + "/webhook"
	grpcc, _ := grpcClient(t, a.GRPC)
	ctx := t.Context()

	// The app's subscription exists with its filter; the app is away (as
	// while it restarts), so a page's stream would be the only consumer.
	appFilter := []string{"manuscript.*"}
	stored := map[string]bool{}
	webhook := func() string {
		t.Helper()
		id := uuid.NewString()
		if st := post(t, client, webhookURL, testSecret, "manuscript.submitted", `{"manuscriptId":"M-1"}`, id); st != http.StatusOK {
			t.Fatalf("webhook = %d, want 200", st)
		}
		stored[id] = true
		return id
	}
	first := webhook()
	appCtx, stopApp := context.WithCancel(ctx)
	stream, err := grpcc.StreamEvents(appCtx, &sidecarv1.StreamEventsRequest{Subscription: "app", EventTypes: appFilter})
	if err != nil {
		t.Fatal(err)
	}
	if e := recvEvent(t, stream); e.GetId() != first {
		t.Fatalf("first event = %s, want %s", e.GetId(), first)
	}
	if _, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: []string{first}}); err != nil {
		t.Fatal(err)
	}
	stopApp()
	// Until the sidecar has ended that stream, it could still be handed the
	// next event, which would come back on attempt 2.
	waitMetric(t, "http://"+a.Admin+"/metrics",
		regexp.MustCompile(`(?m)^chronoshub_sidecar_grpc_requests_total\{code="[A-Za-z]+",method="/chronoshub.sidecar.v1.EventService/StreamEvents"\} 1$`))
	delete(stored, first)
	delivered := 1
	var before []string
	for range 3 {
		before = append(before, webhook())
	}

	// The pages. Two origins of the same machine: 127.0.0.1 and localhost on
	// the attack server's port; the sidecar is addressed both ways too.
	pages := map[string]string{}
	attackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(attackSrv.Close)
	_, attackPort, _ := strings.Cut(strings.TrimPrefix(attackSrv.URL, "http://"), ":")
	_, apiPort, _ := strings.Cut(a.HTTP, ":")
	api := "http://127.0.0.1:" + apiPort
	apiByName := "http://localhost:" + apiPort
	const (
		streamQuery = "/v1/events:stream?subscription=app&eventTypes=manuscript.*"
		otherQuery  = "/v1/events:stream?subscription=app&eventTypes=other.*"
	)
	ackBody := jsString(t, map[string]any{"subscription": "app", "eventIds": before})
	sendBody := jsString(t, map[string]any{"type": "manuscript.submitted", "payload": map[string]string{"from": "a web page"}})
	script := func(js string) string { return "<!doctype html><body><script>" + js + "</script></body>" }
	noCORSPost := func(base, path, body string) string {
		return fmt.Sprintf("fetch(%q, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: %s}).catch(() => {});\n", base+path, body)
	}
	crossOrigin := "cross-origin"
	get := func(path string) refusal { return refusal{http.MethodGet, path, crossOrigin} }
	postTo := func(path string) refusal { return refusal{http.MethodPost, path, crossOrigin} }
	const streamPath, ackPath, sendPath = "/v1/events:stream", "/v1/events:ack", "/v1/events:send"

	// DNS rebinding: the page's origin is evil.test on the API's own port,
	// so its requests are same-origin. The browser reaches evil.test
	// through a proxy that plays the attacker's DNS: it serves the page
	// (before the rebinding), then hands every other request to the
	// sidecar unchanged (after it), Host: evil.test included.
	rebindOrigin := "http://evil.test:" + apiPort
	rebindPage := script(fmt.Sprintf(
		"fetch(%q).catch(() => {});\nfetch('/v1/events:send', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: %s}).catch(() => {});\n",
		otherQuery, sendBody))
	toSidecar := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = "http", a.HTTP
		pr.Out.Host = pr.In.Host
	}}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Host != "evil.test:"+apiPort:
			http.Error(w, "this proxy serves only "+rebindOrigin, http.StatusBadGateway)
		case r.URL.Path == "/rebind.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, rebindPage)
		default:
			toSidecar.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(proxy.Close)

	attacks := []attack{{
		name:   "fetch GET of the stream, changing the filter",
		page:   script(fmt.Sprintf("fetch(%q).catch(() => {});", api+otherQuery)),
		refuse: []refusal{get(streamPath)},
	}, {
		name:   "fetch no-cors text/plain POST of ack",
		page:   script(noCORSPost(api, ackPath, ackBody)),
		refuse: []refusal{postTo(ackPath)},
	}, {
		name:   "fetch no-cors text/plain POST of send",
		page:   script(noCORSPost(api, sendPath, sendBody)),
		refuse: []refusal{postTo(sendPath)},
	}, {
		name:   "img on the stream",
		page:   fmt.Sprintf(`<!doctype html><body><img src="%s"></body>`, html.EscapeString(api+streamQuery)),
		refuse: []refusal{get(streamPath)},
	}, {
		name: "form POSTs into iframes",
		page: `<!doctype html><body>` +
			textPlainForm(api+sendPath, `{"type":"manuscript.submitted","payload":{"pad":"`, `"}}`) +
			textPlainForm(api+ackPath, `{"subscription":"app","eventIds":["`+before[0]+`"],"pad":"`, `"}`) +
			`<script>for (const f of document.forms) f.submit();</script></body>`,
		refuse: []refusal{postTo(sendPath), postTo(ackPath)},
	}, {
		name:   "EventSource on the stream",
		page:   script(fmt.Sprintf("new EventSource(%q);", api+streamQuery)),
		refuse: []refusal{get(streamPath)},
	}, {
		name: "localhost page to 127.0.0.1",
		url:  "http://localhost:" + attackPort,
		page: fmt.Sprintf(`<!doctype html><body><img src="%s"><script>%s</script></body>`,
			html.EscapeString(api+streamQuery), noCORSPost(api, sendPath, sendBody)),
		refuse: []refusal{get(streamPath), postTo(sendPath)},
	}, {
		name: "127.0.0.1 page to localhost",
		page: fmt.Sprintf(`<!doctype html><body><img src="%s"><script>fetch(%q).catch(() => {});%s</script></body>`,
			html.EscapeString(apiByName+streamQuery), apiByName+otherQuery, noCORSPost(apiByName, ackPath, ackBody)),
		refuse: []refusal{get(streamPath), get(streamPath), postTo(ackPath)},
	}, {
		name: "DNS rebinding",
		url:  rebindOrigin + "/rebind.html",
		refuse: []refusal{
			{http.MethodGet, streamPath, "loopback host"},
			{http.MethodPost, sendPath, "loopback host"},
		},
	}}
	for i := range attacks {
		at := &attacks[i]
		if at.page != "" {
			path := fmt.Sprintf("/attack-%d.html", i)
			pages[path] = at.page
			base := at.url
			if base == "" {
				base = attackSrv.URL
			}
			at.url = base + path
		}
	}

	browser := startChromium(t, chromium, "--proxy-server="+proxy.URL)
	var during []string
	for _, at := range attacks {
		mark := r.stderr.lineCount()
		target, err := browser.open(at.url)
		if err != nil {
			t.Fatalf("%s: open %s: %v", at.name, at.url, err)
		}
		if missing := r.stderr.waitRefusals(mark, at.refuse, 5*time.Second); len(missing) > 0 {
			t.Errorf("%s: the sidecar did not refuse with 403 %v (the page at %s)", at.name, missing, at.url)
		}
		// A webhook while the page is open: a stream it held would be
		// handed this event.
		during = append(during, webhook())
		if err := browser.close(target); err != nil {
			t.Fatalf("%s: close the page: %v", at.name, err)
		}
	}

	// The app comes back with its filter and gets every event, each on its
	// first attempt: no page was ever handed one.
	stream, err = grpcc.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "app", EventTypes: appFilter})
	if err != nil {
		t.Fatal(err)
	}
	total := len(stored)
	for range total {
		e := recvEvent(t, stream)
		if !stored[e.GetId()] || e.GetAttempt() != 1 {
			t.Errorf("the app got event %s on attempt %d, want each of the %d stored events once, on attempt 1", e.GetId(), e.GetAttempt(), total)
		}
		delete(stored, e.GetId())
		delivered++
		ack, err := grpcc.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "app", EventIds: []string{e.GetId()}})
		if err != nil || len(ack.GetEventIds()) != 1 {
			t.Errorf("AckEvents(%s) = %v, %v; want it acked by the app, not before", e.GetId(), ack, err)
		}
	}
	if len(stored) > 0 {
		t.Errorf("events never delivered to the app: %v", stored)
	}
	_, metrics := httpGet(t, "http://"+a.Admin+"/metrics")
	if want := fmt.Sprintf("chronoshub_sidecar_events_delivered_total{subscription=\"app\"} %d\n", delivered); !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q: events went to another consumer than the app", strings.TrimSpace(want))
	}
	if out := r.stderr.String(); strings.Contains(out, "subscription filters changed") {
		t.Errorf("the subscription's filters changed during the attack:\n%s", out)
	}
	if in := emu.Inbound(); len(in) != 0 {
		t.Errorf("ChronosHub received %d events from the pages: %+v", len(in), in)
	}
	t.Logf("%d pages, %d webhooks before and %d during the attack, all delivered to the app", len(attacks), len(before), len(during))
}

// waitMetric waits until the metrics at url match re, failing after 10s.
func waitMetric(t *testing.T, url string, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, metrics := httpGet(t, url)
		if re.MatchString(metrics) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not match %s within 10s:\n%s", re, metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsString returns v as JSON inside a JavaScript string literal.
func jsString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	s, err := json.Marshal(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

// textPlainForm is a form that POSTs into its own iframe, as text/plain, the
// body name + "=" + value: with name and value chosen, a JSON document.
func textPlainForm(action, name, value string) string {
	frame := "f" + uuid.NewString()
	return fmt.Sprintf(`<iframe name="%s"></iframe><form method="POST" enctype="text/plain" target="%s" action="%s"><input type="hidden" name="%s" value="%s"></form>`,
		frame, frame, html.EscapeString(action), html.EscapeString(name), html.EscapeString(value))
}

// lineCount is the number of JSON lines written so far.
func (c *capture) lineCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// waitRefusals waits until the JSON lines after the first mark log each of
// want as a REST request refused with 403, and returns those still missing
// after timeout.
func (c *capture) waitRefusals(mark int, want []refusal, timeout time.Duration) []refusal {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		missing := append([]refusal(nil), want...)
		for _, l := range c.lines[mark:] {
			if l["msg"] != "REST call failed" || l["status"] != float64(http.StatusForbidden) {
				continue
			}
			for i, w := range missing {
				msg, _ := l["error"].(string)
				if l["method"] == w.method && l["path"] == w.path && strings.Contains(msg, w.reason) {
					missing = append(missing[:i], missing[i+1:]...)
					break
				}
			}
		}
		wake := c.wake
		c.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-wake:
		case <-deadline:
			return missing
		}
	}
}

// installChromium returns Chromium's path, installing Debian's package when
// it is missing and the test runs as root. It fails the test, never skips
// it, when Chromium cannot be had.
func installChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s is missing and this test is not root, so it cannot install it: run `apt-get install -y chromium` (Debian) first", chromiumPath)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	aptGet := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	start := time.Now()
	if err := aptGet("install", "-y", "chromium"); err != nil {
		// The package lists may be stale or absent (a fresh container).
		if uerr := aptGet("update"); uerr != nil {
			t.Fatalf("install Chromium: %v\nthen: %v", err, uerr)
		}
		if err := aptGet("install", "-y", "chromium"); err != nil {
			t.Fatalf("install Chromium: %v", err)
		}
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("apt-get installed chromium but %v", err)
	}
	t.Logf("installed Chromium in %v", time.Since(start).Round(time.Second))
	return chromiumPath
}

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	ws     *websocket.Conn
	lastID int
}

// startChromium starts a headless Chromium with its own profile until the
// test ends, with extra flags.
func startChromium(t *testing.T, path string, extra ...string) *browser {
	t.Helper()
	profile := t.TempDir()
	const devtoolsOrigin = "http://devtools.test"
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile,
		"--remote-debugging-port=0", "--remote-allow-origins=" + devtoolsOrigin,
	}, extra...)
	args = append(args, "about:blank")
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so that its helper processes stop with it
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b := &browser{}
	t.Cleanup(func() {
		if b.ws != nil {
			b.call("Browser.close", nil, nil) // its answer may not come: it is closing
			b.ws.Close()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group this test started
			<-exited
		}
	})

	// Chromium writes the DevTools port and path into the profile once it
	// listens.
	deadline := time.Now().Add(30 * time.Second)
	var active []byte
	for {
		var err error
		active, err = os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err == nil && strings.Count(string(active), "\n") >= 1 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("Chromium exited: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium wrote no DevToolsActivePort within 30s:\n%s", out.String())
		}
	}
	port, wsPath, _ := strings.Cut(strings.TrimSpace(string(active)), "\n")
	ws, err := websocket.Dial("ws://127.0.0.1:"+port+wsPath, "", devtoolsOrigin)
	if err != nil {
		t.Fatalf("connect to Chromium's DevTools: %v", err)
	}
	b.ws = ws
	return b
}

// call sends one DevTools command and decodes its result into result.
func (b *browser) call(method string, params, result any) error {
	b.lastID++
	id := b.lastID
	if err := b.ws.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
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
			return fmt.Errorf("%s: %w", method, err)
		}
		switch {
		case resp.ID != id:
			continue // an event
		case resp.Error != nil:
			return fmt.Errorf("%s: %s", method, resp.Error.Message)
		case result != nil:
			return json.Unmarshal(resp.Result, result)
		}
		return nil
	}
}

// open opens url in a new tab and returns the tab's target id.
func (b *browser) open(url string) (string, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("Target.createTarget", map[string]any{"url": url}, &created); err != nil {
		return "", err
	}
	if created.TargetID == "" {
		return "", errors.New("no target id")
	}
	return created.TargetID, nil
}

// close closes a tab, which ends every request it still had open.
func (b *browser) close(target string) error {
	return b.call("Target.closeTarget", map[string]any{"targetId": target}, nil)
}
