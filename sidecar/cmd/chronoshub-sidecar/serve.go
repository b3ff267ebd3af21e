package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

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
	// SIGHUP re-reads the credential and certificate files at once (they
	// are polled anyway); nothing else is reloaded, and the process keeps
	// running. Without this, SIGHUP's default would kill serve undrained.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s, err := startSidecar(ctx, cfg, logger, getenv)
	if err == nil {
		err = runReloading(ctx, s, hup, logger)
	}
	if err != nil {
		// Once the log has started, the error that stops the process is a
		// log line too, in the log's format (one JSON object in JSON mode).
		logger.Error("stopped", "err", err)
		return reportedError{err}
	}
	return nil
}

// runReloading runs s until ctx is done, reloading its credentials on each
// value of hup.
func runReloading(ctx context.Context, s *sidecar.Sidecar, hup <-chan os.Signal, logger *slog.Logger) error {
	reloadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-reloadCtx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: re-reading the credential and certificate files; other settings need a restart")
				s.ReloadCredentials()
			}
		}
	})
	defer wg.Wait()
	defer stop()
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
