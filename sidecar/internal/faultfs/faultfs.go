// Package faultfs is a FUSE file system for power-loss tests, in the manner
// of Jepsen's LazyFS: a loopback over a backing directory that remembers, for
// every file, what it held at its last fsync, and on a simulated power cut
// puts every file back to that state.
//
// What it models:
//   - File data: a write, truncation or allocation reaches the backing file at
//     once (so that reads see it), and the bytes it replaced are kept in
//     memory until the file is fsynced (fsync or fdatasync through any
//     descriptor). At a cut every file is put back to its size and contents
//     at its last fsync, or at the mount for a file not written since.
//   - A file created since the mount and never fsynced is empty after a cut
//     (its directory entry stays; see below).
//   - Directory operations (create, mkdir, rename, unlink, link, rmdir) are
//     durable as soon as they return, as a journalling file system with
//     ordered metadata makes them in practice; a cut does not undo them. A
//     rename of a file that was never fsynced therefore leaves an empty file
//     under the new name, the "zero-length file after a crash" that
//     ext4 without auto_da_alloc produces.
//   - An fsync does not reach the backing file system: the backing disk never
//     loses power, so the test needs only the record of what was synced.
//
// A cut first freezes the file system (every later write, fsync or
// directory operation fails with EIO, as a machine that lost power does
// nothing more), then lets the caller kill the processes that used it, then
// unmounts it and rewrites the backing directory. Mount it again to restart
// on what was synced.
//
// Mounting needs root and /dev/fuse; it uses mount(2) directly (no fusermount).
package faultfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a mounted fault file system. Its methods are safe for concurrent use.
type FS struct {
	backing, mountpoint string
	server              *fuse.Server

	mu     sync.Mutex
	frozen bool
	files  map[uint64]*fileState // by backing inode number
	stats  Stats
}

// Stats counts what the file system saw since it was mounted.
type Stats struct {
	Writes, Fsyncs int
	// Files is the number of files with writes not fsynced at the cut, and
	// Bytes the bytes those writes added or replaced that the cut undid
	// (filled only by Cut).
	Files int
	Bytes int64
	// Undone is Bytes by file, relative to the backing directory.
	Undone map[string]int64
}

// fileState is what a file held at its last fsync, as far as it differs
// from the backing file now.
type fileState struct {
	mu         sync.Mutex // held across a change and its record, and across fsync
	syncedSize int64
	undo       []segment // old bytes within [0, syncedSize), in the order they were replaced
	dirty      int64     // bytes written or replaced since the last fsync
}

type segment struct {
	off  int64
	data []byte
}

// Mount mounts a fault file system at mountpoint over backing (both
// existing directories) and returns once it serves. It fails with a clear
// error when /dev/fuse cannot be used.
func Mount(backing, mountpoint string) (*FS, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("faultfs: backing directory: %w", err)
	}
	f := &FS{backing: backing, mountpoint: mountpoint, files: map[uint64]*fileState{}}
	rootData := &fusefs.LoopbackRoot{Path: backing, Dev: st.Dev}
	root := &node{LoopbackNode: &fusefs.LoopbackNode{RootData: rootData}, fs: f}
	rootData.RootNode = root
	zero := time.Duration(0)
	server, err := fusefs.Mount(mountpoint, root, &fusefs.Options{
		// No attribute or entry caching: a cut rewrites the backing files
		// behind the kernel's back (after the unmount, but be plain).
		AttrTimeout:     &zero,
		EntryTimeout:    &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			FsName:            "faultfs",
			Name:              "faultfs",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("faultfs: mount %s (needs root and a usable /dev/fuse): %w", mountpoint, err)
	}
	f.server = server
	return f, nil
}

// Mountpoint returns the directory the file system is mounted on.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Stats returns the counts so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Freeze makes every later write, fsync or directory operation fail with
// EIO: the first step of a cut, for cutting several file systems at one
// instant before killing their processes.
func (f *FS) Freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

