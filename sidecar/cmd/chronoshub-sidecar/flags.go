package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet returns a FlagSet for a subcommand that prints nothing itself:
// parseFlags prints --help and reports errors.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args with fs. For -h or --help it writes usage and the
// flags to stdout and returns flag.ErrHelp, which main treats as success.
// Any other error names the subcommand and points at --help; nothing is
// printed, the caller (main) prints the error on stderr.
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		printFlags(stdout, fs)
		return flag.ErrHelp
	}
	// The flag package spells flags -name in its errors; we write --name.
	msg := strings.Replace(err.Error(), " -", " --", 1)
	return fmt.Errorf("%s: %s (see chronoshub-sidecar %s --help)", fs.Name(), msg, fs.Name())
}

// printFlags writes fs's flags as flag.PrintDefaults does, but spelled
// --name, the style of every usage text of the program.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		b.WriteString("  --" + f.Name)
		if kind != "" {
			b.WriteString(" " + kind)
		}
		b.WriteString("\n      " + strings.ReplaceAll(usage, "\n", "\n      "))
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
			if kind == "string" {
				def = fmt.Sprintf("%q", def)
			}
			fmt.Fprintf(&b, " (default %s)", def)
		}
		b.WriteString("\n")
	})
	io.WriteString(w, b.String())
}
