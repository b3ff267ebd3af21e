package push

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 2, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999", 0},
		{"soon", 0},
		{"Thu, 26 Feb 2026 12:00:30 GMT", 30 * time.Second},
		{"Thu, 26 Feb 2026 11:59:00 GMT", 0}, // in the past
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	for _, tc := range []struct {
		status int
		err    error
		want   string
	}{
		{200, nil, OutcomeOK},
		{204, nil, OutcomeOK},
		{429, nil, OutcomeRetryAfter},
		{503, nil, OutcomeRetryAfter},
		{500, nil, OutcomeServerError},
		{502, nil, OutcomeServerError},
		{400, nil, OutcomeClientError},
		{404, nil, OutcomeClientError},
		{302, nil, OutcomeOther},
		{0, dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)), OutcomeUnreachable},
		{0, dial(os.NewSyscallError("connect", syscall.ENOENT)), OutcomeUnreachable},
		{0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNREFUSED)}, OutcomeError},
		{0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, OutcomeError},
		{0, errors.New("EOF"), OutcomeError},
	} {
		if got := classify(tc.status, tc.err); got != tc.want {
			t.Errorf("classify(%d, %v) = %s, want %s", tc.status, tc.err, got, tc.want)
		}
	}
}