// Cut simulates a power cut: it freezes the file system, calls kill (which
// must stop every process using it and wait for them to exit; it may be
// nil), unmounts it and puts every file of the backing directory back to
// what it held at its last fsync. It returns the counts of the mount,
// with what the cut undid.
func (f *FS) Cut(kill func()) (Stats, error) {
	f.Freeze()
	if kill != nil {
		kill()
	}
	if err := f.unmount(); err != nil {
		return Stats{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	paths, err := inodePaths(f.backing)
	if err != nil {
		return Stats{}, err
	}
	var errs []error
	for ino, s := range f.files {
		p, ok := paths[ino]
		if !ok || (s.dirty == 0 && len(s.undo) == 0) {
			continue // removed since, or nothing to undo
		}
		f.stats.Files++
		f.stats.Bytes += s.dirty
		if f.stats.Undone == nil {
			f.stats.Undone = map[string]int64{}
		}
		rel, _ := filepath.Rel(f.backing, p)
		f.stats.Undone[rel] = s.dirty
		if err := revert(p, s); err != nil {
			errs = append(errs, err)
		}
	}
	f.files = map[uint64]*fileState{}
	return f.stats, errors.Join(errs...)
}

// Unmount unmounts the file system without a cut: every file keeps what
// was written to it.
func (f *FS) Unmount() error {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
	return f.unmount()
}

func (f *FS) unmount() error {
	if f.server == nil {
		return nil
	}
	var err error
	for range 50 {
		// Busy while the kernel still holds a file of a process that is
		// being torn down.
		if err = f.server.Unmount(); err == nil {
			f.server.Wait()
			f.server = nil
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A lazy detach as a last resort, so that the test can go on.
	if derr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); derr != nil {
		return fmt.Errorf("faultfs: unmount %s: %w (detach: %v)", f.mountpoint, err, derr)
	}
	f.server = nil
	return nil
}

// revert puts the file at p back to s.
func revert(p string, s *fileState) error {
	file, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("faultfs: revert %s: %w", p, err)
	}
	defer file.Close()
	if err := file.Truncate(s.syncedSize); err != nil {
		return fmt.Errorf("faultfs: revert %s: %w", p, err)
	}
	// Latest first, so that the first record of a byte (what it held at the
	// fsync) is the one left.
	for _, seg := range slices.Backward(s.undo) {
		if _, err := file.WriteAt(seg.data, seg.off); err != nil {
			return fmt.Errorf("faultfs: revert %s: %w", p, err)
		}
	}
	return file.Close()
}

// inodePaths maps the inode numbers of the regular files under dir to their
// paths.
func inodePaths(dir string) (map[uint64]string, error) {
	paths := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			paths[st.Ino] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("faultfs: walk %s: %w", dir, err)
	}
	return paths, nil
}

// state returns the record of the file with backing inode ino, creating it
// from the backing file at p (its size now is its synced size) if needed.
// It reports false when the file system is frozen.
func (f *FS) state(ino uint64, p string, created bool) (*fileState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return nil, false
	}
	s := f.files[ino]
	if created || s == nil {
		s = &fileState{}
		if !created {
			if info, err := os.Stat(p); err == nil {
				s.syncedSize = info.Size()
			}
		}
		f.files[ino] = s
	}
	return s, true
}

func (f *FS) isFrozen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen
}

func (f *FS) count(writes, fsyncs int) {
	f.mu.Lock()
	f.stats.Writes += writes
	f.stats.Fsyncs += fsyncs
	f.mu.Unlock()
}

// save records, before a change to [off, off+n) of the file at p, the bytes
// of that range that were synced. s.mu is held.
func (s *fileState) save(p string, off, n int64) error {
	s.dirty += n
	end := min(off+n, s.syncedSize)
	if off >= end {
		return nil
	}
	file, err := os.Open(p)
	if err != nil {
		return err
	}
	defer file.Close()
	buf := make([]byte, end-off)
	k, err := file.ReadAt(buf, off)
	if err != nil && k < len(buf) {
		// Shorter than synced (truncated since): the rest is recorded by
		// the truncation's own save.
		buf = buf[:k]
	}
	s.undo = append(s.undo, segment{off: off, data: buf})
	return nil
}

