package main

import (
	"context"
	"io"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel)
	logger.Info("starting", "config", cfg)
	s, err := startSidecar(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return s.serve(ctx)
}
