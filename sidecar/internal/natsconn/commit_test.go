package natsconn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
)

// TestCommitCoversEarlierWrites checks the promise callers rely on: when
// commit returns, a round that started after the caller's write has ended.
// Each caller "writes" by taking the next number; a round makes durable
// every number taken before it started.
func TestCommitCoversEarlierWrites(t *testing.T) {
	t.Parallel()
	var written, durable atomic.Uint64
	var rounds atomic.Int64
	c := newCommitter(t.TempDir())
	c.round = func() error {
		upTo := written.Load()
		rounds.Add(1)
		time.Sleep(100 * time.Microsecond) // an fsync's worth of time, for rounds to overlap callers
		durable.Store(upTo)
		return nil
	}
	const callers, writes = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			for range writes {
				w := written.Add(1)
				if err := c.commit(t.Context()); err != nil {
					errs <- err
					return
				}
				if d := durable.Load(); d < w {
					errs <- errors.New("commit returned before the write was covered")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d commits in %d rounds", callers*writes, rounds.Load())
}

// TestCommitShares checks that callers arriving during a round share the
// next one: 1 round for the first caller, 1 for the 20 that came meanwhile.
func TestCommitShares(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var rounds atomic.Int64
	c := newCommitter(t.TempDir())
	c.round = func() error {
		if rounds.Add(1) == 1 {
			<-release
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.commit(t.Context()) })
	waitFor(t, c, 1)
	const more = 20
	for range more {
		wg.Go(func() { _ = c.commit(t.Context()) })
	}
	waitFor(t, c, 1+more)
	close(release)
	wg.Wait()
	if got := rounds.Load(); got != 2 {
		t.Errorf("%d commits took %d rounds, want 2", 1+more, got)
	}
}

// waitFor waits until n commits were asked for.
func waitFor(t *testing.T, c *committer, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := c.requested
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d commits asked for after 10 s, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCommitErrorSticks checks that after a failed fsync every commit
// fails, though later rounds would succeed: the failed pages may be gone.
func TestCommitErrorSticks(t *testing.T) {
	t.Parallel()
	var rounds atomic.Int64
	c := newCommitter(t.TempDir())
	c.round = func() error {
		if rounds.Add(1) == 2 {
			return errors.New("fsync: input/output error")
		}
		return nil
	}
	for i, wantErr := range []bool{false, true, true, true} {
		if err := c.commit(t.Context()); (err != nil) != wantErr {
			t.Fatalf("commit %d = %v, want error %v", i+1, err, wantErr)
		}
	}
}

// TestCommitContext checks that a caller stops waiting for a round another
// caller runs when its context ends.
func TestCommitContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := newCommitter(t.TempDir())
	c.round = func() error { <-release; return nil }
	done := make(chan error, 1)
	go func() { done <- c.commit(context.Background()) }()
	waitFor(t, c, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.commit(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("commit with a cancelled context = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("first commit = %v", err)
	}
}

// TestCommitSelectsFiles checks which files each round fsyncs in a store
// laid out as JetStream lays it out: everything on the first round; then
// the blocks written since (appended to, new, or replaced under the same
// name), the directory when it has a new block, and the whole of a new
// stream.
func TestCommitSelectsFiles(t *testing.T) {
	t.Parallel()
	top := t.TempDir()
	root := filepath.Join(top, "jetstream")
	msgs := filepath.Join(root, "$G", "streams", "EVENTS", "msgs")
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "$G", "streams", "EVENTS", "meta.inf"), "{}")
	write(filepath.Join(msgs, "1.blk"), "a")
	write(filepath.Join(msgs, "index.db"), "i")

	c := newCommitter(root)
	var synced []string
	c.fsync = func(name string) error {
		rel, err := filepath.Rel(top, name)
		if err != nil {
			return err
		}
		synced = append(synced, filepath.ToSlash(rel))
		return nil
	}
	round := func(name string, want ...string) {
		t.Helper()
		synced = nil
		if err := c.commit(t.Context()); err != nil {
			t.Fatalf("%s: commit = %v", name, err)
		}
		slices.Sort(synced)
		synced = slices.Compact(synced)
		slices.Sort(want)
		if diff := cmp.Diff(want, synced); diff != "" {
			t.Errorf("%s: fsynced (-want +got):\n%s", name, diff)
		}
	}
	const s = "jetstream/$G/streams/EVENTS"
	round("first", ".", "jetstream", "jetstream/$G", "jetstream/$G/streams", s, s+"/meta.inf",
		s+"/msgs", s+"/msgs/1.blk", s+"/msgs/index.db")

	write(filepath.Join(msgs, "1.blk"), "b")
	round("append", s+"/msgs/1.blk")

	write(filepath.Join(msgs, "1.blk"), "c")
	write(filepath.Join(msgs, "2.blk"), "d")
	round("new block", s+"/msgs", s+"/msgs/1.blk", s+"/msgs/2.blk")

	round("nothing new")

	// A compaction writes a new file and renames it over the block, here
	// with the same size and time.
	info, err := os.Stat(filepath.Join(msgs, "1.blk"))
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(msgs, "1.blk.tmp"), "xyz") // the size of "abc"
	if err := os.Chtimes(filepath.Join(msgs, "1.blk.tmp"), info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(msgs, "1.blk.tmp"), filepath.Join(msgs, "1.blk")); err != nil {
		t.Fatal(err)
	}
	round("replaced block", s+"/msgs", s+"/msgs/1.blk")

	// The server writes a tombstone into an older block.
	write(filepath.Join(msgs, "1.blk"), "t")
	round("older block written", s+"/msgs/1.blk")

	const kv = "jetstream/$G/streams/KV_B"
	write(filepath.Join(top, kv, "meta.inf"), "{}")
	write(filepath.Join(top, kv, "msgs", "1.blk"), "f")
	round("new stream", "jetstream", "jetstream/$G", "jetstream/$G/streams", kv, kv+"/meta.inf",
		kv+"/msgs", kv+"/msgs/1.blk")

	if err := os.RemoveAll(filepath.Join(top, kv)); err != nil {
		t.Fatal(err)
	}
	round("deleted stream")
}

// TestCommitFindsNoStream checks that a store without the layout group
// commit expects fails the commit instead of committing nothing.
func TestCommitFindsNoStream(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "jetstream")
	if err := os.MkdirAll(filepath.Join(root, "$G", "streams", "EVENTS"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := newCommitter(root).commit(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no stream's message blocks") {
		t.Errorf("commit = %v, want an error naming the missing blocks", err)
	}
}

// TestEmbeddedCommit checks group commit on the real server: the blocks it
// fsyncs are the ones the server writes the stream's messages to, so a
// change of JetStream's layout fails here rather than making commits
// silently cover nothing.
func TestEmbeddedCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	emb, err := StartEmbedded(EmbeddedOptions{Dir: dir, Sync: Sync{Always: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	ctx := t.Context()
	if _, err := emb.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	var synced []string
	var mu sync.Mutex
	emb.commit.fsync = func(name string) error {
		mu.Lock()
		synced = append(synced, name)
		mu.Unlock()
		return fsyncPath(name)
	}
	for i := range 3 {
		if _, err := emb.JetStream().Publish(ctx, "events.x", []byte("payload")); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		synced = nil
		mu.Unlock()
		if err := emb.Commit(ctx); err != nil {
			t.Fatalf("Commit %d = %v", i+1, err)
		}
		mu.Lock()
		got := slices.Clone(synced)
		mu.Unlock()
		block := filepath.Join(dir, "jetstream", "$G", "streams", "EVENTS", "msgs", "1.blk")
		if !slices.Contains(got, block) {
			t.Fatalf("Commit %d fsynced %q, not the block the message is in (%s)", i+1, got, block)
		}
		if info, err := os.Stat(block); err != nil || info.Size() == 0 {
			t.Fatalf("block %s after a publish: %v, %v", block, info, err)
		}
	}

	plain, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Commit(ctx); err != nil {
		t.Errorf("Commit without Sync.Always = %v, want nil", err)
	}
}
