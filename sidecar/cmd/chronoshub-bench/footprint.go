package main

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"
)

// benchFootprint measures startup time and idle RSS on an empty store
// (startup and recovery against the log's size are in the scale section).
func (h *harness) benchFootprint(ctx context.Context) error {
	for round := range h.cfg.Runs {
		p, err := h.startSidecar(ctx, sidecarEnv{Name: "idle", Sync: "1s"})
		if err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
		rss, err := p.rss()
		p.close()
		if err != nil {
			return err
		}
		h.res.Startup = append(h.res.Startup, ms(p.Startup))
		h.res.IdleRSS = append(h.res.IdleRSS, float64(rss))
		h.logf("round %d  startup %.0f ms  idle RSS %.1f MiB", round+1, ms(p.Startup), float64(rss)/(1<<20))
	}
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
