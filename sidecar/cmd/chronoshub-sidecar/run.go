package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

// errExitStatus means the subcommand already reported its failure and the
// program should only exit with status 1 (trigger, when the webhook was
// refused).
var errExitStatus = errors.New("exit status 1")

// reportedError is an error that the subcommand has already written to its
// log (serve, once its JSON log has started): the program exits with status 1
// without printing it again, so that every line on stderr stays in the log's
// format. Its text is the error's, for callers of run.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

// exitCodeError means the program should exit with this status, having
// reported nothing more (dev -- app: the app's exit status).
type exitCodeError int

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

const usage = `chronoshub-sidecar: integrate an app with ChronosHub.

Usage:
  chronoshub-sidecar serve   [flags]   the sidecar (configured by flags and CHRONOSHUB_… variables)
  chronoshub-sidecar dev     [flags]   the sidecar plus an in-process ChronosHub emulator; no configuration needed
  chronoshub-sidecar client  <command> talk to a running sidecar's app-facing API: stream, ack, send, dead letters…
  chronoshub-sidecar emulate [flags]   a standalone ChronosHub emulator for tests
  chronoshub-sidecar trigger [flags]   send one signed webhook to a URL and print the answer
  chronoshub-sidecar version           print the version, the VCS revision and the Go version (also --version)

Run "chronoshub-sidecar <subcommand> --help" for the flags of each.
`

// run is the program: it parses args, runs one subcommand until ctx is done
// (SIGINT or SIGTERM) and returns its error. It owns every listener and
// goroutine it starts.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
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
	case "client":
		return runClient(ctx, rest, getenv, stdout, stderr)
	case "emulate":
		return runEmulate(ctx, rest, getenv, stdout, stderr)
	case "trigger":
		return runTrigger(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		return runVersion(rest, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", cmd)
}

// warnUnknownVariables logs a warning for every CHRONOSHUB_ variable of
// environ (os.Environ's form) that nothing reads, with the closest known
// name: a typo such as CHRONOSHUB_WEBHOOK_SECERT would otherwise be silently
// ignored. Values are never logged.
func warnUnknownVariables(logger *slog.Logger, environ []string) {
	for _, w := range config.UnknownVariables(environ) {
		attrs := []any{"variable", w.Name}
		if w.Suggestion != "" {
			attrs = append(attrs, "did_you_mean", w.Suggestion)
		}
		logger.Warn("unknown CHRONOSHUB_ variable ignored", attrs...)
	}
}

// newLogger returns the program's default logger: JSON lines on w.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return newFormatLogger(w, config.LogJSON, level)
}

// newFormatLogger returns the program's logger writing to w in format (JSON
// lines, or slog's key=value text) from level up. In both formats a
// time.Duration reads 20s, not 20000000000.
func newFormatLogger(w io.Writer, format config.LogFormat, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	if format == config.LogText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsAsText is a slog ReplaceAttr that writes a time.Duration with its
// String method, as 1m30s, in groups too.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
