package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSubscriptionsFile(t *testing.T) {
	t.Parallel()
	secretFile := writeFile(t, "push.key", "whsec_"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef01234567"))+"\n")
	file := writeFile(t, "subs.json", `{
  "subscriptions": [
    {"name": "journal", "event_types": ["manuscript.*"]},
    {"name": "php", "event_types": ["manuscript.submitted"],
     "push": {"url": "http://127.0.0.1:8000/chronoshub", "concurrency": 4, "timeout": "5s",
              "retry_4xx": true, "cloudevents": true, "signing_secret_file": "`+secretFile+`"}}
  ]
}`)
	c := mustParse(t, nil, environ(minimal, "CHRONOSHUB_SUBSCRIPTIONS_FILE", file, "CHRONOSHUB_STRICT_SUBSCRIPTIONS", "true"))
	want := []Subscription{
		{Name: "journal", EventTypes: []string{"manuscript.*"}},
		{Name: "php", EventTypes: []string{"manuscript.submitted"}, Push: &push.Target{
			Subscription: "php", Types: []string{"manuscript.submitted"}, URL: "http://127.0.0.1:8000/chronoshub",
			Concurrency: 4, Timeout: 5 * time.Second, Retry4xx: true, CloudEvents: true,
		}},
	}
	if diff := cmp.Diff(want, c.Subscriptions, cmpopts.IgnoreFields(push.Target{}, "Secret")); diff != "" {
		t.Errorf("Subscriptions differ (-want +got):\n%s", diff)
	}
	if !c.StrictSubscriptions || c.Subscriptions[1].Push.Secret.IsZero() {
		t.Errorf("strict %v, secret read %v; want both", c.StrictSubscriptions, !c.Subscriptions[1].Push.Secret.IsZero())
	}
	// Defaults.
	file = writeFile(t, "subs.json", `{"subscriptions": [{"name": "p", "push": {"url": "http://localhost/"}}]}`)
	c = mustParse(t, nil, environ(minimal, "CHRONOSHUB_SUBSCRIPTIONS_FILE", file))
	if p := c.Subscriptions[0].Push; p.Concurrency != 1 || p.Timeout != 10*time.Second || p.Retry4xx || p.CloudEvents || !p.Secret.IsZero() {
		t.Errorf("push defaults = %+v", p)
	}
}

// TestSubscriptionsFileErrors reports every problem of the file at once,
// each with the file, the line of its declaration and the field, and never
// a secret.
func TestSubscriptionsFileErrors(t *testing.T) {
	t.Parallel()
	badSecret := writeFile(t, "bad.key", "whsec_c2hvcnQ=") // "short"
	file := writeFile(t, "subs.json", `{"subscriptions": [
  {"name": "bad name"},
  {"name": "ok", "event_types": ["a..b"]},
  {"name": "remote", "push": {"url": "http://app.example/hook"}},
  {"name": "p", "push": {"url": "http://127.0.0.1/", "concurrency": 0, "timeout": "1m",
                         "signing_secret_file": "`+badSecret+`"}},
  {"name": "x", "pushh": {}},
  {"name": "ok"},
  {"push": {}}
]}`)
	_, err := Parse(nil, environ(minimal, "CHRONOSHUB_SUBSCRIPTIONS_FILE", file), nil)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, want := range []string{
		"subs.json:2: subscriptions[0] (bad name): name: subscription name must be",
		"subs.json:3: subscriptions[1] (ok): event_types[0]:",
		"subs.json:4: subscriptions[2] (remote): push.url: url host app.example is not loopback",
		"subs.json:5: subscriptions[3] (p): push.concurrency: 0 is not between 1",
		"subs.json:5: subscriptions[3] (p): push.timeout: 1m0s is not shorter than CHRONOSHUB_ACK_WAIT",
		"subs.json:5: subscriptions[3] (p): push.signing_secret_file:",
		`subs.json:7: subscriptions[4]: json: unknown field "pushh"`,
		"subs.json:8: subscriptions[5] (ok): name: ok is already declared at",
		"subs.json:9: subscriptions[6]: name: required",
		"subs.json:9: subscriptions[6]: push.url: required",
	} {
		if !strings.Contains(err.Error(), "CHRONOSHUB_SUBSCRIPTIONS_FILE (--subscriptions-file): "+file[:len(file)-len("subs.json")]+strings.SplitN(want, ":", 2)[0]) ||
			!strings.Contains(err.Error(), want) {
			t.Errorf("Parse error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("error quotes the secret: %v", err)
	}

	for _, tc := range []struct{ text, want string }{
		{`{"subscriptions": [`, "subs.json:1: unexpected end of file"},
		{"{\n\"subscriptions\": [{\"name\": \"a\",}]}", "subs.json:2: invalid character"},
		{`[]`, `subs.json:1: want an object`},
		{`{"subs": []}`, `unknown field subs`},
		{`{"subscriptions": []} x`, `unexpected data after the object`},
		{`{"subscriptions": [], "subscriptions": []}`, `subscriptions given twice`},
		{`{"subscriptions": {}}`, `want a list of subscriptions`},
	} {
		_, err := ParseSubscriptions("subs.json", []byte(tc.text), 256, time.Minute)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSubscriptions(%q) = %v, want an error with %q", tc.text, err, tc.want)
		}
	}
	if _, err := Parse(nil, environ(minimal, "CHRONOSHUB_STRICT_SUBSCRIPTIONS", "true"), nil); err == nil || !strings.Contains(err.Error(), "no stream could open any subscription") {
		t.Errorf("strict without a file: Parse = %v", err)
	}
	if _, err := Parse(nil, environ(minimal, "CHRONOSHUB_SUBSCRIPTIONS_FILE", "/nonexistent/subs.json"), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: Parse = %v", err)
	}
}

// FuzzParseSubscriptions: any file gives declarations or an error naming
// the file, never a panic, and valid declarations pass their own checks.
func FuzzParseSubscriptions(f *testing.F) {
	f.Add([]byte(`{"subscriptions": [{"name": "a", "event_types": ["x.*"], "push": {"url": "http://127.0.0.1/", "concurrency": 2, "timeout": "1s"}}]}`))
	f.Add([]byte(`{"subscriptions": [{"name": "a"}, {"name": "a"}]}`))
	f.Add([]byte("{\n\"subscriptions\": [\n{\"push\": {\"socket\": \"/x\", \"url\": \"http://h/\"}}]}"))
	f.Add([]byte(`{"subscriptions": [1, "x", null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		subs, err := ParseSubscriptions("f.json", data, 8, time.Minute)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json:") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		for _, s := range subs {
			if s.Name == "" {
				t.Fatalf("declaration without a name: %+v", s)
			}
			if p := s.Push; p != nil && (p.Concurrency < 1 || p.Concurrency > 8 || p.Timeout <= 0 || p.Timeout >= time.Minute || push.CheckURL(p.URL, p.Socket, p.AllowRemote) != nil) {
				t.Fatalf("invalid push target accepted: %+v", p)
			}
		}
	})
}
