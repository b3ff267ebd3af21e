package config

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/devcert"
)

// Secret values put in the environment; no output may hold them.
const (
	apiKey        = "key-0123456789abcdef"
	webhookSecret = "whsec-aaaaaaaaaaaa"
	apiToken      = "token-zzzzzzzzzzzz"
)

// environ returns a getenv over base with overrides applied; an override
// of "" removes a variable.
func environ(base map[string]string, overrides ...string) func(string) string {
	env := map[string]string{}
	for k, v := range base {
		env[k] = v
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		env[overrides[i]] = overrides[i+1]
	}
	return func(k string) string { return env[k] }
}

// minimal is the smallest valid environment.
var minimal = map[string]string{
	"CHRONOSHUB_BASE_URL":          "https://staging.chronoshub.example",
	"CHRONOSHUB_API_KEY":           apiKey,
	"CHRONOSHUB_WEBHOOK_SECRET":    webhookSecret,
	"CHRONOSHUB_WEBHOOK_PLAINTEXT": "true",
}

// ignoreCredentials leaves the credential fields, which hold unexported
// state, to the tests that check them.
var ignoreCredentials = cmpopts.IgnoreFields(Config{}, "APIKey", "WebhookSecrets", "APIToken", "TLSCertificate")

// mustParse parses or fails the test.
func mustParse(t *testing.T, args []string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Parse(args, getenv, nil)
	if err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return c
}

