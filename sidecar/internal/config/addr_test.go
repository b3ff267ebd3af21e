package config

import (
	"net"
	"strings"
	"testing"
)

func TestParseListenAddr(t *testing.T) {
	tests := []struct {
		in          string
		wantNetwork string
		wantAddress string
		wantErr     string
	}{
		{in: "127.0.0.1:50051", wantNetwork: "tcp", wantAddress: "127.0.0.1:50051"},
		{in: ":0", wantNetwork: "tcp", wantAddress: ":0"},
		{in: "[::1]:443", wantNetwork: "tcp", wantAddress: "[::1]:443"},
		{in: "localhost:8080", wantNetwork: "tcp", wantAddress: "localhost:8080"},
		{in: "unix:///run/chronoshub/sidecar.sock", wantNetwork: "unix", wantAddress: "/run/chronoshub/sidecar.sock"},
		{in: "", wantErr: "want host:port"},
		{in: "127.0.0.1", wantErr: "want host:port"},
		{in: "::1:80", wantErr: "want host:port"},
		{in: "host:65536", wantErr: "port must be a number"},
		{in: "host:http", wantErr: "port must be a number"},
		{in: "unix://", wantErr: "must be absolute"},
		{in: "unix://run/x.sock", wantErr: "must be absolute"},
		{in: "unix:///" + strings.Repeat("a", 200), wantErr: "longer than"},
		{in: "tcp://127.0.0.1:1", wantErr: "want host:port or unix:///path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			network, address, err := ParseListenAddr(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseListenAddr(%q) = %q, %q, %v; want an error containing %q", tt.in, network, address, err, tt.wantErr)
				}
				return
			}
			if err != nil || network != tt.wantNetwork || address != tt.wantAddress {
				t.Errorf("ParseListenAddr(%q) = %q, %q, %v; want %q, %q, nil", tt.in, network, address, err, tt.wantNetwork, tt.wantAddress)
			}
		})
	}
}

func FuzzParseListenAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:1", ":0", "[::1]:2", "unix:///a", "unix://a", "a:b:c", "[::1", "tcp://x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		network, address, err := ParseListenAddr(s)
		if err != nil {
			if network != "" || address != "" {
				t.Fatalf("ParseListenAddr(%q) = %q, %q with error %v", s, network, address, err)
			}
			return
		}
		switch network {
		case "unix":
			if !strings.HasPrefix(address, "/") || "unix://"+address != s {
				t.Fatalf("ParseListenAddr(%q) = unix %q, want the absolute path after unix://", s, address)
			}
		case "tcp":
			if _, _, err := net.SplitHostPort(address); err != nil || address != s {
				t.Fatalf("ParseListenAddr(%q) = tcp %q, which SplitHostPort rejects: %v", s, address, err)
			}
		default:
			t.Fatalf("ParseListenAddr(%q) = network %q", s, network)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"localhost", true},
		{"LOCALHOST", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.0.0.1", false},
		{"128.0.0.1", false},
		{"localhost.example", false},
		{"sidecar", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := IsLoopback(tt.host); got != tt.want {
				t.Errorf("IsLoopback(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}
