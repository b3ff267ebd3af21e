package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
)

// waitUntil polls cond until it holds, failing after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSupervisorRestartsAndReports(t *testing.T) {
	t.Parallel()
	s := newSupervisor(slog.New(slog.DiscardHandler), time.Now)
	s.retryFirst = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); s.Wait() }()

	var runs atomic.Int32
	release := make(chan struct{})
	s.Go(ctx, "forwarder", func(ctx context.Context) error {
		if runs.Add(1) <= 2 {
			return errors.New("consumer deleted")
		}
		<-release // the third run works until released
		<-ctx.Done()
		return nil
	})
	waitUntil(t, "third run", func() bool { return runs.Load() == 3 })
	if err := s.check(); err != nil {
		t.Fatalf("check while the task runs again = %v, want nil", err)
	}
	close(release)
	select {
	case err := <-s.Fatal():
		t.Fatalf("Fatal = %v after two failures", err)
	default:
	}
}

func TestSupervisorGivesUp(t *testing.T) {
	t.Parallel()
	s := newSupervisor(slog.New(slog.DiscardHandler), time.Now)
	s.retryFirst = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); s.Wait() }()
	var runs atomic.Int32
	s.Go(ctx, "forwarder", func(context.Context) error {
		runs.Add(1)
		return errors.New("consumer deleted")
	})
	select {
	case err := <-s.Fatal():
		if !strings.Contains(err.Error(), "forwarder") || !strings.Contains(err.Error(), "consumer deleted") {
			t.Fatalf("Fatal = %v, want it to name the task and its error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Fatal after repeated failures")
	}
	if got := runs.Load(); got != taskMaxFailures {
		t.Fatalf("runs = %d, want %d", got, taskMaxFailures)
	}
	if err := s.check(); err == nil || !strings.Contains(err.Error(), "forwarder") {
		t.Fatalf("check after giving up = %v, want the failing task", err)
	}
}

func TestSupervisorReportsWhileDown(t *testing.T) {
	t.Parallel()
	s := newSupervisor(slog.New(slog.DiscardHandler), time.Now)
	s.retryFirst = time.Hour // stays down between attempts
	ctx, cancel := context.WithCancel(t.Context())
	s.Go(ctx, "watcher", func(context.Context) error { return errors.New("boom") })
	waitUntil(t, "failure reported", func() bool { return s.check() != nil })
	cancel()
	s.Wait()
}

// TestSupervisorMetrics checks that the task metrics follow a task that
// fails and waits to be restarted.
func TestSupervisorMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := newSupervisor(slog.New(slog.DiscardHandler), time.Now)
	s.observe = metrics.NewTasks(reg)
	s.retryFirst = time.Hour // stays down between attempts
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); s.Wait() }()
	s.Go(ctx, "watcher", func(context.Context) error { return errors.New("boom") })
	s.Go(ctx, "forwarder", func(ctx context.Context) error { <-ctx.Done(); return nil })
	want := `
# HELP chronoshub_sidecar_background_task_up 1 while a background task (async forwarder, credential watcher, …) runs, 0 while it waits to be restarted after a failure.
# TYPE chronoshub_sidecar_background_task_up gauge
chronoshub_sidecar_background_task_up{task="forwarder"} 1
chronoshub_sidecar_background_task_up{task="watcher"} 0
# HELP chronoshub_sidecar_background_task_failures_total Failures of a background task (each is followed by a restart, or after too many by the sidecar's exit).
# TYPE chronoshub_sidecar_background_task_failures_total counter
chronoshub_sidecar_background_task_failures_total{task="forwarder"} 0
chronoshub_sidecar_background_task_failures_total{task="watcher"} 1
`
	var err error
	waitUntil(t, "task metrics", func() bool {
		err = testutil.GatherAndCompare(reg, strings.NewReader(want))
		return err == nil
	})
}