func TestParseDefaults(t *testing.T) {
	got := mustParse(t, nil, environ(minimal))
	want := &Config{
		BaseURL:                    "https://staging.chronoshub.example",
		MaxPayloadBytes:            1 << 20,
		MaxPayloadBytesDefault:     true,
		SendMaxAttempts:            5,
		SendTimeout:                30 * time.Second,
		IdempotencyWindow:          24 * time.Hour,
		AsyncFailAfter:             24 * time.Hour,
		AsyncConcurrency:           8,
		WebhookAddr:                ":8443",
		WebhookPath:                "/webhook",
		WebhookPlaintext:           true,
		WebhookMaxBodyBytes:        1 << 20,
		WebhookMaxBodyBytesDefault: true,
		WebhookTolerance:           5 * time.Minute,
		WebhookMaxConns:            1024,
		WebhookMaxBodyMemory:       64 << 20,
		WebhookStoreTimeout:        5 * time.Second,
		WebhookHeaderTimeout:       5 * time.Second,
		StoreFailureLimit:          30 * time.Second,
		MaxSubscriptions:           100,
		MaxFilters:                 32,
		SubscriptionIdleExpiry:     720 * time.Hour,
		GRPCAddr:                   "127.0.0.1:50051",
		HTTPAddr:                   "127.0.0.1:50052",
		DataDir:                    "./chronoshub-data",
		NATSReplicas:               1,
		SyncAlways:                 true,
		Retention:                  168 * time.Hour,
		DuplicateWindow:            24 * time.Hour,
		AckWait:                    30 * time.Second,
		MaxAttempts:                5,
		MaxInFlight:                256,
		MaxAckPending:              1000,
		AdminAddr:                  ":9090",
		Pprof:                      PprofOff,
		CredentialsPollInterval:    2 * time.Second,
		SecretRotationGrace:        time.Hour,
		ShutdownGrace:              20 * time.Second,
		LogLevel:                   slog.LevelInfo,
		LogFormat:                  LogJSON,
	}
	if diff := cmp.Diff(want, got, ignoreCredentials); diff != "" {
		t.Errorf("Parse(defaults) mismatch (-want +got):\n%s", diff)
	}
	if got.APIKey.Reveal() != apiKey || got.APIKey.Path() != "" {
		t.Errorf("APIKey = %v, want the variable's value", got.APIKey)
	}
	if diff := cmp.Diff([][]byte{[]byte(webhookSecret)}, got.WebhookSecrets.Secrets()); diff != "" {
		t.Errorf("WebhookSecrets.Secrets() mismatch (-want +got):\n%s", diff)
	}
	if got.APIToken != nil || got.TLSCertificate != nil {
		t.Errorf("APIToken, TLSCertificate = %v, %v; want nil, nil", got.APIToken, got.TLSCertificate)
	}
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   []string
		field func(*Config) any
		want  any
	}{
		{"default", nil, nil, func(c *Config) any { return c.AckWait }, 30 * time.Second},
		{"env beats default", nil, []string{"CHRONOSHUB_ACK_WAIT", "20s"}, func(c *Config) any { return c.AckWait }, 20 * time.Second},
		{"flag beats env", []string{"--ack-wait", "10s"}, []string{"CHRONOSHUB_ACK_WAIT", "20s"}, func(c *Config) any { return c.AckWait }, 10 * time.Second},
		{"single dash flag", []string{"-ack-wait=10s"}, []string{"CHRONOSHUB_ACK_WAIT", "20s"}, func(c *Config) any { return c.AckWait }, 10 * time.Second},
		{"empty env is unset", nil, []string{"CHRONOSHUB_ACK_WAIT", ""}, func(c *Config) any { return c.AckWait }, 30 * time.Second},
		{"explicit empty flag beats env", []string{"--nats-url="}, []string{"CHRONOSHUB_NATS_URL", "nats://nats:4222"}, func(c *Config) any { return c.NATSURL }, ""},
		{"bool flag without value", []string{"--allow-remote-api"}, []string{"CHRONOSHUB_ALLOW_REMOTE_API", "false", "CHRONOSHUB_API_TOKEN", apiToken}, func(c *Config) any { return c.AllowRemoteAPI }, true},
		{"last flag wins", []string{"--log-level=debug", "--log-level=error"}, []string{"CHRONOSHUB_LOG_LEVEL", "warn"}, func(c *Config) any { return c.LogLevel }, slog.LevelError},
		{"level case-insensitive", nil, []string{"CHRONOSHUB_LOG_LEVEL", "WARN"}, func(c *Config) any { return c.LogLevel }, slog.LevelWarn},
		{"log format from the variable", nil, []string{"CHRONOSHUB_LOG_FORMAT", "Text"}, func(c *Config) any { return c.LogFormat }, LogText},
		{"log format flag wins", []string{"--log-format=json"}, []string{"CHRONOSHUB_LOG_FORMAT", "text"}, func(c *Config) any { return c.LogFormat }, LogJSON},
		{"sync always", nil, []string{"CHRONOSHUB_SYNC", "always"}, func(c *Config) any { return [2]any{c.SyncAlways, c.SyncInterval} }, [2]any{true, time.Duration(0)}},
		{"sync flag beats env", []string{"--sync=250ms"}, []string{"CHRONOSHUB_SYNC", "always"}, func(c *Config) any { return [2]any{c.SyncAlways, c.SyncInterval} }, [2]any{false, 250 * time.Millisecond}},
		{"event types trimmed", nil, []string{"CHRONOSHUB_ALLOWED_EVENT_TYPES", " manuscript.* , ,journal.created,"}, func(c *Config) any { return c.AllowedEventTypes }, []string{"manuscript.*", "journal.created"}},
		{"max conns zero is unlimited", []string{"--webhook-max-conns=0"}, nil, func(c *Config) any { return c.WebhookMaxConns }, 0},
		{"unix socket", []string{"--grpc-addr=unix:///run/sidecar.sock"}, nil, func(c *Config) any { return c.GRPCAddr }, "unix:///run/sidecar.sock"},
		{"body limits default", nil, nil, func(c *Config) any { return [2]bool{c.WebhookMaxBodyBytesDefault, c.MaxPayloadBytesDefault} }, [2]bool{true, true}},
		{"body limit set to its default value", nil, []string{"CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", "1048576"}, func(c *Config) any { return [2]bool{c.WebhookMaxBodyBytesDefault, c.MaxPayloadBytesDefault} }, [2]bool{false, true}},
		{"payload limit flag", []string{"--max-payload-bytes=1000"}, nil, func(c *Config) any { return [2]bool{c.WebhookMaxBodyBytesDefault, c.MaxPayloadBytesDefault} }, [2]bool{true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.args, environ(minimal, tt.env...))
			if diff := cmp.Diff(tt.want, tt.field(c)); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
	t.Run("bool flag false beats env", func(t *testing.T) {
		// The environment says plaintext; the flag says TLS, which then
		// needs its files.
		args := []string{"--webhook-plaintext=false"}
		_, err := Parse(args, environ(minimal), nil)
		if err == nil || !strings.Contains(err.Error(), "CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file): required") {
			t.Errorf("Parse(%q) = %v, want the TLS files required", args, err)
		}
	})
}

// joined returns the errors joined in err.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestParseReportsEveryProblem(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := environ(nil,
		"CHRONOSHUB_BASE_URL", "ftp://chronoshub.example",
		"CHRONOSHUB_API_KEY", apiKey,
		"CHRONOSHUB_API_KEY_FILE", "/run/secrets/api-key",
		// no webhook secret
		"CHRONOSHUB_WEBHOOK_PATH", "webhook",
		"CHRONOSHUB_WEBHOOK_PLAINTEXT", "yes please",
		"CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", "lots",
		"CHRONOSHUB_WEBHOOK_TOLERANCE", "-5m",
		"CHRONOSHUB_WEBHOOK_MAX_CONNS", "-1",
		"CHRONOSHUB_GRPC_ADDR", "0.0.0.0:50051",
		"CHRONOSHUB_HTTP_ADDR", "unix://relative.sock",
		"CHRONOSHUB_ADMIN_ADDR", "localhost:http",
		"CHRONOSHUB_SYNC", "sometimes",
		"CHRONOSHUB_ACK_WAIT", "x",
		"CHRONOSHUB_MAX_ATTEMPTS", "0",
		"CHRONOSHUB_MAX_IN_FLIGHT", "2000",
		"CHRONOSHUB_ALLOWED_EVENT_TYPES", "manuscript.submitted,bad type,ok.*",
		"CHRONOSHUB_SCHEMA_DIR", notDir,
		"CHRONOSHUB_LOG_LEVEL", "loud",
		"CHRONOSHUB_NATS_CREDS_FILE", "/nats.creds",
	)
	_, err := Parse([]string{"--retention=forever"}, env, nil)
	if err == nil {
		t.Fatal("Parse(bad everything) = nil error")
	}
	want := []string{
		`CHRONOSHUB_BASE_URL (--base-url): URL "ftp://chronoshub.example" must be absolute, with scheme http or https`,
		"CHRONOSHUB_API_KEY and CHRONOSHUB_API_KEY_FILE (--api-key-file) are both set: set one",
		"CHRONOSHUB_WEBHOOK_SECRET or CHRONOSHUB_WEBHOOK_SECRET_FILE (--webhook-secret-file): required to verify webhooks",
		`CHRONOSHUB_WEBHOOK_PATH (--webhook-path): path "webhook" must start with /`,
		`CHRONOSHUB_WEBHOOK_PLAINTEXT (--webhook-plaintext): invalid boolean "yes please"`,
		`CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES (--webhook-max-body-bytes): invalid integer "lots"`,
		`CHRONOSHUB_WEBHOOK_TOLERANCE (--webhook-tolerance): duration "-5m" must be positive`,
		"CHRONOSHUB_WEBHOOK_MAX_CONNS (--webhook-max-conns): -1 is out of range: want 0 to 1000000",
		"CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file): required unless CHRONOSHUB_WEBHOOK_PLAINTEXT",
		"CHRONOSHUB_TLS_KEY_FILE (--tls-key-file): required unless CHRONOSHUB_WEBHOOK_PLAINTEXT",
		`CHRONOSHUB_GRPC_ADDR (--grpc-addr): "0.0.0.0:50051" is not a loopback address`,
		`CHRONOSHUB_HTTP_ADDR (--http-addr): "unix://relative.sock": the socket path must be absolute`,
		`CHRONOSHUB_ADMIN_ADDR (--admin-addr): "localhost:http": port must be a number`,
		`CHRONOSHUB_SYNC (--sync): invalid value "sometimes": want always or a positive duration`,
		`CHRONOSHUB_RETENTION (--retention): invalid duration "forever"`,
		`CHRONOSHUB_ACK_WAIT (--ack-wait): invalid duration "x"`,
		"CHRONOSHUB_MAX_ATTEMPTS (--max-attempts): 0 is out of range: want 1 to 100",
		"CHRONOSHUB_MAX_ACK_PENDING (--max-ack-pending): 1000 is less than CHRONOSHUB_MAX_IN_FLIGHT (--max-in-flight) 2000",
		`CHRONOSHUB_ALLOWED_EVENT_TYPES (--allowed-event-types): event type pattern "bad type"`,
		"CHRONOSHUB_SCHEMA_DIR (--schema-dir): " + notDir + " is not a directory",
		`CHRONOSHUB_LOG_LEVEL (--log-level): invalid level "loud"`,
		"CHRONOSHUB_NATS_CREDS_FILE (--nats-creds-file) is set without CHRONOSHUB_NATS_URL (--nats-url)",
	}
	errs := joined(err)
	if len(errs) != len(want) {
		t.Errorf("Parse reported %d problems, want %d:\n%v", len(errs), len(want), err)
	}
	for _, w := range want {
		if !slices.ContainsFunc(errs, func(e error) bool { return strings.HasPrefix(e.Error(), w) }) {
			t.Errorf("Parse error lacks %q; got:\n%v", w, err)
		}
	}
	for _, e := range errs {
		if msg := e.Error(); !strings.HasPrefix(msg, "CHRONOSHUB_") || !strings.Contains(msg, "(--") {
			t.Errorf("problem %q does not name both the variable and the flag", msg)
		}
	}
	if strings.Contains(err.Error(), apiKey) {
		t.Errorf("Parse error holds the API key:\n%v", err)
	}
}

func TestParseRejectsSecretFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantEnv string
	}{
		{[]string{"--api-key=" + apiKey}, "CHRONOSHUB_API_KEY"},
		{[]string{"--api-key", apiKey}, "CHRONOSHUB_API_KEY"},
		{[]string{"-webhook-secret=" + webhookSecret}, "CHRONOSHUB_WEBHOOK_SECRET"},
		{[]string{"--data-dir=/d", "--api-token", apiToken}, "CHRONOSHUB_API_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			_, err := Parse(tt.args, environ(minimal), &out)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one", tt.args)
			}
			msg := err.Error()
			if !strings.Contains(msg, "flag provided but not defined") || !strings.Contains(msg, "secrets are never flags: set "+tt.wantEnv) {
				t.Errorf("Parse(%q) error = %q, want an undefined flag and a hint to use %s", tt.args, msg, tt.wantEnv)
			}
			for _, secret := range []string{apiKey, webhookSecret, apiToken} {
				if strings.Contains(msg, secret) || strings.Contains(out.String(), secret) {
					t.Errorf("Parse(%q) error or output holds the secret", tt.args)
				}
			}
		})
	}
	if _, err := Parse([]string{"--no-such-flag"}, environ(minimal), nil); err == nil || strings.Contains(err.Error(), "secrets") {
		t.Errorf("Parse(--no-such-flag) = %v, want an error without a secret hint", err)
	}
	if _, err := Parse([]string{"extra"}, environ(minimal), nil); err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
		t.Errorf("Parse(extra) = %v, want an unexpected argument", err)
	}
}

