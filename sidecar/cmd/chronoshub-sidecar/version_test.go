package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVersionOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		info debug.BuildInfo
		want buildVersion
		line string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-01T10:00:00Z"}, {Key: "vcs.modified", Value: "false"},
		}}, buildVersion{Version: "v1.2.3", Revision: "0123abcd", Time: "2026-11-01T10:00:00Z", GoVersion: "go1.26.0"},
			"chronoshub-sidecar v1.2.3 (revision 0123abcd of 2026-11-01T10:00:00Z) go1.26.0"},
		{"modified work tree", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"},
		}}, buildVersion{Version: "(devel)", Revision: "0123abcd", Modified: true, GoVersion: "go1.26.0"},
			"chronoshub-sidecar (devel) (revision 0123abcd, modified) go1.26.0"},
		{"no VCS information", debug.BuildInfo{GoVersion: "go1.26.0"}, buildVersion{Version: "unknown", GoVersion: "go1.26.0"},
			"chronoshub-sidecar unknown (revision unknown) go1.26.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := versionOf(&tt.info)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("versionOf mismatch (-want +got):\n%s", diff)
			}
			if s := got.String(); s != tt.line {
				t.Errorf("String() = %q, want %q", s, tt.line)
			}
		})
	}
}

func TestVersionLogAttrs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	v := buildVersion{Version: "v1.2.3", Revision: "0123abcd", Modified: true, GoVersion: "go1.26.0"}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", v.LogAttrs()...)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"version": "v1.2.3", "revision": "0123abcd", "modified": true, "go_version": "go1.26.0"} {
		if got[k] != want {
			t.Errorf("log line %s = %v, want %v", k, got[k], want)
		}
	}
}

// TestVersionCommand runs "version" and "--version": the test binary has
// no VCS stamp, so the line shows this toolchain and "revision unknown".
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
			t.Fatalf("run(%q) = %v", args, err)
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "chronoshub-sidecar ") || !strings.HasSuffix(out, " "+runtime.Version()+"\n") || stderr.Len() != 0 {
			t.Errorf("run(%q) printed %q on stdout and %q on stderr, want one version line", args, out, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"version", "extra"}, func(string) string { return "" }, &stdout, &stderr); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("version extra = %v, want an error", err)
	}
}
