package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain runs main itself when the test binary is started by
// TestHelpExitsZero, so that the exit status is main's.
func TestMain(m *testing.M) {
	if os.Getenv("EXAMPLE_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help"} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], arg)
		cmd.Env = append(os.Environ(), "EXAMPLE_RUN_MAIN=1")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("consumer %s = %v, want exit status 0; stderr:\n%s", arg, err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "Usage of consumer:") || !strings.Contains(stdout.String(), "-addr") || stderr.Len() != 0 {
			t.Errorf("consumer %s printed %q on stdout and %q on stderr, want the usage on stdout", arg, stdout.String(), stderr.String())
		}
	}
	// A bad flag still fails.
	cmd := exec.Command(os.Args[0], "-bogus")
	cmd.Env = append(os.Environ(), "EXAMPLE_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var exit *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "flag provided but not defined: -bogus") {
		t.Errorf("consumer -bogus = %v, stderr %q; want exit status 1 naming the flag", err, stderr.String())
	}
}
