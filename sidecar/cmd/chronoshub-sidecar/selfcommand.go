package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// selfCommand is how the banner names this program so that its commands
// work where they are printed: "go run ./sidecar/cmd/chronoshub-sidecar"
// under go run (from the repository), else the executable as invoked.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "chronoshub-sidecar"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./sidecar/cmd/chronoshub-sidecar"
	}
	if p, err := exec.LookPath("chronoshub-sidecar"); err == nil && sameFile(p, exe) {
		return "chronoshub-sidecar"
	}
	return exe
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
