package emulator_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// outcome is what a test checks of one inbound response under fault injection.
type outcome struct {
	Status     int
	RetryAfter string
	Problem    any
}

func inboundOutcome(t *testing.T, resp response) outcome {
	t.Helper()
	o := outcome{Status: resp.status, RetryAfter: resp.header.Get("Retry-After")}
	if resp.status != http.StatusAccepted {
		o.Problem = decodeJSON(t, resp.body)
	}
	return o
}

func TestFaults(t *testing.T) {
	const detail = "Injected by the ChronosHub emulator's fault injection."
	serverError := outcome{Status: 500, Problem: problemJSON(typeServerError, titleServerError, 500, detail, nil)}
	accepted := outcome{Status: 202}
	tooMany := func(seconds string) outcome {
		return outcome{Status: 429, RetryAfter: seconds, Problem: problemJSON(typeTooMany, "Too Many Requests", 429, detail, nil)}
	}

	tests := []struct {
		name       string
		faults     emulator.Faults
		rand       []float64
		want       []outcome
		wantSleeps []time.Duration
	}{
		{"none", emulator.Faults{}, nil, []outcome{accepted, accepted}, nil},
		{"fail next with status", emulator.Faults{FailNext: 2, FailNextStatus: 503}, nil, []outcome{
			{Status: 503, Problem: problemJSON("https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable", 503, detail, nil)},
			{Status: 503, Problem: problemJSON("https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable", 503, detail, nil)},
			accepted,
		}, nil},
		{"fail next defaults to 500", emulator.Faults{FailNext: 1}, nil, []outcome{serverError, accepted}, nil},
		{"fail next 429 has Retry-After", emulator.Faults{FailNext: 1, FailNextStatus: 429, RetryAfterSeconds: 3}, nil, []outcome{tooMany("3"), accepted}, nil},
		{"fail next before rates", emulator.Faults{FailNext: 1, FailNextStatus: 502, ErrorRate: 0.5}, []float64{0.6}, []outcome{
			{Status: 502, Problem: problemJSON("https://tools.ietf.org/html/rfc9110#section-15.6.3", "Bad Gateway", 502, detail, nil)},
			accepted,
		}, nil},
		{"error rate", emulator.Faults{ErrorRate: 0.5}, []float64{0.49, 0.5, 0.1}, []outcome{serverError, accepted, serverError}, nil},
		{"rate limit", emulator.Faults{RateLimitRate: 0.3, RetryAfterSeconds: 7}, []float64{0.29, 0.3}, []outcome{tooMany("7"), accepted}, nil},
		{"rate limit default Retry-After", emulator.Faults{RateLimitRate: 1}, []float64{0.999}, []outcome{tooMany("1")}, nil},
		{"both rates share one draw", emulator.Faults{RateLimitRate: 0.2, ErrorRate: 0.3}, []float64{0.1, 0.2, 0.49, 0.5}, []outcome{tooMany("1"), serverError, serverError, accepted}, nil},
		{"latency", emulator.Faults{Latency: 250 * time.Millisecond}, nil, []outcome{accepted, accepted}, []time.Duration{250 * time.Millisecond, 250 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv, clock := startEmulator(t, emulator.Options{Faults: tt.faults, Rand: randSequence(t, tt.rand...)})
			var got []outcome
			for range tt.want {
				got = append(got, inboundOutcome(t, postInbound(t, srv.URL, "manuscript.submitted", `{"n":1}`)))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("responses mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSleeps, clock.Sleeps()); diff != "" {
				t.Errorf("injected latency mismatch (-want +got):\n%s", diff)
			}
			accepted := 0
			for _, o := range tt.want {
				if o.Status == http.StatusAccepted {
					accepted++
				}
			}
			if n := len(e.Inbound()); n != accepted {
				t.Errorf("Inbound() has %d events, want %d (failed requests are not recorded)", n, accepted)
			}
		})
	}
}

func TestFaultsNeverMaskWrongKey(t *testing.T) {
	e, srv, _ := startEmulator(t, emulator.Options{Faults: emulator.Faults{FailNext: 1, ErrorRate: 1}})
	resp := do(t, http.MethodPost, srv.URL+"/inbound/manuscript.submitted", map[string]string{
		"X-Api-Key": "wrong", "Content-Type": "application/json",
	}, `{}`)
	if resp.status != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.status)
	}
	if got := e.Faults().FailNext; got != 1 {
		t.Errorf("Faults().FailNext = %d after a 401, want 1 (not consumed)", got)
	}
}

func TestFaultsAtRunTime(t *testing.T) {
	_, srv, _ := startEmulator(t, emulator.Options{})
	faultsURL := srv.URL + "/_emulator/faults"

	put := do(t, http.MethodPut, faultsURL, nil, `{"fail_next":1,"fail_next_status":502,"latency":"1.5s"}`)
	wantSet := map[string]any{
		"error_rate": 0.0, "rate_limit_rate": 0.0, "retry_after_seconds": 0.0,
		"latency": "1.5s", "fail_next": 1.0, "fail_next_status": 502.0,
	}
	if put.status != http.StatusOK {
		t.Fatalf("PUT /_emulator/faults = %d %s, want 200", put.status, put.body)
	}
	if diff := cmp.Diff(wantSet, decodeJSON(t, put.body)); diff != "" {
		t.Errorf("PUT /_emulator/faults body mismatch (-want +got):\n%s", diff)
	}

	if resp := postInbound(t, srv.URL, "manuscript.submitted", `{}`); resp.status != http.StatusBadGateway {
		t.Errorf("POST /inbound after PUT = %d, want 502", resp.status)
	}
	wantSet["fail_next"] = 0.0
	if diff := cmp.Diff(wantSet, decodeJSON(t, do(t, http.MethodGet, faultsURL, nil, "").body)); diff != "" {
		t.Errorf("GET /_emulator/faults mismatch (-want +got):\n%s", diff)
	}
	if resp := postInbound(t, srv.URL, "manuscript.submitted", `{}`); resp.status != http.StatusAccepted {
		t.Errorf("POST /inbound after the failure = %d, want 202", resp.status)
	}

	for _, tt := range []struct{ name, body string }{
		{"rate above 1", `{"error_rate":2}`},
		{"rates sum above 1", `{"error_rate":0.6,"rate_limit_rate":0.6}`},
		{"bad latency", `{"latency":"soon"}`},
		{"negative fail_next", `{"fail_next":-1}`},
		{"2xx fail_next_status", `{"fail_next":1,"fail_next_status":204}`},
		{"unknown field", `{"error_rate":0.1,"eror_rate":0.1}`},
		{"not JSON", `error_rate=1`},
		{"trailing data", `{} {}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, http.MethodPut, faultsURL, nil, tt.body)
			if resp.status != http.StatusBadRequest || resp.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("PUT /_emulator/faults %s = %d %q, want 400 application/problem+json", tt.body, resp.status, resp.header.Get("Content-Type"))
			}
			if diff := cmp.Diff(0.0, decodeJSON(t, do(t, http.MethodGet, faultsURL, nil, "").body).(map[string]any)["error_rate"]); diff != "" {
				t.Errorf("faults changed by a rejected PUT (-want +got):\n%s", diff)
			}
		})
	}
}
