// Package console serves the sidecar's web console: one page, at /console
// on the app-facing HTTP listener, that shows subscriptions, recent
// webhooks, events and their deliveries, dead letters and sent events, and
// starts replays.
//
// The page is static (HTML, JavaScript and CSS embedded in the binary, no
// external font or script, no build step). Its only backend is the
// sidecar's REST API, which it calls from the same origin; it holds no
// data of its own. The page is served with a strict Content Security
// Policy (default-src 'self', no inline script or style) and is refused to
// other sites, as the REST API refuses them.
package console

import (
	"embed"
	"net/http"
	"strings"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/crossorigin"
)

// Path is where the console is served.
const Path = "/console"

//go:embed static
var static embed.FS

// csp allows the page its own script, style and API calls, and nothing
// else: no inline code, no framing, no other origin.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"

var files = map[string]struct{ name, contentType string }{
	Path:                {"static/index.html", "text/html; charset=utf-8"},
	Path + "/":          {"static/index.html", "text/html; charset=utf-8"},
	Path + "/app.js":    {"static/app.js", "text/javascript; charset=utf-8"},
	Path + "/style.css": {"static/style.css", "text/css; charset=utf-8"},
}

// Options are the optional settings of Handler.
type Options struct {
	// LoopbackHostOnly refuses (403) requests for the console whose Host
	// is not a loopback address or localhost, as the REST API does with
	// the same setting (DNS rebinding).
	LoopbackHostOnly bool
}

// Handler serves the console at Path and below, and hands every other
// request to api, the REST API.
func Handler(api http.Handler, opts Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path && !strings.HasPrefix(r.URL.Path, Path+"/") {
			api.ServeHTTP(w, r)
			return
		}
		serve(w, r, opts)
	})
}

func serve(w http.ResponseWriter, r *http.Request, opts Options) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if opts.LoopbackHostOnly && !crossorigin.LoopbackHost(r.Host) {
		http.Error(w, "the console answers only requests for a loopback host (127.0.0.1, [::1] or localhost)", http.StatusForbidden)
		return
	}
	if why := crossorigin.Refusal(r); why != "" {
		http.Error(w, "the console refuses requests from other sites: "+why, http.StatusForbidden)
		return
	}
	f, ok := files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := static.ReadFile(f.name)
	if err != nil {
		http.Error(w, "console file missing", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", f.contentType)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
