package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"regexp"
	"strings"
	"testing"
)

// singleDash finds a flag written -name in a usage text; every usage text
// writes --name.
var singleDash = regexp.MustCompile(`(^|[\s(\[,"])-[a-z][a-z-]*`)

// TestHelp checks that every subcommand's --help and -h go to stdout,
// succeed (main exits 0 on flag.ErrHelp), print nothing on stderr, and spell
// flags --name.
func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // a line the help must contain
	}{
		{[]string{"--help"}, "chronoshub-sidecar client  <command>"},
		{[]string{"-h"}, "chronoshub-sidecar version"},
		{[]string{"help"}, "chronoshub-sidecar trigger [flags]"},
		{[]string{"trigger", "--help"}, "  --retry-wait duration"},
		{[]string{"trigger", "-h"}, "Usage: chronoshub-sidecar trigger"},
		{[]string{"emulate", "--help"}, "  --addr string"},
		{[]string{"emulate", "-h"}, "Usage: chronoshub-sidecar emulate"},
		{[]string{"version", "--help"}, "Usage: chronoshub-sidecar version"},
		{[]string{"client", "--help"}, "dead-letters replay <id>…"},
		{[]string{"client", "-h"}, "Usage: chronoshub-sidecar client <command>"},
		{[]string{"client", "help"}, "Usage: chronoshub-sidecar client <command>"},
		{[]string{"client", "stream", "--help"}, "  --event-types string"},
		{[]string{"client", "stream", "-h"}, "  --ack\n"},
		{[]string{"client", "ack", "--help"}, "Usage: chronoshub-sidecar client ack"},
		{[]string{"client", "reject", "--help"}, "  --redeliver-delay duration"},
		{[]string{"client", "send", "-h"}, "  --idempotency-key string"},
		{[]string{"client", "sent", "--help"}, "  --token-file string"},
		{[]string{"client", "dead-letters", "--help"}, "client dead-letters replay"},
		{[]string{"client", "dead-letters", "list", "--help"}, "  --page-size uint"},
		{[]string{"client", "dead-letters", "replay", "-h"}, "  --all\n"},
		{[]string{"serve", "--help"}, "  --base-url URL"},
		{[]string{"serve", "-h"}, "CHRONOSHUB_STORE_FAILURE_LIMIT"},
		{[]string{"dev", "--help"}, "  --emulator-addr string"},
		{[]string{"dev", "-h"}, "-- app command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, func(string) string { return "" }, &stdout, &stderr)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("run(%q) = %v, want flag.ErrHelp (exit 0)", tt.args, err)
			}
			if stderr.Len() != 0 {
				t.Errorf("run(%q) wrote to stderr:\n%s", tt.args, stderr.String())
			}
			out := stdout.String()
			if !strings.Contains(out, tt.want) {
				t.Errorf("run(%q) help lacks %q:\n%s", tt.args, tt.want, out)
			}
			if m := singleDash.FindAllString(out, -1); len(m) > 0 {
				t.Errorf("run(%q) help spells flags with one dash %q:\n%s", tt.args, m, out)
			}
		})
	}
}

// TestFlagErrors checks that a bad flag is reported on one line that names
// it --name and points at --help, without the usage.
func TestFlagErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"trigger", "--bogus"}, {"emulate", "-bogus"}, {"client", "sent", "--bogus"}, {"version", "--bogus"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: --bogus") || !strings.Contains(err.Error(), "--help)") {
			t.Errorf("run(%q) = %v, want the undefined flag named --bogus and a pointer to --help", args, err)
		}
		if stdout.Len()+stderr.Len() != 0 {
			t.Errorf("run(%q) printed %q %q; main prints the error", args, stdout.String(), stderr.String())
		}
	}
}

// TestEmulateBusyAddress checks that a bind failure names the flag to change.
func TestEmulateBusyAddress(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"emulate", "--addr", busy.Addr().String()}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "emulate: --addr: cannot listen on") || !strings.Contains(err.Error(), "set --addr to a free address") {
		t.Fatalf("emulate on a busy address = %v, want the flag to change named", err)
	}
}
