package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newFormatLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	warnUnknownVariables(logger, os.Environ())
	s, err := startSidecar(ctx, cfg, logger, getenv)
	if err != nil {
		return err
	}
	return s.Run(ctx)
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
