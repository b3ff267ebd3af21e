package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
)

// buildVersion is what the binary knows about its own build.
type buildVersion struct {
	// Version is the module version ("v1.2.3", a pseudo-version, or
	// "(devel)" for a build from a work tree).
	Version string
	// Revision is the VCS commit the binary was built from, "" when the
	// build recorded none (go run, go test, -buildvcs=false).
	Revision string
	// Modified is true when the work tree had uncommitted changes.
	Modified bool
	// Time is the commit's time (RFC 3339), "" when unknown.
	Time string
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// currentVersion returns the running binary's build information.
func currentVersion() buildVersion {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return buildVersion{Version: "unknown", GoVersion: runtime.Version()}
	}
	return versionOf(info)
}

// versionOf extracts a buildVersion from build information.
func versionOf(info *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: info.Main.Version, GoVersion: info.GoVersion}
	if v.Version == "" {
		v.Version = "unknown"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "vcs.time":
			v.Time = s.Value
		}
	}
	return v
}

// String is the one line "chronoshub-sidecar version" prints, for example
// "chronoshub-sidecar v1.2.0 (revision 0123abc…, modified) go1.26.0".
func (v buildVersion) String() string {
	rev := "revision unknown"
	if v.Revision != "" {
		rev = "revision " + v.Revision
		if v.Time != "" {
			rev += " of " + v.Time
		}
	}
	if v.Modified {
		rev += ", modified"
	}
	return fmt.Sprintf("chronoshub-sidecar %s (%s) %s", v.Version, rev, v.GoVersion)
}

// LogAttrs returns the build as slog attributes for the start-up log line:
// logger.Info("starting", append(currentVersion().LogAttrs(), "config", cfg)...).
func (v buildVersion) LogAttrs() []any {
	return []any{
		slog.String("version", v.Version),
		slog.String("revision", v.Revision),
		slog.Bool("modified", v.Modified),
		slog.String("go_version", v.GoVersion),
	}
}

const versionUsage = `Usage: chronoshub-sidecar version

Prints the module version, the VCS revision it was built from (and whether
the work tree was modified) and the Go version. "chronoshub-sidecar
--version" does the same.
`

func runVersion(args []string, stdout io.Writer) error {
	fs := newFlagSet("version")
	if err := parseFlags(fs, versionUsage, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected arguments %q", fs.Args())
	}
	fmt.Fprintln(stdout, currentVersion())
	return nil
}