// node is a loopback node whose changes are recorded.
type node struct {
	*fusefs.LoopbackNode
	fs *FS
}

var (
	_ fusefs.NodeWriter         = (*node)(nil)
	_ fusefs.NodeFsyncer        = (*node)(nil)
	_ fusefs.NodeSetattrer      = (*node)(nil)
	_ fusefs.NodeCreater        = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeWrapChilder    = (*node)(nil)
	_ fusefs.NodeAllocater      = (*node)(nil)
	_ fusefs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes every node of the tree a recording node.
func (n *node) WrapChild(ctx context.Context, ops fusefs.InodeEmbedder) fusefs.InodeEmbedder {
	if l, ok := ops.(*fusefs.LoopbackNode); ok {
		return &node{LoopbackNode: l, fs: n.fs}
	}
	return ops
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// change runs do, a change to [off, off+length) of the file, after
// recording what it replaces.
func (n *node) change(off, length int64, do func() syscall.Errno) syscall.Errno {
	p := n.backingPath()
	s, ok := n.fs.state(n.ino(), p, false)
	if !ok {
		return syscall.EIO
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.fs.isFrozen() {
		return syscall.EIO
	}
	if err := s.save(p, off, length); err != nil {
		return fusefs.ToErrno(err)
	}
	n.fs.count(1, 0)
	return do()
}

func (n *node) Write(ctx context.Context, fh fusefs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w, ok := fh.(fusefs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	var written uint32
	errno := n.change(off, int64(len(data)), func() syscall.Errno {
		var e syscall.Errno
		written, e = w.Write(ctx, data, off)
		return e
	})
	return written, errno
}

func (n *node) Allocate(ctx context.Context, fh fusefs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	a, ok := fh.(fusefs.FileAllocater)
	if !ok {
		return syscall.EOPNOTSUPP
	}
	return n.change(int64(off), int64(size), func() syscall.Errno { return a.Allocate(ctx, off, size, mode) })
}

// CopyFileRange is refused, so that the kernel falls back to reads and
// writes, which are recorded.
func (n *node) CopyFileRange(ctx context.Context, fhIn fusefs.FileHandle, offIn uint64, out *fusefs.Inode, fhOut fusefs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

func (n *node) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	if n.fs.isFrozen() {
		return syscall.EIO
	}
	if !isRegular(n.StableAttr()) {
		return 0 // directory operations are durable at once
	}
	p := n.backingPath()
	s, ok := n.fs.state(n.ino(), p, false)
	if !ok {
		return syscall.EIO
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.fs.isFrozen() {
		return syscall.EIO
	}
	info, err := os.Stat(p)
	if err != nil {
		return fusefs.ToErrno(err)
	}
	s.syncedSize, s.undo, s.dirty = info.Size(), nil, 0
	n.fs.count(0, 1)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	size, ok := in.GetSize()
	if !ok || !isRegular(n.StableAttr()) {
		if n.fs.isFrozen() {
			return syscall.EIO
		}
		return n.LoopbackNode.Setattr(ctx, fh, in, out)
	}
	p := n.backingPath()
	info, err := os.Stat(p)
	if err != nil {
		return fusefs.ToErrno(err)
	}
	// A truncation replaces [size, old size); an extension adds zeros.
	off, length := int64(size), info.Size()-int64(size)
	if length < 0 {
		off, length = info.Size(), -length
	}
	return n.change(off, length, func() syscall.Errno { return n.LoopbackNode.Setattr(ctx, fh, in, out) })
}

func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if n.fs.isFrozen() {
			return nil, 0, syscall.EIO
		}
		p := n.backingPath()
		info, err := os.Stat(p)
		if err != nil {
			return nil, 0, fusefs.ToErrno(err)
		}
		var (
			fh    fusefs.FileHandle
			fuseF uint32
		)
		errno := n.change(0, info.Size(), func() syscall.Errno {
			var e syscall.Errno
			fh, fuseF, e = n.LoopbackNode.Open(ctx, flags)
			fh = wrap(fh)
			return e
		})
		return fh, fuseF, errno
	}
	if n.fs.isFrozen() && flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EIO
	}
	fh, fuseF, errno := n.LoopbackNode.Open(ctx, flags)
	return wrap(fh), fuseF, errno
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if n.fs.isFrozen() {
		return nil, nil, 0, syscall.EIO
	}
	p := filepath.Join(n.backingPath(), name)
	_, statErr := os.Stat(p)
	existed := statErr == nil
	if existed {
		// Opened, not created: only a truncation changes it.
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return nil, nil, 0, fusefs.ToErrno(err)
		}
		if flags&syscall.O_TRUNC != 0 {
			s, ok := n.fs.state(st.Ino, p, false)
			if !ok {
				return nil, nil, 0, syscall.EIO
			}
			s.mu.Lock()
			err := s.save(p, 0, st.Size)
			s.mu.Unlock()
			if err != nil {
				return nil, nil, 0, fusefs.ToErrno(err)
			}
		}
	}
	ch, fh, fuseF, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	fh = wrap(fh)
	if errno != 0 || existed {
		return ch, fh, fuseF, errno
	}
	// A new file: its synced state is empty.
	if _, ok := n.fs.state(ch.StableAttr().Ino, p, true); !ok {
		return nil, nil, 0, syscall.EIO
	}
	return ch, fh, fuseF, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.fs.isFrozen() {
		return nil, syscall.EIO
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.fs.isFrozen() {
		return nil, syscall.EIO
	}
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 && isRegular(ch.StableAttr()) {
		n.fs.state(ch.StableAttr().Ino, "", true)
	}
	return ch, errno
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.fs.isFrozen() {
		return syscall.EIO
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fs.isFrozen() {
		return syscall.EIO
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.fs.isFrozen() {
		return syscall.EIO
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.fs.isFrozen() {
		return nil, syscall.EIO
	}
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.fs.isFrozen() {
		return nil, syscall.EIO
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func isRegular(a fusefs.StableAttr) bool { return a.Mode&syscall.S_IFMT == syscall.S_IFREG }

// handle is a loopback file handle without FUSE passthrough: with
// passthrough the kernel would write to the backing file itself, past the
// record.
type handle struct{ lf *fusefs.LoopbackFile }

func wrap(fh fusefs.FileHandle) fusefs.FileHandle {
	if lf, ok := fh.(*fusefs.LoopbackFile); ok {
		return &handle{lf}
	}
	return fh
}

var (
	_ fusefs.FileReader    = (*handle)(nil)
	_ fusefs.FileWriter    = (*handle)(nil)
	_ fusefs.FileReleaser  = (*handle)(nil)
	_ fusefs.FileFlusher   = (*handle)(nil)
	_ fusefs.FileGetattrer = (*handle)(nil)
	_ fusefs.FileSetattrer = (*handle)(nil)
	_ fusefs.FileLseeker   = (*handle)(nil)
	_ fusefs.FileAllocater = (*handle)(nil)
	_ fusefs.FileGetlker   = (*handle)(nil)
	_ fusefs.FileSetlker   = (*handle)(nil)
	_ fusefs.FileSetlkwer  = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.lf.Read(ctx, buf, off)
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return h.lf.Write(ctx, data, off)
}
func (h *handle) Release(ctx context.Context) syscall.Errno { return h.lf.Release(ctx) }
func (h *handle) Flush(ctx context.Context) syscall.Errno   { return h.lf.Flush(ctx) }
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Getattr(ctx, out)
}

func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Setattr(ctx, in, out)
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.lf.Lseek(ctx, off, whence)
}

func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return h.lf.Allocate(ctx, off, size, mode)
}

func (h *handle) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return h.lf.Getlk(ctx, owner, lk, flags, out)
}

func (h *handle) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return h.lf.Setlk(ctx, owner, lk, flags)
}

func (h *handle) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return h.lf.Setlkw(ctx, owner, lk, flags)
}
