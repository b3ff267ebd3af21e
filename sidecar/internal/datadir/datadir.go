// Package datadir makes a data directory exclusive to one process: a second
// sidecar (or dev playground) on the same directory would share the embedded
// store's files with the first and lose events both answered 2xx.
//
// The lock is an flock(2) on a file in the directory, which the kernel
// releases when the process exits in any way, so a crashed holder never
// blocks a restart. The holder's PID is written into the file to name it in
// the error; the PID is information, never the lock.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file in a locked directory.
const LockFile = "chronoshub.lock"

// ErrLocked means another process holds the directory.
var ErrLocked = errors.New("data directory in use")

// Lock is a held lock on a directory.
type Lock struct {
	f *os.File
}

// Acquire creates dir (mode 0700) if needed and locks it for this process.
// When another process holds it, the error wraps ErrLocked and names the
// directory and, when known, the holder's PID. The caller must Release the
// lock (or exit).
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf(" by process %d", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("%w: %s is used%s; each sidecar needs its own CHRONOSHUB_DATA_DIR (or share a NATS cluster with CHRONOSHUB_NATS_URL)", ErrLocked, abs, holder)
		}
		return nil, fmt.Errorf("data dir %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release unlocks the directory. The lock file stays: removing it would let
// a process that opened it before the removal and one that creates a new
// one both hold "the" lock.
//
// It unlocks explicitly before closing: an flock belongs to the open file
// description, and a child this process forks at that moment (exec.Command
// anywhere in the program) holds a copy of the descriptor until its exec, so
// closing alone could leave the directory locked for a while after Release.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	unlockErr := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	if unlockErr != nil {
		return fmt.Errorf("data dir: unlock: %w", unlockErr)
	}
	return err
}
