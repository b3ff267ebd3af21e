package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/console"
)

func newServer(t *testing.T, opts console.Options) *httptest.Server {
	t.Helper()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-From", "api")
		io.WriteString(w, "api "+r.URL.Path)
	})
	srv := httptest.NewServer(console.Handler(api, opts))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := newServer(t, console.Options{LoopbackHostOnly: true})
	tests := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		status      int
		contentType string
		body        string
	}{
		{"page", "GET", "/console", nil, 200, "text/html; charset=utf-8", `<script src="/console/app.js"`},
		{"page with slash", "GET", "/console/", nil, 200, "text/html; charset=utf-8", "<title>"},
		{"script", "GET", "/console/app.js", nil, 200, "text/javascript; charset=utf-8", "'use strict'"},
		{"style", "GET", "/console/style.css", nil, 200, "text/css; charset=utf-8", "body"},
		{"typed by the user", "GET", "/console", map[string]string{"Sec-Fetch-Site": "none"}, 200, "", ""},
		{"same origin", "GET", "/console/app.js", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200, "", ""},
		{"head", "HEAD", "/console", nil, 200, "text/html; charset=utf-8", ""},
		{"unknown file", "GET", "/console/x.js", nil, 404, "", ""},
		{"post", "POST", "/console", nil, 405, "", ""},
		{"cross-site navigation", "GET", "/console", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "", "other sites"},
		{"same-site other origin", "GET", "/console/app.js", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "", "other sites"},
		{"foreign origin", "GET", "/console", map[string]string{"Origin": "http://evil.test"}, 403, "", "other sites"},
		{"DNS rebinding", "GET", "/console", map[string]string{"Host": "evil.test"}, 403, "", "loopback host"},
		{"API passes through", "GET", "/v1/subscriptions", nil, 200, "", "api /v1/subscriptions"},
		{"a prefix is not the console", "GET", "/consoles", nil, 200, "", "api /consoles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s = %d %.80q; want %d containing %q", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.body)
			}
			if tt.contentType != "" && resp.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), tt.contentType)
			}
			if resp.Header.Get("X-From") == "api" {
				return
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", resp.Header.Get("X-Content-Type-Options"))
			}
		})
	}
}

// TestPageHasNoInlineCode: the page works under its policy, which forbids
// inline scripts, inline styles and event-handler attributes, and loads
// nothing from another origin.
func TestPageHasNoInlineCode(t *testing.T) {
	t.Parallel()
	srv := newServer(t, console.Options{})
	_, page := do(t, srv, "GET", "/console", nil)
	checks := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"inline script", regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`)},
		{"script without src", regexp.MustCompile(`<script(?:\s(?:[^s>]|s[^r])*)?>`)},
		{"style element", regexp.MustCompile(`<style`)},
		{"style attribute", regexp.MustCompile(`\sstyle=`)},
		{"event handler attribute", regexp.MustCompile(`\son[a-z]+=`)},
		{"another origin", regexp.MustCompile(`(?i)(src|href)="(https?:)?//`)},
	}
	for _, c := range checks {
		if m := c.re.FindString(page); m != "" {
			t.Errorf("the page has an %s: %q", c.what, m)
		}
	}
	_, js := do(t, srv, "GET", "/console/app.js", nil)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