func TestParseCredentials(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api-key")
	secretsFile := filepath.Join(dir, "webhook-secrets")
	emptyFile := filepath.Join(dir, "empty")
	for path, content := range map[string]string{keyFile: apiKey + "\n", secretsFile: "new-secret\nold-secret\n", emptyFile: "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		args        []string
		env         []string
		wantErr     string
		wantKeyPath string
		wantSecrets []string
	}{
		{name: "values", wantSecrets: []string{webhookSecret}},
		{name: "several secrets in the variable", env: []string{"CHRONOSHUB_WEBHOOK_SECRET", "a, b\nc"}, wantSecrets: []string{"a", "b", "c"}},
		{name: "files from flags", args: []string{"--api-key-file", keyFile, "--webhook-secret-file=" + secretsFile},
			env:         []string{"CHRONOSHUB_API_KEY", "", "CHRONOSHUB_WEBHOOK_SECRET", ""},
			wantKeyPath: keyFile, wantSecrets: []string{"new-secret", "old-secret"}},
		{name: "file from env", env: []string{"CHRONOSHUB_API_KEY", "", "CHRONOSHUB_API_KEY_FILE", keyFile}, wantKeyPath: keyFile, wantSecrets: []string{webhookSecret}},
		{name: "no API key", env: []string{"CHRONOSHUB_API_KEY", ""},
			wantErr: "CHRONOSHUB_API_KEY or CHRONOSHUB_API_KEY_FILE (--api-key-file): required for SendEvent"},
		{name: "both API key and file", args: []string{"--api-key-file", keyFile},
			wantErr: "CHRONOSHUB_API_KEY and CHRONOSHUB_API_KEY_FILE (--api-key-file) are both set"},
		{name: "missing file", env: []string{"CHRONOSHUB_API_KEY", "", "CHRONOSHUB_API_KEY_FILE", filepath.Join(dir, "missing")},
			wantErr: "CHRONOSHUB_API_KEY_FILE (--api-key-file): api_key: open " + filepath.Join(dir, "missing")},
		{name: "empty file", env: []string{"CHRONOSHUB_WEBHOOK_SECRET", "", "CHRONOSHUB_WEBHOOK_SECRET_FILE", emptyFile},
			wantErr: "CHRONOSHUB_WEBHOOK_SECRET_FILE (--webhook-secret-file): webhook_secret: credential file " + emptyFile + " is empty"},
		{name: "secret of separators only", env: []string{"CHRONOSHUB_WEBHOOK_SECRET", " , \n"},
			wantErr: "CHRONOSHUB_WEBHOOK_SECRET holds no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, environ(minimal, tt.env...), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), apiKey) {
					t.Errorf("error holds the API key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.APIKey.Reveal() != apiKey || c.APIKey.Path() != tt.wantKeyPath {
				t.Errorf("APIKey from %q, want %q holding the key", c.APIKey.Path(), tt.wantKeyPath)
			}
			var got []string
			for _, s := range c.WebhookSecrets.Secrets() {
				got = append(got, string(s))
			}
			if diff := cmp.Diff(tt.wantSecrets, got); diff != "" {
				t.Errorf("WebhookSecrets mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTLS(t *testing.T) {
	certFile, keyFile, err := devcert.Generate(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherCert, _, err := devcert.Generate(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tls := []string{"CHRONOSHUB_WEBHOOK_PLAINTEXT", ""}
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantErr string
	}{
		{name: "pair", args: []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile}, env: tls},
		{name: "mismatched pair", args: []string{"--tls-cert-file", otherCert, "--tls-key-file", keyFile}, env: tls,
			wantErr: "CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file), CHRONOSHUB_TLS_KEY_FILE (--tls-key-file): tls pair"},
		{name: "missing key", args: []string{"--tls-cert-file", certFile}, env: tls,
			wantErr: "CHRONOSHUB_TLS_KEY_FILE (--tls-key-file): required unless CHRONOSHUB_WEBHOOK_PLAINTEXT (--webhook-plaintext) is true"},
		{name: "plaintext with a certificate", args: []string{"--tls-cert-file", certFile},
			wantErr: "CHRONOSHUB_TLS_CERT_FILE (--tls-cert-file) is set but CHRONOSHUB_WEBHOOK_PLAINTEXT (--webhook-plaintext) is true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, environ(minimal, tt.env...), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cert, _ := c.TLSCertificate.GetCertificate(nil); cert == nil || c.WebhookPlaintext {
				t.Errorf("TLSCertificate serves %v, plaintext %v; want a certificate over TLS", cert, c.WebhookPlaintext)
			}
		})
	}
}

func TestParseRemoteAPI(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(apiToken), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantErr []string
	}{
		{name: "loopback IPv4", args: []string{"--grpc-addr=127.0.0.2:1", "--http-addr=127.0.0.1:0"}},
		{name: "loopback IPv6", args: []string{"--grpc-addr=[::1]:1"}},
		{name: "localhost", args: []string{"--grpc-addr=LocalHost:1", "--http-addr=localhost:2"}},
		{name: "unix sockets", args: []string{"--grpc-addr=unix:///run/g.sock", "--http-addr=unix:///run/h.sock"}},
		{name: "empty host", args: []string{"--grpc-addr=:50051"},
			wantErr: []string{`CHRONOSHUB_GRPC_ADDR (--grpc-addr): ":50051" is not a loopback address`}},
		{name: "all interfaces from env", env: []string{"CHRONOSHUB_HTTP_ADDR", "0.0.0.0:50052", "CHRONOSHUB_GRPC_ADDR", "[::]:50051"},
			wantErr: []string{`CHRONOSHUB_HTTP_ADDR (--http-addr): "0.0.0.0:50052" is not a loopback address`, `CHRONOSHUB_GRPC_ADDR (--grpc-addr): "[::]:50051" is not a loopback address`}},
		{name: "a name", args: []string{"--grpc-addr=sidecar.internal:50051"},
			wantErr: []string{"is not a loopback address: the app-facing API listens on loopback or a unix socket unless CHRONOSHUB_ALLOW_REMOTE_API=true (--allow-remote-api)"}},
		{name: "opted in without a token", args: []string{"--grpc-addr=:50051", "--allow-remote-api"},
			wantErr: []string{"CHRONOSHUB_API_TOKEN or CHRONOSHUB_API_TOKEN_FILE (--api-token-file): required when CHRONOSHUB_ALLOW_REMOTE_API (--allow-remote-api) is true"}},
		{name: "opted in with a token", args: []string{"--grpc-addr=:50051", "--http-addr=0.0.0.0:50052", "--allow-remote-api"}, env: []string{"CHRONOSHUB_API_TOKEN", apiToken}},
		{name: "opted in with a token file", args: []string{"--grpc-addr=:50051", "--allow-remote-api", "--api-token-file", tokenFile}},
		{name: "same address twice", args: []string{"--grpc-addr=127.0.0.1:7000", "--http-addr=127.0.0.1:7000"},
			wantErr: []string{`CHRONOSHUB_GRPC_ADDR (--grpc-addr) and CHRONOSHUB_HTTP_ADDR (--http-addr): the same address "127.0.0.1:7000"`}},
		{name: "port 0 twice is fine", args: []string{"--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0", "--webhook-addr=127.0.0.1:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, environ(minimal, tt.env...), nil)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Parse(%q): %v", tt.args, err)
				}
				if c.AllowRemoteAPI && c.APIToken.Reveal() != apiToken {
					t.Errorf("APIToken does not hold the token")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %q", tt.args, tt.wantErr)
			}
			if got := len(joined(err)); got != len(tt.wantErr) {
				t.Errorf("Parse(%q) reported %d problems, want %d: %v", tt.args, got, len(tt.wantErr), err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) = %v, want it to contain %q", tt.args, err, w)
				}
			}
		})
	}
}

