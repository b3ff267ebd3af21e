package emulator

import (
	"net/http"
	"strings"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/crossorigin"
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
		if strings.HasPrefix(r.URL.Path, "/_emulator/") && crossorigin.Refusal(r) != "" {
			writeProblem(w, http.StatusForbidden, "Cross-site requests to the emulator's control routes are refused.", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}
