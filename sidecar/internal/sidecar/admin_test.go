package sidecar

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

// TestPprof starts the composition with CHRONOSHUB_PPROF=loopback and
// fetches a CPU profile and the heap profile from the admin listener, and
// checks that without the setting the same paths are not served.
func TestPprof(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pprof string
		want  bool
	}{{config.PprofLoopback, true}, {config.PprofOff, false}} {
		t.Run(tt.pprof, func(t *testing.T) {
			t.Parallel()
			s, _ := runSidecar(t, testEnv(t, "CHRONOSHUB_PPROF", tt.pprof), nil)
			base := "http://" + s.Addrs().Admin
			get := func(path string) (int, []byte) {
				t.Helper()
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				return resp.StatusCode, b
			}
			// /healthz answers from the start; wait for it so that the
			// listener is served.
			deadline := time.Now().Add(10 * time.Second)
			for {
				if code, _ := get("/healthz"); code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("/healthz never answered 200")
				}
				time.Sleep(10 * time.Millisecond)
			}
			code, body := get("/debug/pprof/profile?seconds=1")
			if !tt.want {
				if code != http.StatusNotFound {
					t.Errorf("GET /debug/pprof/profile with CHRONOSHUB_PPROF=%s = %d, want 404", tt.pprof, code)
				}
				if code, _ := get("/debug/pprof/"); code != http.StatusNotFound {
					t.Errorf("GET /debug/pprof/ with CHRONOSHUB_PPROF=%s = %d, want 404", tt.pprof, code)
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("GET /debug/pprof/profile = %d %s, want 200", code, body)
			}
			// A profile is a gzipped protocol buffer.
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("CPU profile is not gzip: %v", err)
			}
			if raw, err := io.ReadAll(zr); err != nil || len(raw) == 0 {
				t.Fatalf("CPU profile: %d bytes, %v", len(raw), err)
			}
			code, body = get("/debug/pprof/heap?debug=1")
			if code != http.StatusOK || !strings.Contains(string(body), "heap profile:") {
				t.Errorf("GET /debug/pprof/heap?debug=1 = %d %.80q, want 200 with a heap profile", code, body)
			}
			if code, body := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(string(body), "goroutine") {
				t.Errorf("GET /debug/pprof/ = %d %.80q, want the index", code, body)
			}
		})
	}
}
