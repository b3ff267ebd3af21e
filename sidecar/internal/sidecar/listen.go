package sidecar

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

// listenAPI listens on an app-facing address: host:port, or unix:///path
// for a socket only its owner may use.
func listenAPI(addr string) (net.Listener, error) {
	network, address, err := config.ParseListenAddr(addr)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		return net.Listen(network, address)
	}
	return listenUnix(address)
}

// listenUnix listens on a unix socket at path with mode 0600 from the moment
// it exists at path: it is bound in a new private directory (mode 0700)
// beside path, made 0600, and renamed into place. A file already at path is
// removed only when it is a socket nothing listens on (left by a crash);
// anything else at path is an error, never deleted.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	private, err := os.MkdirTemp(dir, ".chronoshub-sock-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	lis, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := lis.(*net.UnixListener)
	// The listener must not unlink tmp on Close: the socket moves to path,
	// and unlinking there is done below.
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		return nil, err
	}
	// Link, not rename: it fails if path appeared meanwhile, instead of
	// replacing it.
	if err := os.Link(tmp, path); err != nil {
		ul.Close()
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: ul, path: path}, nil
}

// unixListener removes its socket file on Close.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if rmErr := os.Remove(l.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

// Addr reports the socket's path, not the private name it was bound to.
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// removeStaleSocket removes path when it is a socket that refuses
// connections. It is an error when path is anything else, or a socket that
// something listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("unix socket %s: a %s is there; refusing to replace it", path, describeMode(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("unix socket %s: another process is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	return os.Remove(path)
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.Type() == os.ModeSymlink:
		return "symbolic link"
	case m.IsRegular():
		return "regular file"
	}
	return "file of mode " + m.Type().String()
}
