package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// errExitStatus means the subcommand already reported its failure and the
// program should only exit with status 1 (trigger, when the webhook was
// refused).
var errExitStatus = errors.New("exit status 1")

// exitCodeError means the program should exit with this status, having
// reported nothing more (dev -- app: the app's exit status).
type exitCodeError int

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

const usage = `chronoshub-sidecar: integrate an app with ChronosHub.

Usage:
  chronoshub-sidecar serve   [flags]   the sidecar (configured by flags and CHRONOSHUB_… variables)
  chronoshub-sidecar dev     [flags]   the sidecar plus an in-process ChronosHub emulator; no configuration needed
  chronoshub-sidecar emulate [flags]   a standalone ChronosHub emulator for tests
  chronoshub-sidecar trigger [flags]   send one signed webhook to a URL and print the answer

Run "chronoshub-sidecar <subcommand> --help" for the flags of each.
`

// run is the program: it parses args, runs one subcommand until ctx is done
// (SIGINT or SIGTERM) and returns its error. It owns every listener and
// goroutine it starts.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing subcommand")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return runDev(ctx, rest, getenv, stdout, stderr)
	case "emulate":
		return runEmulate(ctx, rest, getenv, stdout, stderr)
	case "trigger":
		return runTrigger(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", cmd)
}

// newLogger returns the program's logger: JSON lines on w.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
