package chronoshub

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// headerTransport adds a header to every request, as a tracing transport
// adds traceparent.
type headerTransport struct{ next http.RoundTripper }

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	return t.next.RoundTrip(r)
}

// TestWrapTransport: WrapTransport wraps the default transport and a given
// client's, and every request goes through it.
func TestWrapTransport(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"default client", nil},
		{"given client", &http.Client{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header.Get("Traceparent")
				answer(w, http.StatusAccepted, "application/json", acceptedBody("0b7e2b8e-5a43-4a8e-9d3e-2f0f2d7c1a11"))
			}))
			t.Cleanup(srv.Close)
			c, _ := newTestClient(t, srv.URL, Options{
				HTTPClient:    tc.client,
				WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return headerTransport{rt} },
			})
			if _, err := c.SendEvent(t.Context(), "manuscript.submitted", []byte(`{}`)); err != nil {
				t.Fatalf("SendEvent = %v", err)
			}
			if tp := <-got; tp == "" {
				t.Error("the request did not go through the wrapped transport")
			}
			if tc.client != nil && tc.client.Transport != nil {
				t.Error("NewClient changed the caller's http.Client")
			}
		})
	}
}
