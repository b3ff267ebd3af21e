package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mount mounts a fault file system over a fresh backing directory and
// returns it with the backing directory; it is unmounted at the end of the
// test. A machine without a usable /dev/fuse fails the test.
func mount(t *testing.T) (*FS, string) {
	t.Helper()
	backing, mnt := filepath.Join(t.TempDir(), "backing"), filepath.Join(t.TempDir(), "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(backing, mnt)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() { f.Unmount() })
	return f, backing
}

func write(t *testing.T, file *os.File, off int64, s string) {
	t.Helper()
	if _, err := file.WriteAt([]byte(s), off); err != nil {
		t.Fatalf("WriteAt(%d): %v", off, err)
	}
}

func readBacking(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// do works in the mounted directory and returns what each file
		// of the backing directory must hold after the cut.
		do func(t *testing.T, dir string) map[string]string
	}{
		{"append after fsync is lost", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "a")
			write(t, f, 0, "synced")
			fsync(t, f)
			write(t, f, 6, " lost")
			return map[string]string{"a": "synced"}
		}},
		{"overwrite of synced bytes is undone", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "a")
			write(t, f, 0, "0123456789")
			fsync(t, f)
			write(t, f, 2, "xx")
			write(t, f, 3, "yyyyyyyyyyyy")
			return map[string]string{"a": "0123456789"}
		}},
		{"everything fsynced stays", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "a")
			write(t, f, 0, "one")
			fsync(t, f)
			write(t, f, 0, "two, longer")
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"a": "two, longer"}
		}},
		{"a new file never fsynced is empty", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "a")
			write(t, f, 0, "never synced")
			return map[string]string{"a": ""}
		}},
		{"truncation after fsync is undone", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "a")
			write(t, f, 0, "0123456789")
			fsync(t, f)
			if err := f.Truncate(3); err != nil {
				t.Fatal(err)
			}
			write(t, f, 5, "zz")
			return map[string]string{"a": "0123456789"}
		}},
		{"O_TRUNC after fsync is undone", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "a")
			write(t, f, 0, "kept")
			fsync(t, f)
			f.Close()
			g, err := os.OpenFile(filepath.Join(dir, "a"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			write(t, g, 0, "x")
			return map[string]string{"a": "kept"}
		}},
		{"a file present at the mount keeps what it had", func(t *testing.T, dir string) map[string]string {
			g, err := os.OpenFile(filepath.Join(dir, "old"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if _, err := g.Write([]byte(" and more")); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"old": "from before"}
		}},
		{"a renamed file keeps its synced data under its new name", func(t *testing.T, dir string) map[string]string {
			f := create(t, dir, "tmp1")
			write(t, f, 0, "synced")
			fsync(t, f)
			write(t, f, 6, "+lost")
			g := create(t, dir, "tmp2")
			write(t, g, 0, "never synced")
			if err := os.Rename(filepath.Join(dir, "tmp1"), filepath.Join(dir, "final1")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "tmp2"), filepath.Join(dir, "old")); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"final1": "synced", "old": ""}
		}},
		{"in a subdirectory", func(t *testing.T, dir string) map[string]string {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			f := create(t, dir, "sub/a")
			write(t, f, 0, "abc")
			fsync(t, f)
			write(t, f, 0, "XYZW")
			return map[string]string{"sub/a": "abc"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, backing := mount(t)
			if err := os.WriteFile(filepath.Join(backing, "old"), []byte("from before"), 0o644); err != nil {
				t.Fatal(err)
			}
			want := tt.do(t, f.Mountpoint())
			if _, err := f.Cut(func() { closeAll(t) }); err != nil {
				t.Fatalf("Cut: %v", err)
			}
			for name, w := range want {
				if got := readBacking(t, filepath.Join(backing, name)); got != w {
					t.Errorf("after the cut %s = %q, want %q", name, got, w)
				}
			}
		})
	}
}

// TestCutFreezes checks that nothing written after the cut began reaches
// the backing directory, and that an fsync after it fails.
func TestCutFreezes(t *testing.T) {
	t.Parallel()
	f, backing := mount(t)
	file := create(t, f.Mountpoint(), "a")
	write(t, file, 0, "synced")
	fsync(t, file)
	var writeErr, syncErr, createErr error
	if _, err := f.Cut(func() {
		_, writeErr = file.WriteAt([]byte("after"), 6)
		syncErr = file.Sync()
		_, createErr = os.Create(filepath.Join(f.Mountpoint(), "b"))
		file.Close()
	}); err != nil {
		t.Fatalf("Cut: %v", err)
	}
	for what, err := range map[string]error{"write": writeErr, "fsync": syncErr, "create": createErr} {
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s during the cut = %v, want EIO", what, err)
		}
	}
	if got := readBacking(t, filepath.Join(backing, "a")); got != "synced" {
		t.Errorf("after the cut a = %q, want %q", got, "synced")
	}
	if _, err := os.Stat(filepath.Join(backing, "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file created during the cut exists: %v", err)
	}
}

