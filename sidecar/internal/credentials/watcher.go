package credentials

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Defaults for the zero values of [WatcherOptions].
const (
	DefaultInterval      = 2 * time.Second
	DefaultRotationGrace = time.Hour
)

// WatcherOptions configures a [Watcher]. The zero value is usable.
type WatcherOptions struct {
	// Interval is how often Run polls the files. Zero means
	// [DefaultInterval].
	Interval time.Duration
	// RotationGrace is how long the values a file held before a change stay
	// accepted by Source.Values and Source.Secrets of a Source from
	// NewRotatingFile, so that webhooks signed
	// with the previous secret still verify during a rotation. Zero means
	// [DefaultRotationGrace].
	RotationGrace time.Duration
	// Now tells the time for rotation graces. Nil means time.Now.
	Now func() time.Time
	// Logger receives an Info line for every reload and for the end of a
	// rotation grace, and a Warn line for a failed reload. Lines name the
	// credential and its file, never its content. Nil discards them.
	Logger *slog.Logger
	// OnReload, when set, is called with the credential's name ("api_key",
	// "tls_certificate", ...) and "ok" when a changed file was applied, or
	// "error" when a reload failed and the last good value was kept. A
	// failure is reported once, not on every poll, until it changes or a read
	// succeeds again. It is called from Check and must not block.
	OnReload func(name, result string)
}

// Watcher polls the files of the Sources and Certificates added to it and
// applies their changes. It reads every file on each poll and compares a hash
// of the bytes, which catches Kubernetes' symlink swaps and in-place writes
// alike without relying on file-system notifications. It is safe for
// concurrent use.
type Watcher struct {
	interval time.Duration
	grace    time.Duration
	now      func() time.Time
	log      *slog.Logger
	onReload func(name, result string)

	mu      sync.Mutex // serialises Check and guards the lists
	sources []*Source
	certs   []*Certificate
}

// NewWatcher returns a Watcher with nothing to watch yet.
func NewWatcher(opts WatcherOptions) *Watcher {
	w := &Watcher{
		interval: opts.Interval,
		grace:    opts.RotationGrace,
		now:      opts.Now,
		log:      opts.Logger,
		onReload: opts.OnReload,
	}
	if w.interval <= 0 {
		w.interval = DefaultInterval
	}
	if w.grace <= 0 {
		w.grace = DefaultRotationGrace
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.onReload == nil {
		w.onReload = func(string, string) {}
	}
	w.log = w.log.With("component", "credentials")
	return w
}

// Add registers sources to be polled. Nil sources, sources from a fixed
// value (which never change) and sources already added are ignored. Add may
// be called while Run is running.
func (w *Watcher) Add(sources ...*Source) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range sources {
		if s != nil && s.path != "" && !slices.Contains(w.sources, s) {
			w.sources = append(w.sources, s)
		}
	}
}

// AddCertificate registers c to be polled. A nil c or one already added is
// ignored. It may be called while Run is running.
func (w *Watcher) AddCertificate(c *Certificate) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c != nil && !slices.Contains(w.certs, c) {
		w.certs = append(w.certs, c)
	}
}

// Run polls every Interval until ctx is done, then returns nil. The first
// poll is one Interval after Run starts: NewFile and NewCertificate have just
// read the files.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.Check()
		}
	}
}

// Check polls every registered file once, synchronously: it applies changed
// content, reports failures, and drops earlier values whose rotation grace
// has ended.
func (w *Watcher) Check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	for _, s := range w.sources {
		res := s.poll(now, w.grace)
		w.report(res, s.name, slog.String("path", s.path))
		switch {
		case res.changed && res.retained:
			w.log.Info("credential reloaded", "credential", s.name, "path", s.path,
				"values", len(s.snap.Load().values), "previous_accepted_until", now.Add(w.grace))
		case res.changed:
			w.log.Info("credential reloaded", "credential", s.name, "path", s.path,
				"values", len(s.snap.Load().values))
		}
		if res.expired > 0 {
			w.log.Info("rotation grace ended: earlier values no longer accepted",
				"credential", s.name, "path", s.path, "dropped", res.expired)
		}
	}
	for _, c := range w.certs {
		res := c.poll()
		w.report(res, certificateName, slog.String("cert_file", c.certFile), slog.String("key_file", c.keyFile))
		if res.changed {
			w.log.Info("credential reloaded", "credential", certificateName,
				"cert_file", c.certFile, "key_file", c.keyFile, "not_after", c.NotAfter())
		}
	}
}

// report logs a poll's failure or recovery and tells OnReload.
func (w *Watcher) report(res pollResult, name string, files ...any) {
	switch {
	case res.err != nil:
		w.log.Warn("credential reload failed; keeping the last good value",
			append([]any{"credential", name, "error", res.err}, files...)...)
		w.onReload(name, "error")
	case res.changed:
		w.onReload(name, "ok")
	case res.recovered:
		w.log.Info("credential file readable again, content unchanged",
			append([]any{"credential", name}, files...)...)
	}
}