// TestParsePprof: the profiler is off by default, "loopback" is refused on
// an admin address beyond loopback (the default ":9090" is every
// interface), and "any" is the explicit opt-in for such an address.
func TestParsePprof(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "default", want: PprofOff},
		{name: "loopback on 127.0.0.1", args: []string{"--pprof=loopback", "--admin-addr=127.0.0.1:9090"}, want: PprofLoopback},
		{name: "loopback on localhost", args: []string{"--pprof=loopback", "--admin-addr=localhost:0"}, want: PprofLoopback},
		{name: "loopback on [::1]", args: []string{"--pprof=loopback", "--admin-addr=[::1]:9090"}, want: PprofLoopback},
		{name: "loopback on the default address", args: []string{"--pprof=loopback"},
			wantErr: `CHRONOSHUB_PPROF (--pprof): loopback, but CHRONOSHUB_ADMIN_ADDR (--admin-addr) ":9090" is not a loopback address`},
		{name: "loopback on all interfaces", args: []string{"--pprof=loopback", "--admin-addr=0.0.0.0:9090"},
			wantErr: `CHRONOSHUB_ADMIN_ADDR (--admin-addr) "0.0.0.0:9090" is not a loopback address`},
		{name: "loopback on a name", args: []string{"--pprof=loopback", "--admin-addr=sidecar.internal:9090"},
			wantErr: "is not a loopback address"},
		{name: "any on all interfaces", args: []string{"--pprof=any", "--admin-addr=0.0.0.0:9090"}, want: PprofAny},
		{name: "off on all interfaces", args: []string{"--pprof=off", "--admin-addr=0.0.0.0:9090"}, want: PprofOff},
		{name: "a boolean is not a mode", args: []string{"--pprof=true"},
			wantErr: `CHRONOSHUB_PPROF (--pprof): invalid value "true": want off, loopback or any`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.args, environ(minimal), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				if got := len(joined(err)); got != 1 {
					t.Errorf("Parse(%q) reported %d problems, want 1: %v", tt.args, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			if c.Pprof != tt.want {
				t.Errorf("Parse(%q).Pprof = %q, want %q", tt.args, c.Pprof, tt.want)
			}
		})
	}
	// The variable works as the flag does.
	if _, err := Parse(nil, environ(minimal, "CHRONOSHUB_PPROF", "loopback"), nil); err == nil || !strings.Contains(err.Error(), "is not a loopback address") {
		t.Errorf("Parse(CHRONOSHUB_PPROF=loopback) = %v, want the loopback refusal", err)
	}
}

func TestParseMisc(t *testing.T) {
	schemas := t.TempDir()
	creds := filepath.Join(t.TempDir(), "nats.creds")
	if err := os.WriteFile(creds, []byte("creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "schema dir", args: []string{"--schema-dir", schemas}},
		{name: "missing schema dir", args: []string{"--schema-dir", filepath.Join(schemas, "nope")}, wantErr: "CHRONOSHUB_SCHEMA_DIR (--schema-dir): stat "},
		{name: "external NATS", args: []string{"--nats-url", "nats://a:4222, tls://b:4222", "--nats-creds-file", creds}},
		{name: "missing NATS creds", args: []string{"--nats-url", "nats://a:4222", "--nats-creds-file", creds + ".x"}, wantErr: "CHRONOSHUB_NATS_CREDS_FILE (--nats-creds-file): stat "},
		{name: "NATS URL without scheme", args: []string{"--nats-url", "a:4222"}, wantErr: `CHRONOSHUB_NATS_URL (--nats-url): invalid NATS URL "a:4222"`},
		{name: "base URL with user information", args: []string{"--base-url", "https://u:pw@h.example"}, wantErr: `URL "https://u:xxxxx@h.example" must not carry user information`},
		{name: "base URL with a query", args: []string{"--base-url", "https://h.example/?a=b"}, wantErr: "must not have a query or fragment"},
		{name: "relative base URL", args: []string{"--base-url", "/inbound"}, wantErr: "must be absolute"},
		{name: "empty data dir", args: []string{"--data-dir="}, wantErr: "CHRONOSHUB_DATA_DIR (--data-dir): must not be empty"},
		{name: "too large a body", args: []string{"--webhook-max-body-bytes=1000000000"}, wantErr: "1000000000 is out of range: want 1 to 67043328"},
		{name: "base URL without a scheme", args: []string{"--base-url", "api.chronoshub.example"}, wantErr: `CHRONOSHUB_BASE_URL (--base-url): URL "api.chronoshub.example" has no scheme: write "https://api.chronoshub.example"`},
		{name: "base URL without a scheme, with a port", args: []string{"--base-url", "api.chronoshub.example:443"}, wantErr: `URL "api.chronoshub.example:443" has no scheme: write "https://api.chronoshub.example:443"`},
		{name: "base URL without a scheme, with a password", args: []string{"--base-url", "u:pw@api.chronoshub.example"}, wantErr: "URL has no scheme and seems to carry user information"},
		{name: "unknown log format", args: []string{"--log-format", "yaml"}, wantErr: `CHRONOSHUB_LOG_FORMAT (--log-format): invalid log format "yaml": want json or text`},
		{name: "empty base URL", args: []string{"--base-url="}, wantErr: `CHRONOSHUB_BASE_URL (--base-url): URL "" must be absolute`},
	}
	t.Run("base URL required", func(t *testing.T) {
		_, err := Parse(nil, environ(minimal, "CHRONOSHUB_BASE_URL", ""), nil)
		if err == nil || err.Error() != "CHRONOSHUB_BASE_URL (--base-url): required: ChronosHub's base URL for inbound events" {
			t.Errorf("Parse(no base URL) = %v, want it required", err)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, environ(minimal), nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Parse(%q): %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "pw@"):
				t.Errorf("Parse(%q) error shows a password: %v", tt.args, err)
			}
		})
	}
}