// TestUnmountKeepsEverything checks that without a cut nothing is undone,
// and that a second mount over the same backing directory sees it.
func TestUnmountKeepsEverything(t *testing.T) {
	t.Parallel()
	f, backing := mount(t)
	file := create(t, f.Mountpoint(), "a")
	write(t, file, 0, "not synced but kept")
	file.Close()
	if err := f.Unmount(); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if got := readBacking(t, filepath.Join(backing, "a")); got != "not synced but kept" {
		t.Errorf("after Unmount a = %q", got)
	}
	g, err := Mount(backing, f.Mountpoint())
	if err != nil {
		t.Fatalf("Mount again: %v", err)
	}
	t.Cleanup(func() { g.Unmount() })
	b, err := os.ReadFile(filepath.Join(g.Mountpoint(), "a"))
	if err != nil || string(b) != "not synced but kept" {
		t.Errorf("read through the second mount = %q, %v", b, err)
	}
}

// TestCutRandom runs seeded random writes, truncations and fsyncs on a few
// files, computes what each file held at its last fsync independently of
// the file system, and compares after a cut. CHRONOSHUB_FAULT_SEED replays
// a seed.
func TestCutRandom(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHRONOSHUB_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHRONOSHUB_FAULT_SEED: %v", err)
		}
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	f, backing := mount(t)
	type model struct {
		file        *os.File
		now, synced []byte
	}
	files := make([]*model, 3)
	for i := range files {
		files[i] = &model{file: create(t, f.Mountpoint(), fmt.Sprintf("f%d", i))}
	}
	for range 400 {
		m := files[rng.IntN(len(files))]
		switch op := rng.IntN(10); {
		case op < 6: // write
			off := rng.IntN(len(m.now) + 64)
			data := make([]byte, 1+rng.IntN(300))
			for i := range data {
				data[i] = byte('a' + rng.IntN(26))
			}
			write(t, m.file, int64(off), string(data))
			if need := off + len(data); need > len(m.now) {
				m.now = append(m.now, make([]byte, need-len(m.now))...)
			}
			copy(m.now[off:], data)
		case op < 8: // truncate
			size := rng.IntN(len(m.now) + 32)
			if err := m.file.Truncate(int64(size)); err != nil {
				t.Fatal(err)
			}
			if size <= len(m.now) {
				m.now = m.now[:size]
			} else {
				m.now = append(m.now, make([]byte, size-len(m.now))...)
			}
		default:
			fsync(t, m.file)
			m.synced = bytes.Clone(m.now)
		}
	}
	if _, err := f.Cut(func() {
		for _, m := range files {
			m.file.Close()
		}
	}); err != nil {
		t.Fatalf("seed %d: Cut: %v", seed, err)
	}
	for i, m := range files {
		if got := readBacking(t, filepath.Join(backing, fmt.Sprintf("f%d", i))); got != string(m.synced) {
			t.Errorf("seed %d (CHRONOSHUB_FAULT_SEED reruns it): after the cut f%d has %d bytes, want its %d synced bytes", seed, i, len(got), len(m.synced))
		}
	}
}

var (
	openMu sync.Mutex
	open   = map[*testing.T][]*os.File{} // files create opened, by test
)

// create creates a file; closeAll closes it, as a killed process's files
// are closed before a cut unmounts.
func create(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	openMu.Lock()
	open[t] = append(open[t], f)
	openMu.Unlock()
	t.Cleanup(func() { closeAll(t) })
	return f
}

func closeAll(t *testing.T) {
	openMu.Lock()
	defer openMu.Unlock()
	for _, f := range open[t] {
		f.Close()
	}
	delete(open, t)
}

func fsync(t *testing.T, f *os.File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
}

// TestMountRefusesBadDirs checks that a missing backing directory or mount
// point is an error that says which, and mounts nothing.
func TestMountRefusesBadDirs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tt := range []struct {
		name, backing, mnt, want string
	}{
		{"missing backing directory", missing, dir, "backing directory"},
		{"missing mount point", dir, missing, "mount " + missing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Mount(tt.backing, tt.mnt)
			if err == nil {
				f.Unmount()
				t.Fatalf("Mount(%q, %q) = nil error", tt.backing, tt.mnt)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Mount(%q, %q) = %v, want an error about %q", tt.backing, tt.mnt, err, tt.want)
			}
		})
	}
}
