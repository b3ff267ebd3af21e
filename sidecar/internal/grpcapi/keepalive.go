package grpcapi

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Keepalive is the gRPC server's HTTP/2 keepalive policy. Long-lived idle
// streams (StreamEvents with no events) need both sides: the server pings a
// silent connection to find apps that are gone and to keep NAT and
// connection-tracking entries alive, and it lets apps ping it to detect a
// dead sidecar, rather than answering their pings with GOAWAY
// ("too_many_pings"), which ends every stream on the connection. grpc-go's
// server defaults allow one client ping per 5 minutes, and only with a call
// open.
type Keepalive struct {
	// Time is how long a connection may be silent before the server pings
	// it.
	Time time.Duration
	// Timeout is how long the server waits for the answer to its ping
	// before closing the connection.
	Timeout time.Duration
	// MinClientPing is the shortest interval at which a client may ping the
	// server, with or without a call open.
	MinClientPing time.Duration
}

// DefaultKeepalive is the sidecar's policy: the server pings a connection
// silent for 30 s and closes it when the ping is not answered within 10 s;
// clients may ping every 5 s or more, so that a client keepalive of 10 s
// (grpc-go's shortest; GRPC_ARG_KEEPALIVE_TIME_MS=10000 in C-core languages)
// keeps an idle stream open through any deadline.
func DefaultKeepalive() Keepalive {
	return Keepalive{Time: 30 * time.Second, Timeout: 10 * time.Second, MinClientPing: 5 * time.Second}
}

// ServerOptions returns the grpc.NewServer options that apply k.
func (k Keepalive) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: k.Time, Timeout: k.Timeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: k.MinClientPing, PermitWithoutStream: true}),
	}
}
