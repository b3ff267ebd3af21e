package sidecar

import (
	"net"
	"testing"

	"google.golang.org/grpc"
)

// TestServeGRPCStoppedBeforeServe: a shutdown that stops the gRPC server
// before its Serve goroutine ran (SIGTERM right after the start, on a busy
// machine) is a clean stop. Before, Serve's grpc.ErrServerStopped became
// Run's error (a gateway test's cleanup failed the same way in CI).
func TestServeGRPCStoppedBeforeServe(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	srv.Stop()
	if err := serveGRPC(srv, lis)(); err != nil {
		t.Fatalf("serve after stop = %v, want nil", err)
	}
}
