package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// unixScheme prefixes a unix socket address.
const unixScheme = "unix://"

// maxUnixPath is the longest unix socket path accepted: sun_path holds 104
// bytes on the BSDs and macOS (108 on Linux), and a longer path fails at
// bind time with an obscure error.
const maxUnixPath = 103

// ParseListenAddr parses a listener address: "host:port" (network "tcp",
// address unchanged; the host may be empty, an IP address or a name, the port
// a number, 0 for any) or "unix:///absolute/path" (network "unix", address
// the path). Its results go to net.Listen.
func ParseListenAddr(s string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(s, unixScheme); ok {
		switch {
		case !strings.HasPrefix(path, "/"):
			return "", "", fmt.Errorf("%s: the socket path must be absolute, as in unix:///run/chronoshub/sidecar.sock", quote(s))
		case len(path) > maxUnixPath:
			return "", "", fmt.Errorf("%s: the socket path is longer than %d bytes", quote(s), maxUnixPath)
		}
		return "unix", path, nil
	}
	if strings.Contains(s, "://") {
		return "", "", fmt.Errorf("%s: want host:port or unix:///path", quote(s))
	}
	if _, err := splitHostPort(s); err != nil {
		return "", "", err
	}
	return "tcp", s, nil
}

// splitHostPort returns the host of a "host:port" address whose port is a
// number from 0 to 65535.
func splitHostPort(s string) (host string, err error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%s: want host:port", quote(s))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%s: port must be a number from 0 to 65535", quote(s))
	}
	return host, nil
}

// IsLoopback reports whether host, as in the host part of a "host:port"
// listener address, names only the loopback interface: "localhost" (any
// case), an address in 127.0.0.0/8, or ::1. An empty host (":50051") means
// every interface and is not loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errRemote explains how to let the app-facing API listen beyond loopback.
var errRemote = errors.New("not a loopback address: the app-facing API listens on loopback or a unix socket " +
	"unless CHRONOSHUB_ALLOW_REMOTE_API=true (--allow-remote-api), which also requires a bearer token " +
	"in CHRONOSHUB_API_TOKEN or CHRONOSHUB_API_TOKEN_FILE (--api-token-file)")

// quote quotes a value for an error message, shortened if long. It is never
// used on a secret.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