// contract lists the variables DESIGN.md and the product brief fix.
var contract = []string{
	"CHRONOSHUB_BASE_URL", "CHRONOSHUB_API_KEY", "CHRONOSHUB_API_KEY_FILE",
	"CHRONOSHUB_WEBHOOK_SECRET", "CHRONOSHUB_WEBHOOK_SECRET_FILE", "CHRONOSHUB_WEBHOOK_ADDR",
	"CHRONOSHUB_WEBHOOK_PATH", "CHRONOSHUB_TLS_CERT_FILE", "CHRONOSHUB_TLS_KEY_FILE",
	"CHRONOSHUB_WEBHOOK_PLAINTEXT", "CHRONOSHUB_GRPC_ADDR", "CHRONOSHUB_HTTP_ADDR",
	"CHRONOSHUB_ADMIN_ADDR", "CHRONOSHUB_DATA_DIR",
	"CHRONOSHUB_WEBHOOK_MAX_BODY_BYTES", "CHRONOSHUB_WEBHOOK_TOLERANCE", "CHRONOSHUB_WEBHOOK_MAX_CONNS",
	"CHRONOSHUB_SYNC", "CHRONOSHUB_RETENTION", "CHRONOSHUB_DUPLICATE_WINDOW", "CHRONOSHUB_ACK_WAIT",
	"CHRONOSHUB_MAX_ATTEMPTS", "CHRONOSHUB_MAX_IN_FLIGHT", "CHRONOSHUB_MAX_ACK_PENDING",
	"CHRONOSHUB_ALLOWED_EVENT_TYPES", "CHRONOSHUB_SCHEMA_DIR", "CHRONOSHUB_MAX_PAYLOAD_BYTES",
	"CHRONOSHUB_SEND_MAX_ATTEMPTS", "CHRONOSHUB_SEND_TIMEOUT", "CHRONOSHUB_IDEMPOTENCY_WINDOW",
	"CHRONOSHUB_ASYNC_FAIL_AFTER", "CHRONOSHUB_ASYNC_CONCURRENCY", "CHRONOSHUB_ASYNC_ORDER_BY_TYPE", "CHRONOSHUB_NATS_URL", "CHRONOSHUB_NATS_CREDS_FILE",
	"CHRONOSHUB_NATS_TLS_CA_FILE", "CHRONOSHUB_NATS_TLS_CERT_FILE", "CHRONOSHUB_NATS_TLS_KEY_FILE",
	"CHRONOSHUB_NATS_DOMAIN", "CHRONOSHUB_NATS_REPLICAS",
	"CHRONOSHUB_ALLOW_REMOTE_API", "CHRONOSHUB_API_TOKEN", "CHRONOSHUB_API_TOKEN_FILE",
	"CHRONOSHUB_CREDENTIALS_POLL_INTERVAL", "CHRONOSHUB_SECRET_ROTATION_GRACE",
	"CHRONOSHUB_SHUTDOWN_GRACE", "CHRONOSHUB_LOG_LEVEL", "CHRONOSHUB_LOG_FORMAT",
	"CHRONOSHUB_STORE_FAILURE_LIMIT", "CHRONOSHUB_WEBHOOK_HEADER_TIMEOUT",
	"CHRONOSHUB_LOG_MAX_BYTES", "CHRONOSHUB_MAX_SUBSCRIPTIONS", "CHRONOSHUB_MAX_FILTERS",
	"CHRONOSHUB_SUBSCRIPTION_IDLE_EXPIRY",
	"CHRONOSHUB_WEBHOOK_MAX_BODY_MEMORY", "CHRONOSHUB_WEBHOOK_STORE_TIMEOUT",
	"CHRONOSHUB_PPROF",                                                 // opt-in profiler on the admin listener (make bench profiles the binary)
	"CHRONOSHUB_SUBSCRIPTIONS_FILE", "CHRONOSHUB_STRICT_SUBSCRIPTIONS", // declared subscriptions (issues 20, 21)
}

