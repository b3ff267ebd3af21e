package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnknownVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
		want    []Warning
	}{
		{"none", nil, nil},
		{"all known", []string{"CHRONOSHUB_BASE_URL=https://x", "CHRONOSHUB_WEBHOOK_SECRET=s", "CHRONOSHUB_LOG_FORMAT=text"}, nil},
		{"not ours", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://x", "PATH=/bin", "chronoshub_base_url=x", "MY_CHRONOSHUB_X=1"}, nil},
		{"shipped tools' variables", []string{"CHRONOSHUB_EMULATOR_API_KEY=k", "CHRONOSHUB_SUBSCRIPTION=app", "CHRONOSHUB_EVENT_TYPES=a.b"}, nil},
		{"swapped letters", []string{"CHRONOSHUB_WEBHOOK_SECERT=s"}, []Warning{{"CHRONOSHUB_WEBHOOK_SECERT", "CHRONOSHUB_WEBHOOK_SECRET"}}},
		{"missing letter", []string{"CHRONOSHUB_BASE_UR=https://x"}, []Warning{{"CHRONOSHUB_BASE_UR", "CHRONOSHUB_BASE_URL"}}},
		{"dash for underscore", []string{"CHRONOSHUB_API-TOKEN_FILE=/f"}, []Warning{{"CHRONOSHUB_API-TOKEN_FILE", "CHRONOSHUB_API_TOKEN_FILE"}}},
		{"nothing close", []string{"CHRONOSHUB_FOO=1"}, []Warning{{"CHRONOSHUB_FOO", ""}}},
		{"sorted and once", []string{"CHRONOSHUB_ZZZ=1", "CHRONOSHUB_LOG_LEVLE=debug", "CHRONOSHUB_ZZZ=2", "CHRONOSHUB_NOVALUE"},
			[]Warning{{"CHRONOSHUB_LOG_LEVLE", "CHRONOSHUB_LOG_LEVEL"}, {"CHRONOSHUB_NOVALUE", ""}, {"CHRONOSHUB_ZZZ", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := UnknownVariables(tt.environ)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("UnknownVariables(%q) mismatch (-want +got):\n%s", tt.environ, diff)
			}
		})
	}
}

func TestUnknownVariablesNeverHoldValues(t *testing.T) {
	t.Parallel()
	for _, w := range UnknownVariables([]string{"CHRONOSHUB_WEBHOOK_SECERT=" + webhookSecret}) {
		if strings.Contains(w.String(), webhookSecret) || strings.Contains(fmt.Sprint(w), webhookSecret) {
			t.Errorf("warning %q holds the value", w)
		}
	}
}

func TestWarningString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		w    Warning
		want string
	}{
		{Warning{"CHRONOSHUB_WEBHOOK_SECERT", "CHRONOSHUB_WEBHOOK_SECRET"}, "CHRONOSHUB_WEBHOOK_SECERT is not a chronoshub-sidecar setting; did you mean CHRONOSHUB_WEBHOOK_SECRET?"},
		{Warning{"CHRONOSHUB_FOO", ""}, "CHRONOSHUB_FOO is not a chronoshub-sidecar setting (see chronoshub-sidecar serve --help); it is ignored"},
	} {
		if got := tt.w.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.w, got, tt.want)
		}
	}
}

