// Package crossorigin tells requests that a web page of another origin made
// from those of the same origin and of programs, for the app-facing HTTP
// listeners (the REST gateway, the console) and the emulator's control
// routes, which refuse the former: a page open in a browser on the same
// machine must not read or act through them.
package crossorigin

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// LoopbackHost reports whether a Host header names a loopback address or
// localhost.
func LoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Refusal says why r was made by a web page of another origin, or returns
// "" when it was not. Browsers mark every request with Sec-Fetch-Site (since
// 2020-2023) and send Origin on every request except same-origin and no-cors
// GET and HEAD; programs such as curl and the gRPC-gateway SDKs send neither.
// A request is refused when Sec-Fetch-Site is present and neither
// "same-origin" nor "none" (the user typed the URL), or when Origin is present
// and is not the origin the request was sent to (its scheme and Host).
// http.CrossOriginProtection is not enough: it lets every GET, HEAD and
// OPTIONS through.
func Refusal(r *http.Request) string {
	if site := r.Header.Values("Sec-Fetch-Site"); len(site) > 0 {
		if len(site) != 1 || (site[0] != "same-origin" && site[0] != "none") {
			return fmt.Sprintf("Sec-Fetch-Site %q", quoted(site))
		}
	}
	if origin := r.Header.Values("Origin"); len(origin) > 0 {
		if len(origin) != 1 || !sameOrigin(origin[0], r) {
			return fmt.Sprintf("Origin %q is not the origin of the request", quoted(origin))
		}
	}
	return ""
}

// quoted joins header values for an error message, cut to 100 bytes: they
// are the client's, and are logged.
func quoted(values []string) string {
	s := strings.Join(values, ", ")
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

// sameOrigin reports whether origin, an Origin header, is the origin of the
// URL r was sent to: the same scheme, host (case-insensitively) and port,
// default ports filled in.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false // including "null", an opaque origin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if !strings.EqualFold(u.Scheme, scheme) {
		return false
	}
	oHost, oPort := hostPort(u.Host, scheme)
	rHost, rPort := hostPort(r.Host, scheme)
	return oHost != "" && strings.EqualFold(oHost, rHost) && oPort == rPort
}

// hostPort splits a URL or Host header's host[:port], filling in the
// scheme's default port.
func hostPort(hp, scheme string) (host, port string) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), ""
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return host, port
}
