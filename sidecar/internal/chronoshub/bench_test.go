package chronoshub

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkSendEvent measures one SendEvent of a 1 KiB payload to an HTTP server on loopback
// that answers 202 as ChronosHub does, with the caller's deadline the sidecar sets: the
// client's own cost (allocations above all) on top of net/http's.
func BenchmarkSendEvent(b *testing.B) {
	c := benchClient(b)
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = 'a'
	}
	payload[0], payload[len(payload)-1] = '"', '"'
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
		if _, err := c.SendEvent(ctx, "manuscript.submitted", payload); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}

// BenchmarkSendEventParallel is BenchmarkSendEvent with 4 concurrent callers per CPU (8 on a
// 2-core machine).
func BenchmarkSendEventParallel(b *testing.B) {
	c := benchClient(b)
	payload := []byte(`{"manuscriptId":"MS-2026-042","status":"under_review"}`)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
			if _, err := c.SendEvent(ctx, "manuscript.submitted", payload); err != nil {
				b.Error(err)
			}
			cancel()
		}
	})
}

// benchClient returns a Client of an HTTP server on loopback that reads each
// request and answers 202 with an event id, as ChronosHub does.
func benchClient(b *testing.B) *Client {
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"eventId":"0b7e2b8e-5a43-4a8e-9d3e-2f0f2d7c1a11","status":"Accepted"}`)
	}))
	b.Cleanup(hub.Close)
	c, err := NewClient(hub.URL, func() string { return testKey }, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.http.CloseIdleConnections)
	return c
}
