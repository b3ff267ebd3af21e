package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Faults make the inbound endpoint misbehave on purpose, so that a partner can test retries.
// Latency applies to every inbound request; the failures apply only to requests with the right
// API key, so that a wrong key always shows as 401. The zero value injects nothing.
//
// In JSON (GET and PUT /_emulator/faults) the fields are error_rate, rate_limit_rate,
// retry_after_seconds, latency (a Go duration such as "250ms"), fail_next and fail_next_status.
type Faults struct {
	// ErrorRate is the fraction of requests, 0 to 1, answered 500.
	ErrorRate float64

	// RateLimitRate is the fraction of requests, 0 to 1, answered 429 with Retry-After.
	// ErrorRate and RateLimitRate draw from one Rand value per request, so together they
	// must not exceed 1.
	RateLimitRate float64

	// RetryAfterSeconds is the Retry-After value of a 429. Zero means 1.
	RetryAfterSeconds int

	// Latency is added to every inbound request before it is handled.
	Latency time.Duration

	// FailNext is how many of the next requests fail with FailNextStatus, before the rates
	// are considered. It counts down as requests fail.
	FailNext int

	// FailNextStatus is the status FailNext requests get, 400 to 599. Zero means 500.
	FailNextStatus int
}

// faultsJSON is the wire form of Faults.
type faultsJSON struct {
	ErrorRate         float64 `json:"error_rate"`
	RateLimitRate     float64 `json:"rate_limit_rate"`
	RetryAfterSeconds int     `json:"retry_after_seconds"`
	Latency           string  `json:"latency"`
	FailNext          int     `json:"fail_next"`
	FailNextStatus    int     `json:"fail_next_status"`
}

// MarshalJSON encodes f with Latency as a Go duration string.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		ErrorRate:         f.ErrorRate,
		RateLimitRate:     f.RateLimitRate,
		RetryAfterSeconds: f.RetryAfterSeconds,
		Latency:           f.Latency.String(),
		FailNext:          f.FailNext,
		FailNextStatus:    f.FailNextStatus,
	})
}

// UnmarshalJSON decodes f; a missing field is zero and an unknown field is an error.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var w faultsJSON
	if err := decodeStrict(data, &w); err != nil {
		return err
	}
	var latency time.Duration
	if w.Latency != "" {
		d, err := time.ParseDuration(w.Latency)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		latency = d
	}
	*f = Faults{
		ErrorRate:         w.ErrorRate,
		RateLimitRate:     w.RateLimitRate,
		RetryAfterSeconds: w.RetryAfterSeconds,
		Latency:           latency,
		FailNext:          w.FailNext,
		FailNextStatus:    w.FailNextStatus,
	}
	return nil
}

// validate reports every problem with f at once.
func (f Faults) validate() error {
	var errs []error
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("error_rate %v is not between 0 and 1", f.ErrorRate))
	}
	if f.RateLimitRate < 0 || f.RateLimitRate > 1 {
		errs = append(errs, fmt.Errorf("rate_limit_rate %v is not between 0 and 1", f.RateLimitRate))
	}
	if f.ErrorRate+f.RateLimitRate > 1 {
		errs = append(errs, errors.New("error_rate plus rate_limit_rate exceeds 1"))
	}
	if f.RetryAfterSeconds < 0 {
		errs = append(errs, fmt.Errorf("retry_after_seconds %d is negative", f.RetryAfterSeconds))
	}
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v is negative", f.Latency))
	}
	if f.FailNext < 0 {
		errs = append(errs, fmt.Errorf("fail_next %d is negative", f.FailNext))
	}
	if f.FailNextStatus != 0 && (f.FailNextStatus < 400 || f.FailNextStatus > 599) {
		errs = append(errs, fmt.Errorf("fail_next_status %d is not between 400 and 599", f.FailNextStatus))
	}
	return errors.Join(errs...)
}

// Faults returns the current fault-injection settings, FailNext counted down so far.
func (e *Emulator) Faults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults
}

// SetFaults replaces the fault-injection settings, or reports why f is invalid.
func (e *Emulator) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = f
	return nil
}

// injectedLatency is the latency to add to the next inbound request.
func (e *Emulator) injectedLatency() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults.Latency
}

// injectFault writes a fault response and reports true when this request is to fail.
func (e *Emulator) injectFault(w http.ResponseWriter) bool {
	e.mu.Lock()
	f := &e.faults
	status := 0
	switch {
	case f.FailNext > 0:
		f.FailNext--
		status = f.FailNextStatus
		if status == 0 {
			status = http.StatusInternalServerError
		}
	case f.ErrorRate > 0 || f.RateLimitRate > 0:
		r := e.rand()
		switch {
		case r < f.RateLimitRate:
			status = http.StatusTooManyRequests
		case r < f.RateLimitRate+f.ErrorRate:
			status = http.StatusInternalServerError
		}
	}
	retryAfter := f.RetryAfterSeconds
	e.mu.Unlock()

	if status == 0 {
		return false
	}
	if status == http.StatusTooManyRequests {
		if retryAfter == 0 {
			retryAfter = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeProblem(w, status, "Injected by the ChronosHub emulator's fault injection.", nil)
	return true
}

// handleGetFaults answers GET /_emulator/faults with the current settings.
func (e *Emulator) handleGetFaults() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Faults())
	})
}

// handlePutFaults answers PUT /_emulator/faults: the body replaces the settings; missing
// fields are zero.
func (e *Emulator) handlePutFaults() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if !e.readJSON(w, r, &f) {
			return
		}
		if err := e.SetFaults(f); err != nil {
			writeProblem(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
		e.log.Info("faults changed", "faults", f)
		writeJSON(w, http.StatusOK, e.Faults())
	})
}
