// Command chronoshub-bench measures the chronoshub-sidecar binary against
// baselines in the same run and writes a report with charts (make bench).
//
// It builds the real binary, runs it with "serve" on loopback against an
// in-process ChronosHub emulator, and drives it with load generators written
// here: signed webhooks over HTTPS (against a bare Go HTTPS server as the
// baseline), end-to-end delivery to a gRPC consumer at fixed offered rates,
// SendEvent against a direct POST to the emulator, stream drain throughput,
// and the process's footprint (binary size, RSS, startup and recovery time).
// Every figure is the median of several runs with the min–max range; the
// runs of a sidecar and its baseline are interleaved so that the ratios
// survive a noisy machine.
//
// Under each load with a target it also profiles the running binary
// through its pprof endpoint on the loopback admin listener
// (CHRONOSHUB_PPROF=loopback) and reports what dominates.
//
// Usage (from the repository root):
//
//	go run ./sidecar/cmd/chronoshub-bench [-quick] [-runs 3] [-duration 3s] [-out docs]
//
// The same executable also runs the baselines in a child process (the bare
// HTTPS server, the minimal pipeline and the minimal forwarder).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "chronoshub-bench:", err)
		os.Exit(1)
	}
}

// run dispatches to the harness or to one of its child modes.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case childBaseline:
			return runBaselineChild(ctx, args[1:], stdin, stdout)
		}
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.From != "" {
		return reportFrom(cfg.From, cfg.Out)
	}
	return runHarness(ctx, cfg, stderr)
}
