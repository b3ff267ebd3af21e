package natsconn

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natstest"
)

func TestCheckServerVersion(t *testing.T) {
	tests := []struct {
		version string
		wantErr string
	}{
		{"2.11.0", ""},
		{"2.15.2", ""},
		{"v2.12.0-beta.1", ""},
		{"3.0.0", ""},
		{"2.10.22", "version 2.10.22 is too old: the sidecar needs NATS server 2.11.0 or later"},
		{"1.99.99", "version 1.99.99 is too old"},
		{"", `unrecognised server version ""`},
		{"2.x.1", `unrecognised server version "2.x.1"`},
	}
	for _, tt := range tests {
		err := checkServerVersion(tt.version)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("checkServerVersion(%q) = %v, want %q", tt.version, err, tt.wantErr)
		}
	}
}

// TestConnectExternal connects to a three-node cluster with a JetStream domain
// and a password in the URL, and checks that no error shows the password.
func TestConnectExternal(t *testing.T) {
	t.Parallel()
	const password = "pw-do-not-print"
	c := natstest.Start(t, natstest.Options{Domain: "hub", User: "sidecar", Password: password})

	t.Run("domain", func(t *testing.T) {
		nc, js, err := ConnectExternal(t.Context(), ExternalOptions{URL: c.URLs(), Domain: "hub"})
		if err != nil {
			t.Fatalf("ConnectExternal = %v", err)
		}
		defer nc.Close()
		info, err := js.AccountInfo(t.Context())
		if err != nil || info.Domain != "hub" {
			t.Fatalf("AccountInfo = %+v, %v; want domain hub", info, err)
		}
		kv, err := EnsureKeyValue(t.Context(), js, jetstream.KeyValueConfig{Bucket: "B", Replicas: 3, LimitMarkerTTL: time.Minute}, nil)
		if err != nil {
			t.Fatalf("EnsureKeyValue = %v", err)
		}
		// A bucket's subjects reach the node this client uses a moment after
		// its stream answers on the API, and a write before that has no
		// responders (seen in CI): wait for the bucket to answer, with a deadline.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err = kv.Create(t.Context(), "k", []byte("v"), jetstream.KeyTTL(time.Minute))
			if !errors.Is(err, jetstream.ErrNoStreamResponse) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Create with a TTL = %v", err)
		}
	})

	_, port, _ := net.SplitHostPort(strings.TrimPrefix(c.URL(0), "nats://sidecar:"+password+"@"))
	closed := closedPort(t)
	for _, tt := range []struct {
		name    string
		opts    ExternalOptions
		wantErr string
	}{
		{"wrong password", ExternalOptions{URL: "nats://sidecar:wrong-" + password + "@127.0.0.1:" + port}, "connect to nats nats://REDACTED@127.0.0.1:" + port + ": nats: Authorization Violation"},
		{"token", ExternalOptions{URL: "nats://" + password + "@127.0.0.1:" + port}, "nats://REDACTED@127.0.0.1:" + port},
		{"unreachable", ExternalOptions{URL: "nats://sidecar:" + password + "@" + closed, Timeout: time.Second}, "connect to nats nats://REDACTED@" + closed},
		{"wrong domain", ExternalOptions{URL: c.URLs(), Domain: "elsewhere", Timeout: time.Second}, `JetStream in domain "elsewhere" does not answer`},
		{"certificate without key", ExternalOptions{URL: c.URLs(), TLSCertFile: "client.pem"}, "set both or neither"},
		{"missing CA file", ExternalOptions{URL: c.URLs(), TLSCAFile: "/nonexistent/ca.pem"}, "connect to nats nats://REDACTED@"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, _, err := ConnectExternal(t.Context(), tt.opts)
			if err == nil {
				nc.Close()
				t.Fatalf("ConnectExternal = nil, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ConnectExternal = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("ConnectExternal = %v: the error shows the password", err)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestConnectExternalTLS connects over mutual TLS with the CA and client
// certificate settings, and is refused without the client certificate or
// with the system's roots.
func TestConnectExternalTLS(t *testing.T) {
	t.Parallel()
	c := natstest.Start(t, natstest.Options{TLS: true})
	files := c.TLS()
	nc, js, err := ConnectExternal(t.Context(), ExternalOptions{URL: c.URLs(), TLSCAFile: files.CA, TLSCertFile: files.Cert, TLSKeyFile: files.Key})
	if err != nil {
		t.Fatalf("ConnectExternal over mutual TLS = %v", err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("the connection does not use TLS")
	}
	if _, err := EnsureStream(t.Context(), js, testStream(3), nil); err != nil {
		t.Errorf("EnsureStream over TLS = %v", err)
	}
	for name, opts := range map[string]ExternalOptions{
		"no client certificate": {URL: c.URLs(), TLSCAFile: files.CA, Timeout: 2 * time.Second},
		"system roots":          {URL: c.URLs(), TLSCertFile: files.Cert, TLSKeyFile: files.Key, Timeout: 2 * time.Second},
	} {
		if nc, _, err := ConnectExternal(t.Context(), opts); err == nil {
			nc.Close()
			t.Errorf("ConnectExternal with %s = nil, want it refused", name)
		}
	}
}
