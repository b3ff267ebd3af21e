// Command chronoshub-sidecar runs next to a partner's app and integrates it
// with ChronosHub: it receives ChronosHub's signed webhooks, stores them
// durably and streams them to the app over gRPC (and REST), and forwards the
// app's events to ChronosHub with the API key attached.
//
// Subcommands:
//
//	serve    the sidecar, configured by flags and CHRONOSHUB_… variables
//	dev      the sidecar wired to an in-process ChronosHub emulator, no configuration
//	emulate  a standalone ChronosHub emulator for tests
//	trigger  send one signed webhook to a URL and report the answer
//
// Run "chronoshub-sidecar <subcommand> --help" for each one's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/grpclog"
)

func main() {
	// gRPC's own log is process-global: installed once, here, and handed the
	// subcommand's logger by run.
	logs := newGRPCLogs()
	grpclog.SetLoggerV2(logs)
	ctx, stop := signal.NotifyContext(withGRPCLogs(context.Background(), logs), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful shutdown; restoring the default
	// handling then lets a second signal stop the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var (
		code     exitCodeError
		reported reportedError
	)
	switch {
	case errors.As(err, &code):
		os.Exit(int(code))
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errExitStatus), errors.As(err, &reported):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "chronoshub-sidecar:", err)
		os.Exit(1)
	}
}
