package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Restart policy of background tasks.
const (
	// taskMaxFailures is how many times in a row a background task may fail
	// before the sidecar gives up and stops with an error, so that the
	// orchestrator restarts the process.
	taskMaxFailures = 5
	// taskStableAfter is how long a task must run before its failure count
	// starts again from zero.
	taskStableAfter = time.Minute
	taskRetryFirst  = 500 * time.Millisecond
	taskRetryMax    = 15 * time.Second
)

// supervisor runs the sidecar's background tasks (the async forwarder, the
// credential watcher, the mark writer, the health follower). A task that
// returns an error while the sidecar runs is logged as an error, reported
// by readiness and gRPC health, and restarted after a growing delay; one
// that fails taskMaxFailures times in a row ends the sidecar with an error,
// so that work such as forwarding async events never stops silently.
type supervisor struct {
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	failing map[string]error // task name → its last error, while it is down
	fatal   chan error       // receives the error of a task that gave up
	wg      sync.WaitGroup
	// retryFirst is the first restart delay (tests shorten it).
	retryFirst time.Duration
	// observe, when set, is told when a task starts running (up) and when
	// it fails (down), for the metrics.
	observe taskObserver
}

// taskObserver is told the state of the background tasks.
type taskObserver interface {
	Up(task string, up bool)
	Failed(task string)
}

func newSupervisor(logger *slog.Logger, now func() time.Time) *supervisor {
	return &supervisor{
		logger:     logger,
		now:        now,
		failing:    map[string]error{},
		fatal:      make(chan error, 1),
		retryFirst: taskRetryFirst,
	}
}

// Go runs task until ctx ends, restarting it when it fails. A task returns
// nil when ctx ends; any other return while ctx is alive is a failure.
func (s *supervisor) Go(ctx context.Context, name string, task func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		failures := 0
		wait := s.retryFirst
		for {
			started := s.now()
			if s.observe != nil {
				s.observe.Up(name, true)
			}
			err := task(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("stopped without an error")
			}
			if s.now().Sub(started) >= taskStableAfter {
				failures, wait = 0, s.retryFirst
			}
			failures++
			s.setFailing(name, err)
			if s.observe != nil {
				s.observe.Failed(name)
			}
			if failures >= taskMaxFailures {
				s.logger.Error("background task failed too often; stopping the sidecar", "task", name, "failures", failures, "err", err)
				select {
				case s.fatal <- fmt.Errorf("background task %s failed %d times in a row: %w", name, failures, err):
				default:
				}
				return
			}
			s.logger.Error("background task failed; restarting it", "task", name, "err", err, "restart_in", wait.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, taskRetryMax)
			s.setFailing(name, nil)
		}
	}()
}

func (s *supervisor) setFailing(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.failing, name)
	} else {
		s.failing[name] = err
	}
}

// check returns an error naming the tasks that are down.
func (s *supervisor) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, err := range s.failing {
		errs = append(errs, fmt.Errorf("background task %s failed: %w", name, err))
	}
	return errors.Join(errs...)
}

// Fatal receives the error of a task that gave up.
func (s *supervisor) Fatal() <-chan error { return s.fatal }

// Wait waits for every task to return (after their context ends).
func (s *supervisor) Wait() { s.wg.Wait() }
