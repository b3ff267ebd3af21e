package natsconn

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// committer is the embedded store's group commit: it makes what JetStream
// wrote to the operating system durable with one round of fsyncs shared by
// every caller waiting at the time.
//
// It relies on how the embedded server writes a stream with one replica:
// each message is written (write(2)) to the stream's last message block,
// Dir/jetstream/<account>/streams/<stream>/msgs/<n>.blk, before the
// server acknowledges it; a full block is followed by a new file. Block
// files are only appended to or replaced (a compaction renames a new file
// over one). So the data written since the last commit is in the block
// files whose size, time or inode changed since, or that are new; a new one
// is also a directory entry, made durable by an fsync of the directory.
// fsync flushes a file's dirty pages whichever descriptor wrote them, so the
// server's own descriptors need not be reached.
type committer struct {
	root  string             // Dir/jetstream
	round func() error       // one round of fsyncs: syncAll, or a test's
	fsync func(string) error // fsyncPath, or a test's

	mu        sync.Mutex
	requested uint64        // tickets handed out
	completed uint64        // every ticket up to this one is committed
	running   bool          // a caller is committing
	done      chan struct{} // closed when the running commit ends
	err       error         // the first fsync error; sticky (see Commit)

	// started and last belong to the committing caller. started says the
	// whole store was synced once; last is, per msgs directory, the block
	// files the last round saw.
	started bool
	last    map[string]blockSet
}

func newCommitter(root string) *committer {
	c := &committer{root: root, fsync: fsyncPath, done: make(chan struct{}), last: map[string]blockSet{}}
	c.round = c.syncAll
	return c
}

// commit waits until a round of fsyncs that started after the call has
// ended, running it itself when none is under way, and returns its error.
//
// An fsync error is permanent: after one, the kernel may have dropped the
// pages it could not write, so a later successful fsync proves nothing about
// them. Every later commit returns the same error until the process
// restarts and the server recovers the store from what is on disk.
func (c *committer) commit(ctx context.Context) error {
	c.mu.Lock()
	c.requested++
	ticket := c.requested
	for c.completed < ticket && c.err == nil {
		if !c.running {
			// Lead a round covering every ticket handed out so far: their
			// writes ended before their tickets were taken.
			c.running = true
			target := c.requested
			c.mu.Unlock()
			err := c.round()
			c.mu.Lock()
			c.running = false
			c.completed = target
			if err != nil && c.err == nil {
				c.err = err
			}
			close(c.done)
			c.done = make(chan struct{})
			continue
		}
		done := c.done
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("wait for fsync: %w", ctx.Err())
		}
		c.mu.Lock()
	}
	err := c.err
	c.mu.Unlock()
	return err
}

// syncAll fsyncs, in every stream's msgs directory, the blocks written
// since the previous round, and the directory itself when it gained a
// block. The first round, and the first round to see a stream,
// fsync every file and directory of it (its configuration, its consumers)
// up to root's parent, which JetStream wrote without fsync.
func (c *committer) syncAll() error {
	if !c.started {
		if err := c.syncTree(c.root); err != nil {
			return err
		}
		if err := c.fsync(filepath.Dir(c.root)); err != nil {
			return err
		}
		c.started = true
	}
	dirs, err := filepath.Glob(filepath.Join(c.root, "*", "streams", "*", "msgs"))
	if err != nil {
		return fmt.Errorf("list streams in %s: %w", c.root, err)
	}
	if len(dirs) == 0 {
		// The event log's stream exists before anything is committed: the
		// server lays its files out otherwise than this code expects, and
		// committing nothing would be a silent loss of durability.
		return fmt.Errorf("group commit: no stream's message blocks under %s", c.root)
	}
	for _, dir := range dirs {
		if _, seen := c.last[dir]; !seen {
			streamDir := filepath.Dir(dir)
			if err := c.syncTree(streamDir); err != nil {
				return err
			}
			for d := filepath.Dir(streamDir); d != c.root && strings.HasPrefix(d, c.root); d = filepath.Dir(d) {
				if err := c.fsync(d); err != nil {
					return err
				}
			}
			if err := c.fsync(c.root); err != nil {
				return err
			}
			continue
		}
		if err := c.syncBlocks(dir); err != nil {
			return err
		}
	}
	return nil
}

// syncTree fsyncs every file and directory under top, and records the
// blocks of each msgs directory in it.
func (c *committer) syncTree(top string) error {
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by the server meanwhile
		}
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		if d.IsDir() && d.Name() == "msgs" {
			c.last[path] = blockSet{}
		} else if isBlock(d.Name()) {
			if info, err := d.Info(); err == nil {
				c.last[filepath.Dir(path)] = c.last[filepath.Dir(path)].with(d.Name(), info)
			}
		}
		return c.fsync(path)
	})
	if err != nil {
		return fmt.Errorf("fsync store %s: %w", top, err)
	}
	return nil
}

// blockSet is what one round saw of a msgs directory's blocks.
type blockSet struct {
	files map[string]fs.FileInfo // by file name
}

func (b blockSet) with(name string, info fs.FileInfo) blockSet {
	if b.files == nil {
		b.files = map[string]fs.FileInfo{}
	}
	b.files[name] = info
	return b
}

// syncBlocks fsyncs the blocks of one msgs directory that may hold data
// written since the previous round: those whose file is new (by name or
// inode: a new block, or a compaction that wrote a new file and renamed it
// over the old one) or changed size or modification time. The server only
// appends to a block file (messages, tombstones) or replaces it, so a write
// before this round began shows in one of them. The directory is fsynced
// when it has a new file.
func (c *committer) syncBlocks(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		delete(c.last, dir) // the stream was deleted
		return nil
	}
	if err != nil {
		return fmt.Errorf("list blocks in %s: %w", dir, err)
	}
	prev := c.last[dir]
	var next blockSet
	newEntry := false
	for _, e := range entries {
		if !isBlock(e.Name()) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("block %s: %w", filepath.Join(dir, e.Name()), err)
		}
		next = next.with(e.Name(), info)
		old, known := prev.files[e.Name()]
		isNew := !known || !os.SameFile(old, info)
		if !isNew && old.Size() == info.Size() && old.ModTime().Equal(info.ModTime()) {
			// Unwritten since the previous round, which fsynced it (or it
			// was not written since the one before). An fsync of a clean
			// file is not free: on ext4 it still flushes the disk's cache.
			continue
		}
		newEntry = newEntry || isNew
		if err := c.fsync(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if newEntry {
		if err := c.fsync(dir); err != nil {
			return err
		}
	}
	c.last[dir] = next
	return nil
}

// isBlock reports whether name is a message block's file, "<n>.blk".
func isBlock(name string) bool {
	s, ok := strings.CutSuffix(name, ".blk")
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// fsyncPath fsyncs a file or a directory. One that no longer exists was
// removed by the server (a purge, a compaction, a deleted stream): there is
// nothing of it left to make durable.
func fsyncPath(name string) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	return nil
}