// TestSettingsCoverConfig keeps the settings table, the Config struct and
// the contract in step: every Config field is set by a setting, and the
// settings are exactly the contract's variables.
func TestSettingsCoverConfig(t *testing.T) {
	var c Config
	table := settings(&c, &raw{})
	var envs []string
	targets := map[uintptr]bool{}
	for _, s := range table {
		envs = append(envs, s.env)
		for _, p := range s.value.targets() {
			targets[reflect.ValueOf(p).Pointer()] = true
		}
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(contract)), slices.Sorted(slices.Values(envs))); diff != "" {
		t.Errorf("settings differ from the contract (-contract +settings):\n%s", diff)
	}
	derived := map[string]bool{
		"TLSCertificate":             true, // loaded from TLSCertFile and TLSKeyFile
		"WebhookMaxBodyBytesDefault": true, // whether the setting was given
		"MaxPayloadBytesDefault":     true,
		"Subscriptions":              true, // read from SubscriptionsFile
	}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if set := targets[v.Field(i).Addr().Pointer()]; set == derived[name] {
			t.Errorf("Config.%s: set by a setting %v, derived %v; want exactly one", name, set, derived[name])
		}
	}
}

func TestHelp(t *testing.T) {
	env := environ(minimal,
		"CHRONOSHUB_API_TOKEN", apiToken,
		"CHRONOSHUB_NATS_URL", "nats://user:natspass@nats:4222",
		"CHRONOSHUB_DATA_DIR", "/from/env",
	)
	for _, arg := range []string{"-h", "--help", "-help"} {
		t.Run(arg, func(t *testing.T) {
			var out bytes.Buffer
			c, err := Parse([]string{"--ack-wait=1s", arg}, env, &out)
			if !errors.Is(err, flag.ErrHelp) || c != nil {
				t.Fatalf("Parse(%s) = %v, %v; want nil, flag.ErrHelp", arg, c, err)
			}
			help := out.String()
			for _, s := range settings(&Config{}, &raw{}) {
				if !strings.Contains(help, s.env) {
					t.Errorf("--help lacks %s", s.env)
				}
				if f := s.flagName(); f != "" && !strings.Contains(help, "--"+f+" ") && !strings.Contains(help, "--"+f+"  ") {
					t.Errorf("--help lacks --%s", f)
				}
				if s.def != "" && !strings.Contains(help, "(default "+s.def+")") {
					t.Errorf("--help lacks the default of %s, %s", s.env, s.def)
				}
			}
			for _, leak := range []string{apiKey, webhookSecret, apiToken, "natspass", "/from/env"} {
				if strings.Contains(help, leak) {
					t.Errorf("--help shows %q from the environment", leak)
				}
			}
			if strings.Contains(help, "--api-key ") || strings.Contains(help, "--webhook-secret ") || strings.Contains(help, "--api-token ") {
				t.Errorf("--help offers a flag for a secret:\n%s", help)
			}
			if t.Failed() {
				t.Logf("--help:\n%s", help)
			}
		})
	}
}

func TestLogValue(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "api-key")
	if err := os.WriteFile(keyFile, []byte(apiKey), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, []string{"--api-key-file", keyFile, "--nats-url", "nats://user:natspass@nats:4222", "--allow-remote-api"},
		environ(minimal, "CHRONOSHUB_API_KEY", "", "CHRONOSHUB_API_TOKEN", apiToken))

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", c)
	out := buf.String()
	for _, leak := range []string{apiKey, webhookSecret, apiToken, "natspass"} {
		if strings.Contains(out, leak) {
			t.Errorf("log line holds %q: %s", leak, out)
		}
	}
	for _, want := range []string{
		`"api_key_file":"` + keyFile + `"`,
		`"api_key":""`,
		`"webhook_secret":"REDACTED"`,
		`"api_token":"REDACTED"`,
		`"nats_url":"nats://REDACTED@nats:4222"`,
		`"nats_replicas":3`,
		`"data_dir":""`,
		`"sync":"cluster"`,
		`"ack_wait":"30s"`,
		`"log_level":"info"`,
		`"log_format":"json"`,
		`"allow_remote_api":true`,
		`"max_in_flight":256`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
	for _, s := range settings(&Config{}, &raw{}) {
		if !strings.Contains(out, `"`+s.logKey()+`":`) {
			t.Errorf("log line lacks %s", s.logKey())
		}
	}
}