func TestKnownVariablesAreEverySetting(t *testing.T) {
	t.Parallel()
	known := KnownVariables()
	for _, s := range settings(&Config{}, &raw{}) {
		if len(UnknownVariables([]string{s.env + "=x"})) != 0 {
			t.Errorf("%s is reported unknown", s.env)
		}
	}
	if len(known) != len(settings(&Config{}, &raw{})) {
		t.Errorf("KnownVariables() has %d names, want one per setting", len(known))
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "abc", 0}, {"abc", "abd", 1},
		{"SECRET", "SECERT", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"abc", "", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

// TestListenError binds real listeners so that the errors are the ones
// net.Listen returns here.
func TestListenError(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, inUse := net.Listen("tcp", busy.Addr().String())
	if !errors.Is(inUse, syscall.EADDRINUSE) {
		t.Fatalf("second listen on %s = %v, want EADDRINUSE", busy.Addr(), inUse)
	}
	missingDir := filepath.Join(t.TempDir(), "nope", "s.sock")
	_, noDir := net.Listen("unix", missingDir)
	if noDir == nil {
		t.Fatalf("listen on %s succeeded, want an error", missingDir)
	}
	_, notHere := net.Listen("tcp", "192.0.2.1:0") // TEST-NET-1: on no interface here

	tests := []struct {
		name, env, addr string
		err             error
		want            []string
	}{
		{"in use", "CHRONOSHUB_GRPC_ADDR", busy.Addr().String(), inUse, []string{
			`CHRONOSHUB_GRPC_ADDR (--grpc-addr): cannot listen on "` + busy.Addr().String() + `"`,
			"address already in use", "another process is listening there", "set CHRONOSHUB_GRPC_ADDR to a free address"}},
		{"socket directory missing", "CHRONOSHUB_HTTP_ADDR", "unix://" + missingDir, noDir, []string{
			"CHRONOSHUB_HTTP_ADDR (--http-addr): cannot listen on", "the socket's directory does not exist"}},
		{"address not on this machine", "CHRONOSHUB_ADMIN_ADDR", "192.0.2.1:0", notHere, []string{
			"CHRONOSHUB_ADMIN_ADDR (--admin-addr)", "no network interface of this machine has that address"}},
		{"privileged port", "CHRONOSHUB_WEBHOOK_ADDR", ":443", &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}, []string{
			"CHRONOSHUB_WEBHOOK_ADDR (--webhook-addr)", "ports below 1024 need privileges"}},
		{"a flag of another subcommand", "--emulator-addr", busy.Addr().String(), inUse, []string{
			`--emulator-addr: cannot listen on "` + busy.Addr().String() + `"`, "set --emulator-addr to a free address"}},
		{"anything else", "CHRONOSHUB_GRPC_ADDR", "x", errors.New("boom"), []string{"boom", "set CHRONOSHUB_GRPC_ADDR to an address this process can listen on"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatalf("no listen error to test with for %s", tt.addr)
			}
			got := ListenError(tt.env, tt.addr, tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("ListenError(…, %v) does not wrap the error", tt.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("ListenError(%s, %s) = %q, want it to contain %q", tt.env, tt.addr, got, w)
				}
			}
		})
	}
}

// TestWithWarnings: a misspelt variable that makes the configuration invalid
// (CHRONOSHUB_WEBHOOK_SECERT leaves CHRONOSHUB_WEBHOOK_SECRET unset) is
// reported together with the problem it explains; before, the warning was
// logged only once the configuration was valid, so never in this case.
func TestWithWarnings(t *testing.T) {
	t.Parallel()
	environ := []string{
		"CHRONOSHUB_BASE_URL=https://chronoshub.example",
		"CHRONOSHUB_API_KEY=" + apiKey,
		"CHRONOSHUB_WEBHOOK_SECERT=" + webhookSecret,
		"CHRONOSHUB_WEBHOOK_PLAINTEXT=true",
	}
	getenv := func(name string) string {
		for _, kv := range environ {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				return v
			}
		}
		return ""
	}
	_, err := Parse(nil, getenv, nil)
	if err == nil {
		t.Fatal("Parse without CHRONOSHUB_WEBHOOK_SECRET succeeded")
	}
	got := WithWarnings(err, UnknownVariables(environ))
	text := got.Error()
	for _, want := range []string{err.Error(), "CHRONOSHUB_WEBHOOK_SECERT is not a chronoshub-sidecar setting; did you mean CHRONOSHUB_WEBHOOK_SECRET?"} {
		if !strings.Contains(text, want) {
			t.Errorf("WithWarnings(…) = %q, want it to contain %q", text, want)
		}
	}
	if strings.Contains(text, webhookSecret) {
		t.Errorf("WithWarnings(…) = %q holds the misspelt variable's value", text)
	}
	if !errors.Is(got, err) {
		t.Errorf("errors.Is(WithWarnings(err, …), err) = false")
	}
	if got := WithWarnings(nil, UnknownVariables(environ)); got != nil {
		t.Errorf("WithWarnings(nil, …) = %v, want nil (a valid configuration logs its warnings)", got)
	}
	if got := WithWarnings(err, nil); got.Error() != err.Error() {
		t.Errorf("WithWarnings(err, nil) = %q, want %q", got, err)
	}
}
