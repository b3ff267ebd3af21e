package sidecar

import (
	"context"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/metrics"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

// declare creates the configured subscriptions and builds a pusher for each
// push one.
func (s *Sidecar) declare(ctx context.Context) error {
	cfg := s.cfg
	decls := make([]eventlog.Declaration, len(cfg.Subscriptions))
	for i, sub := range cfg.Subscriptions {
		decls[i] = eventlog.Declaration{Name: sub.Name, Types: sub.EventTypes, Push: sub.Push != nil}
	}
	if len(decls) > 0 || cfg.StrictSubscriptions {
		if err := s.startRetry(ctx, "declared subscriptions", func() error {
			return s.log.Declare(ctx, decls, cfg.StrictSubscriptions)
		}); err != nil {
			return err
		}
	}
	s.pushers = map[string]*push.Pusher{}
	var observer *metrics.Push
	for _, sub := range cfg.Subscriptions {
		if sub.Push == nil {
			continue
		}
		if observer == nil {
			observer = metrics.NewPush(s.reg)
		}
		p, err := push.New(s.log, *sub.Push, push.Options{
			MaxAttempts: cfg.MaxAttempts,
			AckWait:     cfg.AckWait,
			Tracer:      s.tracer,
			Logger:      s.logger,
			Observer:    observer,
		})
		if err != nil {
			return err
		}
		s.pushers[sub.Name] = p
	}
	return nil
}

// PushState returns the delivery state of a push subscription, and whether
// it is one.
func (s *Sidecar) PushState(name string) (push.State, bool) {
	p, ok := s.pushers[name]
	if !ok {
		return push.State{}, false
	}
	return p.State(), true
}

// pushStateProto is PushState for the API.
func (s *Sidecar) pushStateProto(name string) *sidecarv1.PushState {
	st, ok := s.PushState(name)
	if !ok {
		return nil
	}
	return &sidecarv1.PushState{
		Url: st.URL, Paused: st.Paused, InFlight: uint32(max(st.InFlight, 0)),
		LastStatus: int32(st.LastStatus), LastError: st.LastError,
	}
}

// runPushers starts every pusher under the supervisor.
func (s *Sidecar) runPushers(ctx context.Context) {
	for name, p := range s.pushers {
		s.sup.Go(ctx, "push "+name, p.Run)
	}
}

// waitPushers waits, after the log quiesced, until the push subscriptions
// hold no event (their POSTs in flight ended and were settled), or ctx ends.
func (s *Sidecar) waitPushers(ctx context.Context) error {
	if len(s.pushers) == 0 {
		return nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		holding := s.log.Holding()
		n := 0
		for name := range s.pushers {
			n += holding[name]
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