// TestParseNATS covers the settings of an external NATS cluster and the
// embedded store's settings that a cluster refuses.
func TestParseNATS(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert, key := file("ca.pem"), file("cert.pem"), file("key.pem")
	const url = "nats://a:4222,nats://b:4222"
	type nats struct {
		URL, CA, Cert, Key, Domain string
		Replicas                   int
		SyncAlways                 bool
		SyncInterval               time.Duration
		DataDir                    string
	}
	got := func(c *Config) nats {
		return nats{c.NATSURL, c.NATSTLSCAFile, c.NATSTLSCertFile, c.NATSTLSKeyFile, c.NATSDomain, c.NATSReplicas, c.SyncAlways, c.SyncInterval, c.DataDir}
	}
	tests := []struct {
		name    string
		args    []string
		env     []string
		want    nats
		wantErr []string
	}{
		{name: "embedded", want: nats{Replicas: 1, SyncAlways: true, DataDir: "./chronoshub-data"}},
		{name: "embedded, one replica", args: []string{"--nats-replicas=1"}, want: nats{Replicas: 1, SyncAlways: true, DataDir: "./chronoshub-data"}},
		{name: "embedded, interval", env: []string{"CHRONOSHUB_SYNC", "1s"}, want: nats{Replicas: 1, SyncInterval: time.Second, DataDir: "./chronoshub-data"}},
		{name: "cluster defaults", args: []string{"--nats-url", url}, want: nats{URL: url, Replicas: 3}},
		{name: "cluster, everything", args: []string{"--nats-url", url, "--nats-tls-ca-file", ca, "--nats-tls-cert-file", cert, "--nats-tls-key-file", key, "--nats-domain", "hub", "--nats-replicas", "5"},
			want: nats{URL: url, CA: ca, Cert: cert, Key: key, Domain: "hub", Replicas: 5}},
		{name: "cluster from the environment", env: []string{"CHRONOSHUB_NATS_URL", url, "CHRONOSHUB_NATS_REPLICAS", "1", "CHRONOSHUB_NATS_DOMAIN", "hub"},
			want: nats{URL: url, Domain: "hub", Replicas: 1}},
		{name: "replicas above 1 embedded", args: []string{"--nats-replicas=3"},
			wantErr: []string{"CHRONOSHUB_NATS_REPLICAS (--nats-replicas): 3 replicas need a NATS cluster (CHRONOSHUB_NATS_URL)"}},
		{name: "replicas out of range", args: []string{"--nats-url", url, "--nats-replicas=7"},
			wantErr: []string{"CHRONOSHUB_NATS_REPLICAS (--nats-replicas): 7 is out of range: want 1 to 5"}},
		{name: "sync with a cluster", args: []string{"--nats-url", url}, env: []string{"CHRONOSHUB_SYNC", "always"},
			wantErr: []string{"CHRONOSHUB_SYNC (--sync) is set with CHRONOSHUB_NATS_URL (--nats-url): it applies to the embedded store only; with an external cluster, durability comes from the cluster's replication"}},
		{name: "data dir with a cluster", args: []string{"--nats-url", url, "--data-dir", "/data"},
			wantErr: []string{"CHRONOSHUB_DATA_DIR (--data-dir) is set with CHRONOSHUB_NATS_URL (--nats-url)"}},
		{name: "TLS and domain without a cluster", args: []string{"--nats-tls-ca-file", ca, "--nats-domain", "hub"},
			wantErr: []string{
				"CHRONOSHUB_NATS_TLS_CA_FILE (--nats-tls-ca-file) is set without CHRONOSHUB_NATS_URL",
				"CHRONOSHUB_NATS_DOMAIN (--nats-domain) is set without CHRONOSHUB_NATS_URL",
			}},
		{name: "certificate without key", args: []string{"--nats-url", url, "--nats-tls-cert-file", cert},
			wantErr: []string{"CHRONOSHUB_NATS_TLS_CERT_FILE (--nats-tls-cert-file) and CHRONOSHUB_NATS_TLS_KEY_FILE (--nats-tls-key-file) go together"}},
		{name: "missing CA file", args: []string{"--nats-url", url, "--nats-tls-ca-file", ca + ".x"},
			wantErr: []string{"CHRONOSHUB_NATS_TLS_CA_FILE (--nats-tls-ca-file): stat "}},
		{name: "CA is a directory", args: []string{"--nats-url", url, "--nats-tls-ca-file", dir},
			wantErr: []string{"is not a file"}},
		{name: "domain with a dot", args: []string{"--nats-url", url, "--nats-domain", "a.b"},
			wantErr: []string{`CHRONOSHUB_NATS_DOMAIN (--nats-domain): invalid domain "a.b"`}},
		{name: "token URL", args: []string{"--nats-url", "nats://s3cret-token@a:4222, b"},
			wantErr: []string{`invalid NATS URL "b"`}},
		{name: "token URL without scheme", args: []string{"--nats-url", "s3cret-token@a:4222"},
			wantErr: []string{`invalid NATS URL "REDACTED@a:4222"`}},
		{name: "unparsable URL with a password", args: []string{"--nats-url", "nats://u:s3cret%zz@a:4222"},
			wantErr: []string{`invalid NATS URL "nats://REDACTED@a:4222"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, environ(minimal, tt.env...), nil)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Parse(%q) = %v", tt.args, err)
				}
				if diff := cmp.Diff(tt.want, got(c)); diff != "" {
					t.Errorf("Parse(%q) (-want +got):\n%s", tt.args, diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = nil, want %q", tt.args, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) = %v, want it to contain %q", tt.args, err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Parse(%q) = %v: the error shows a secret", tt.args, err)
			}
		})
	}
}

// TestLogValueHidesNATSToken: a token in the URL's user field is as secret as
// a password. url.URL.Redacted, used before, showed it.
func TestLogValueHidesNATSToken(t *testing.T) {
	c := mustParse(t, []string{"--nats-url", "nats://s3cret-token@nats:4222"}, environ(minimal))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", c)
	if out := buf.String(); strings.Contains(out, "s3cret-token") || !strings.Contains(out, `"nats_url":"nats://REDACTED@nats:4222"`) {
		t.Errorf("log line = %s, want the token hidden", out)
	}
}

// TestDefault reads a setting's default from the table Parse uses.
func TestDefault(t *testing.T) {
	t.Parallel()
	if v, ok := Default("CHRONOSHUB_MAX_IN_FLIGHT"); !ok || v != "256" {
		t.Errorf(`Default(CHRONOSHUB_MAX_IN_FLIGHT) = %q, %v; want "256", true`, v, ok)
	}
	if v, ok := Default("CHRONOSHUB_NO_SUCH_SETTING"); ok {
		t.Errorf("Default(CHRONOSHUB_NO_SUCH_SETTING) = %q, true; want false", v)
	}
}
