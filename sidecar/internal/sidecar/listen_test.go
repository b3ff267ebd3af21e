package sidecar

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string // "" means the listener starts
		kept    bool   // the file there before must still be there
	}{
		{"nothing there", func(*testing.T, string) {}, "", false},
		{"stale socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, "", false},
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "regular file is there", true},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "directory is there", true},
		{"symbolic link", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "target")
			os.WriteFile(target, []byte("precious"), 0o600)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link is there", true},
		{"live socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, "another process is listening", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i))+".sock")
			tt.prepare(t, path)
			before, _ := os.Lstat(path)
			l, err := listenUnix(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("listenUnix = %v, want an error containing %q", err, tt.wantErr)
				}
				if after, err := os.Lstat(path); tt.kept && (err != nil || !os.SameFile(before, after)) {
					t.Fatalf("listenUnix replaced what was at %s (%v)", path, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("listenUnix = %v", err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
				t.Fatalf("socket mode = %v, want a socket with 0600", fi.Mode())
			}
			if got := l.Addr().String(); got != path {
				t.Errorf("Addr = %s, want %s", got, path)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial the socket: %v", err)
			}
			c.Close()
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".chronoshub-sock-") {
					t.Errorf("private bind directory %s left behind", e.Name())
				}
			}
			l.Close()
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after Close, %s: %v, want it removed", path, err)
			}
		})
	}
}
