package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/tracing"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	// Every problem at once: the OTEL_* variables are checked with the
	// CHRONOSHUB_ ones, and a misspelt CHRONOSHUB_ variable is shown with
	// the problems it may explain.
	if err := errors.Join(err, tracing.CheckEnv(getenv)); err != nil {
		return config.WithWarnings(err, config.UnknownVariables(os.Environ()))
	}
	logger := newFormatLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	routeGRPCLogs(ctx, logger)
	warnUnknownVariables(logger, os.Environ())
	s, err := startSidecar(ctx, cfg, logger, getenv)
	if err == nil {
		err = s.Run(ctx)
	}
	if err != nil {
		// Once the log has started, the error that stops the process is a
		// log line too, in the log's format (one JSON object in JSON mode).
		logger.Error("stopped", "err", err)
		return reportedError{err}
	}
	return nil
}

// startSidecar logs the version and the configuration and starts the
// sidecar with a registry that carries the build_info metric.
// getenv reads the OpenTelemetry variables (nil: no tracing).
func startSidecar(ctx context.Context, cfg *config.Config, logger *slog.Logger, getenv func(string) string) (*sidecar.Sidecar, error) {
	v := currentVersion()
	logger.Info("starting", append(v.LogAttrs(), "config", cfg)...)
	reg := prometheus.NewRegistry()
	if err := metrics.RegisterBuildInfo(reg, v.Version, v.Revision, v.GoVersion); err != nil {
		return nil, err
	}
	return sidecar.Start(ctx, cfg, sidecar.Options{Logger: logger, Registry: reg, Getenv: getenv})
}
