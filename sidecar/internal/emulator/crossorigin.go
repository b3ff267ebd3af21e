package emulator

import (
	"net/http"
	"net/url"
	"strings"
)

// refuseCrossSite answers 403 to a request of the /_emulator/ control routes
// that a web page of another origin made: without it, any page open in the
// developer's browser could make the emulator send signed webhooks to any
// URL (a cross-site text/plain POST needs no preflight), or change its
// faults. Browsers mark their requests with Sec-Fetch-Site and, on every
// request but same-origin and no-cors GET and HEAD, Origin; programs (curl,
// the tests) send neither. ChronosHub's own route, /inbound/, needs an API
// key in a header, which a cross-site page cannot send without a preflight
// the emulator does not answer.
func refuseCrossSite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_emulator/") && crossSite(r) {
			writeProblem(w, http.StatusForbidden, "Cross-site requests to the emulator's control routes are refused.", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite reports whether r was made by a web page of another origin: its
// Sec-Fetch-Site is present and neither "same-origin" nor "none" (typed by
// the user), or its Origin is present and is not the host r was sent to.
func crossSite(r *http.Request) bool {
	if site := r.Header.Values("Sec-Fetch-Site"); len(site) > 0 {
		if len(site) != 1 || (site[0] != "same-origin" && site[0] != "none") {
			return true
		}
	}
	if origin := r.Header.Values("Origin"); len(origin) > 0 {
		if len(origin) != 1 {
			return true
		}
		u, err := url.Parse(origin[0])
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return true // including "null", an opaque origin
		}
	}
	return false
}
