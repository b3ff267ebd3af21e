package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// mark is what the log last knew it held, kept in a small file beside the
// store so that events lost from the store's own files can be noticed.
// Events only leave the events stream from its head (retention), so its last
// sequence never goes back and no interior message is ever deleted.
type mark struct {
	LastSeq uint64 `json:"last_seq"`
	Deleted uint64 `json:"deleted"`
}

// Verify compares the events stream with the mark in path and returns how
// many events are gone that the mark says were stored: a tail cut off or
// messages JetStream dropped while repairing damaged files at start (it
// repairs silently). It then writes a new mark, so that a loss is reported
// once. A missing mark (a new store) is no loss.
func (l *Log) Verify(ctx context.Context, path string) (lost uint64, err error) {
	info, err := l.events.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("verify event log: %w", err)
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("verify event log: %w", err)
	default:
		var m mark
		if err := json.Unmarshal(b, &m); err != nil {
			return 0, fmt.Errorf("verify event log: mark %s: %w", path, err)
		}
		if info.State.LastSeq < m.LastSeq {
			lost += m.LastSeq - info.State.LastSeq
		}
		if info.State.NumDeleted > int(m.Deleted) {
			lost += uint64(info.State.NumDeleted) - m.Deleted
		}
	}
	return lost, l.Mark(ctx, path)
}

// Mark records in path what the events stream holds now, durably (written
// to a temporary file, fsynced, renamed), after Options.Commit made those
// events durable. Call it periodically and at shutdown; Verify compares
// against it at start.
func (l *Log) Mark(ctx context.Context, path string) error {
	info, err := l.events.Info(ctx)
	if err != nil {
		return fmt.Errorf("mark event log: %w", err)
	}
	if l.opts.Commit != nil {
		if err := l.opts.Commit(ctx); err != nil {
			return fmt.Errorf("mark event log: %w", err)
		}
	}
	b, _ := json.Marshal(mark{LastSeq: info.State.LastSeq, Deleted: uint64(info.State.NumDeleted)})
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mark-*")
	if err != nil {
		return fmt.Errorf("mark event log: %w", err)
	}
	_, err = tmp.Write(b)
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("mark event log: %w", err)
	}
	return nil
}
