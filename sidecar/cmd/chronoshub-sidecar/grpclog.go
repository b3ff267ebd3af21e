package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
)

// grpcLogs is the process's grpclog logger (grpclog.SetLoggerV2, which is
// process-global, so main installs it once): gRPC's and grpc-gateway's own
// messages, such as grpc-gateway's "Failed to parse Content-Type" with the
// client's header value, go through the subcommand's slog logger as log
// lines in its format, instead of grpclog's default plain text on stderr.
// Until a subcommand hands over its logger, they go to stderr as JSON lines.
// The levels keep grpclog's defaults quiet: its INFO and WARNING (not
// printed by default) become Debug, its ERROR (mostly a client's bad input
// or a dropped connection) Warn, and FATAL Error before the exit grpclog
// requires. It is safe for concurrent use.
type grpcLogs struct {
	logger atomic.Pointer[slog.Logger]
}

func newGRPCLogs() *grpcLogs {
	g := &grpcLogs{}
	g.use(newLogger(os.Stderr, slog.LevelInfo))
	return g
}

// use sends the messages to logger from now on.
func (g *grpcLogs) use(logger *slog.Logger) {
	g.logger.Store(logger.With("component", "grpc"))
}

func (g *grpcLogs) log(level slog.Level, msg string) {
	g.logger.Load().Log(context.Background(), level, strings.TrimSpace(msg))
}

func (g *grpcLogs) Info(args ...any)   { g.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (g *grpcLogs) Infoln(args ...any) { g.log(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g *grpcLogs) Infof(format string, args ...any) {
	g.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g *grpcLogs) Warning(args ...any)   { g.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (g *grpcLogs) Warningln(args ...any) { g.log(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g *grpcLogs) Warningf(format string, args ...any) {
	g.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g *grpcLogs) Error(args ...any)   { g.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (g *grpcLogs) Errorln(args ...any) { g.log(slog.LevelWarn, fmt.Sprintln(args...)) }
func (g *grpcLogs) Errorf(format string, args ...any) {
	g.log(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (g *grpcLogs) Fatal(args ...any)                 { g.fatal(fmt.Sprint(args...)) }
func (g *grpcLogs) Fatalln(args ...any)               { g.fatal(fmt.Sprintln(args...)) }
func (g *grpcLogs) Fatalf(format string, args ...any) { g.fatal(fmt.Sprintf(format, args...)) }

// V reports whether verbosity level l is logged: only 0, as grpclog's
// default without GRPC_GO_LOG_VERBOSITY_LEVEL.
func (g *grpcLogs) V(l int) bool { return l <= 0 }

func (g *grpcLogs) fatal(msg string) {
	g.log(slog.LevelError, msg)
	os.Exit(1)
}

// grpcLogsKey is the context key of the process's *grpcLogs.
type grpcLogsKey struct{}

// withGRPCLogs returns ctx carrying g, for run's subcommands to hand their
// logger to.
func withGRPCLogs(ctx context.Context, g *grpcLogs) context.Context {
	return context.WithValue(ctx, grpcLogsKey{}, g)
}

// routeGRPCLogs sends the process's gRPC messages to logger when ctx carries
// the process's grpcLogs (main's run); in tests that call run directly
// grpclog keeps its default.
func routeGRPCLogs(ctx context.Context, logger *slog.Logger) {
	if g, ok := ctx.Value(grpcLogsKey{}).(*grpcLogs); ok {
		g.use(logger)
	}
}
