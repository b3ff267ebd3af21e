package datadir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestAcquireExclusive(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	first, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire(%s) = %v", dir, err)
	}
	_, err = Acquire(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire = %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, fmt.Sprintf("process %d", os.Getpid()), "CHRONOSHUB_DATA_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second Acquire = %q, want it to name %q", err, want)
		}
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release = %v", err)
	}
	again.Release()
}

// TestReleaseWhileDescriptorCopied: a child forked while the lock is held
// keeps a copy of the lock file's descriptor until its exec; Release must
// free the directory anyway. The copy is made here with dup(2). Before
// Release unlocked explicitly, the next Acquire failed with ErrLocked (seen
// in CI, where TestCrashedHolderDoesNotBlock forks in parallel).
func TestReleaseWhileDescriptorCopied(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	first, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := syscall.Dup(int(first.f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(copied)
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release, with a copy of the descriptor open elsewhere = %v", err)
	}
	again.Release()
}

// TestMain lets the test binary act as a lock holder in a child process.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DATADIR_TEST_HOLD"); dir != "" {
		if _, err := Acquire(dir); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		select {} // hold until killed
	}
	os.Exit(m.Run())
}

// TestCrashedHolderDoesNotBlock kills a process holding the lock with
// SIGKILL: the kernel releases it, and the next Acquire succeeds.
func TestCrashedHolderDoesNotBlock(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^$")
	cmd.Env = append(os.Environ(), "DATADIR_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	_, err = Acquire(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", cmd.Process.Pid)) {
		t.Fatalf("Acquire while another process holds it = %v, want ErrLocked naming process %d", err, cmd.Process.Pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed = %v", err)
	}
	l.Release()
}

func TestAcquireReadOnly(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		// Root writes anywhere; the read-only file system case is
		// TestReadOnlyDataDir in the command's tests.
		dir := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Acquire(dir); err == nil {
			t.Fatal("Acquire on a regular file succeeded")
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	if _, err := Acquire(dir); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("Acquire on a read-only dir = %v, want not writable", err)
	}
}
