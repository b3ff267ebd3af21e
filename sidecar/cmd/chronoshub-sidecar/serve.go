package main

import (
	"context"
	"io"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(args, getenv, stdout)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel)
	logger.Info("starting", "config", cfg)
	s, err := sidecar.Start(ctx, cfg, sidecar.Options{Logger: logger})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
