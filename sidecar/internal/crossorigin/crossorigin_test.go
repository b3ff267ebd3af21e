package crossorigin

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		host    string
		tls     bool
		header  http.Header
		refused bool
	}{
		{"a program: no header", "127.0.0.1:50052", false, http.Header{}, false},
		{"same origin", "127.0.0.1:50052", false, http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://127.0.0.1:50052"}}, false},
		{"typed by the user", "127.0.0.1:50052", false, http.Header{"Sec-Fetch-Site": {"none"}}, false},
		{"default port filled in", "localhost", false, http.Header{"Origin": {"http://localhost:80"}}, false},
		{"host case-insensitive", "LocalHost:8080", false, http.Header{"Origin": {"http://localhost:8080"}}, false},
		{"https origin over TLS", "example.test", true, http.Header{"Origin": {"https://example.test"}}, false},
		{"cross-site", "127.0.0.1:50052", false, http.Header{"Sec-Fetch-Site": {"cross-site"}}, true},
		{"same-site is not same-origin", "127.0.0.1:50052", false, http.Header{"Sec-Fetch-Site": {"same-site"}}, true},
		{"two Sec-Fetch-Site", "127.0.0.1:50052", false, http.Header{"Sec-Fetch-Site": {"same-origin", "none"}}, true},
		{"other origin", "127.0.0.1:50052", false, http.Header{"Origin": {"https://evil.example"}}, true},
		{"other port", "127.0.0.1:50052", false, http.Header{"Origin": {"http://127.0.0.1:50053"}}, true},
		{"other scheme", "127.0.0.1:50052", false, http.Header{"Origin": {"https://127.0.0.1:50052"}}, true},
		{"opaque origin", "127.0.0.1:50052", false, http.Header{"Origin": {"null"}}, true},
		{"origin with a path", "127.0.0.1:50052", false, http.Header{"Origin": {"http://127.0.0.1:50052/x"}}, true},
		{"origin with user information", "127.0.0.1:50052", false, http.Header{"Origin": {"http://u@127.0.0.1:50052"}}, true},
		{"two origins", "127.0.0.1:50052", false, http.Header{"Origin": {"http://127.0.0.1:50052", "http://127.0.0.1:50052"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/events:send", nil)
			r.Host = tc.host
			r.Header = tc.header
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := Refusal(r); (got != "") != tc.refused {
				t.Errorf("Refusal(%v, host %s) = %q, want refused %v", tc.header, tc.host, got, tc.refused)
			}
		})
	}
}

func TestRefusalQuotesAtMost100Bytes(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	long := "http://" + strings.Repeat("a", 500) + ".example"
	r.Header.Set("Origin", long)
	if got := Refusal(r); got == "" || len(got) > 160 {
		t.Errorf("Refusal = %d bytes (%q), want a refusal that quotes at most 100 bytes of the header", len(got), got)
	}
}

func TestLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"127.0.0.1:50052": true, "localhost": true, "LOCALHOST:1": true, "[::1]:50052": true, "::1": true,
		"127.1.2.3": true, "10.0.0.1:50052": false, "example.test": false, "localhost.example": false, "": false,
	} {
		if got := LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
