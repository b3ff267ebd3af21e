package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSplitValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only separators", " ,\n , \r\n", nil},
		{"one", "abc", []string{"abc"}},
		{"commas", "a,b,c", []string{"a", "b", "c"}},
		{"newlines", "a\nb\n", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"mixed and trimmed", "  a , b\n\tc  \n\n,d", []string{"a", "b", "c", "d"}},
		{"repeats dropped", "a,b,a\nb", []string{"a", "b"}},
		{"inner spaces kept", "a b, c d", []string{"a b", "c d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, splitValues(tt.in)); diff != "" {
				t.Errorf("splitValues(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func FuzzSplitValues(f *testing.F) {
	for _, s := range []string{"", "a", "a,b", "a\nb\r\n", " , ", "a,,a", "\u00a0x\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := splitValues(in)
		seen := map[string]bool{}
		for _, v := range got {
			switch {
			case v == "":
				t.Fatalf("splitValues(%q) has an empty value", in)
			case v != strings.TrimSpace(v):
				t.Fatalf("splitValues(%q) has untrimmed %q", in, v)
			case strings.ContainsAny(v, ",\n\r"):
				t.Fatalf("splitValues(%q) has %q holding a separator", in, v)
			case !strings.Contains(in, v):
				t.Fatalf("splitValues(%q) has %q, not in the input", in, v)
			case seen[v]:
				t.Fatalf("splitValues(%q) repeats %q", in, v)
			}
			seen[v] = true
		}
	})
}

// writeFile writes content to path, failing the test on error.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// revealAll returns the values of secrets.
func revealAll(secrets [][]byte) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		out[i] = string(s)
	}
	return out
}

func TestNewValue(t *testing.T) {
	s := NewValue("webhook_secret", "  one, two\nthree \n")
	if got, want := s.Current().Reveal(), "one, two\nthree"; got != want {
		t.Errorf("Current() = %q, want %q", got, want)
	}
	if diff := cmp.Diff([]string{"one", "two", "three"}, revealAll(s.Secrets())); diff != "" {
		t.Errorf("Secrets() mismatch (-want +got):\n%s", diff)
	}
	if s.Path() != "" || s.Name() != "webhook_secret" {
		t.Errorf("Path(), Name() = %q, %q, want \"\", webhook_secret", s.Path(), s.Name())
	}
	if empty := NewValue("api_key", " \n"); !empty.Current().IsZero() || len(empty.Values()) != 0 {
		t.Errorf("NewValue(blank): Current().IsZero() = %v, Values() = %v; want true, none", empty.Current().IsZero(), empty.Values())
	}
}

func TestNewFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeFile(t, good, testSecret+"\n")
	s, err := NewFile("api_key", good)
	if err != nil {
		t.Fatalf("NewFile(good): %v", err)
	}
	if got := s.Reveal(); got != testSecret {
		t.Errorf("Reveal() = %q, want %q (trailing newline trimmed)", got, testSecret)
	}
	if got := s.String(); got != "api_key (file "+good+")" {
		t.Errorf("String() = %q", got)
	}

	big := filepath.Join(dir, "big")
	writeFile(t, big, strings.Repeat(testSecret, maxFileBytes/len(testSecret)+1))
	tests := []struct {
		name string
		path string
	}{
		{"missing", filepath.Join(dir, "missing")},
		{"empty", filepath.Join(dir, "empty")},
		{"blank", filepath.Join(dir, "blank")},
		{"only separators", filepath.Join(dir, "seps")},
		{"directory", dir},
		{"too large", big},
	}
	writeFile(t, filepath.Join(dir, "empty"), "")
	writeFile(t, filepath.Join(dir, "blank"), " \n\t\n")
	writeFile(t, filepath.Join(dir, "seps"), ",\n,")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFile("api_key", tt.path)
			if err == nil {
				t.Fatalf("NewFile(%q) = nil error, want one", tt.path)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.path) || !strings.HasPrefix(msg, "api_key: ") || strings.Contains(msg, testSecret) {
				t.Errorf("NewFile(%q) error = %q, want the name and path and no content", tt.path, msg)
			}
		})
	}
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// reloads records OnReload calls.
type reloads struct {
	mu    sync.Mutex
	calls []string
}

func (r *reloads) OnReload(name, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name+"="+result)
}

// take returns the calls recorded since the last take.
func (r *reloads) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

// testWatcher returns a Watcher with a fake clock, a recorded OnReload and
// a JSON log in the returned buffer.
func testWatcher(t *testing.T, grace time.Duration) (*Watcher, *clock, *reloads, *bytes.Buffer) {
	t.Helper()
	clk := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := &reloads{}
	var buf bytes.Buffer
	w := NewWatcher(WatcherOptions{
		RotationGrace: grace,
		Now:           clk.Now,
		Logger:        slog.New(slog.NewJSONHandler(&syncWriter{w: &buf}, nil)),
		OnReload:      rec.OnReload,
	})
	return w, clk, rec, &buf
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestWatcherRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook-secret")
	writeFile(t, path, "old-a,old-b\n")
	src, err := NewRotatingFile("webhook_secret", path)
	if err != nil {
		t.Fatal(err)
	}
	w, clk, rec, logs := testWatcher(t, time.Hour)
	w.Add(src)

	steps := []struct {
		name        string
		write       string // new content; "" leaves the file alone
		advance     time.Duration
		wantCurrent string
		wantSecrets []string
		wantReloads []string
	}{
		{"unchanged", "", 0, "old-a,old-b", []string{"old-a", "old-b"}, nil},
		{"rotated", "new\nold-b\n", 0, "new\nold-b", []string{"new", "old-b", "old-a"}, []string{"webhook_secret=ok"}},
		{"same bytes rewritten", "new\nold-b\n", 30 * time.Minute, "new\nold-b", []string{"new", "old-b", "old-a"}, nil},
		{"rotated again within grace", "newer", 20 * time.Minute, "newer", []string{"newer", "old-a", "new", "old-b"}, []string{"webhook_secret=ok"}},
		{"just before the first grace ends", "", 10*time.Minute - time.Nanosecond, "newer", []string{"newer", "old-a", "new", "old-b"}, nil},
		{"first grace ended", "", time.Nanosecond, "newer", []string{"newer", "new", "old-b"}, nil},
		{"second grace ended", "", 50 * time.Minute, "newer", []string{"newer"}, nil},
		{"an earlier value comes back", "old-a,newer", 0, "old-a,newer", []string{"old-a", "newer"}, []string{"webhook_secret=ok"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.write != "" {
				writeFile(t, path, st.write)
			}
			clk.Advance(st.advance)
			w.Check()
			if got := src.Current().Reveal(); got != st.wantCurrent {
				t.Errorf("Current() = %q, want %q", got, st.wantCurrent)
			}
			if diff := cmp.Diff(st.wantSecrets, revealAll(src.Secrets())); diff != "" {
				t.Errorf("Secrets() mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(st.wantReloads, rec.take()); diff != "" {
				t.Errorf("OnReload calls mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for _, v := range []string{"old-a", "old-b", "new", "newer"} {
		if strings.Contains(logs.String(), v) {
			t.Errorf("log holds the secret value %q:\n%s", v, logs)
		}
	}
}

// runAsNobody runs the current test again in a copy of the test binary as
// user and group 65534 (nobody) and fails t if it fails there; otherwise
// the test passes. It needs root; the binary and its
// temporary directory are made accessible to nobody.
func runAsNobody(t *testing.T) {
	t.Helper()
	dir, err := os.MkdirTemp("", "as-nobody-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "test.bin")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	pattern := "^" + strings.ReplaceAll(regexp.QuoteMeta(t.Name()), "/", "$/^") + "$"
	cmd := exec.Command(bin, "-test.run", pattern, "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("as nobody, %s did not run:\n%s", t.Name(), out)
	}
	t.Log("ran as user nobody:", strings.Count(string(out), "--- PASS"), "passed")
}

// TestWatcherReloadLogs checks that only a rotating credential's reload
// promises that its previous values are accepted until a time: an API key or
// a bearer token is replaced at once.
func TestWatcherReloadLogs(t *testing.T) {
	tests := []struct {
		name       string
		open       func(name, path string) (*Source, error)
		wantSecret []string
		wantUntil  bool
	}{
		{"api key", NewFile, []string{"new"}, false},
		{"webhook secret", NewRotatingFile, []string{"new", "old"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credential")
			writeFile(t, path, "old")
			src, err := tt.open("credential", path)
			if err != nil {
				t.Fatal(err)
			}
			w, _, _, logs := testWatcher(t, time.Hour)
			w.Add(src)
			writeFile(t, path, "new")
			w.Check()
			if diff := cmp.Diff(tt.wantSecret, revealAll(src.Secrets())); diff != "" {
				t.Errorf("Secrets() after the reload mismatch (-want +got):\n%s", diff)
			}
			var line map[string]any
			for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err == nil && m["msg"] == "credential reloaded" {
					line = m
				}
			}
			if line == nil {
				t.Fatalf("no \"credential reloaded\" line in:\n%s", logs)
			}
			if until, ok := line["previous_accepted_until"]; ok != tt.wantUntil {
				t.Errorf("reload line previous_accepted_until = %v (present %v), want present %v: %v", until, ok, tt.wantUntil, line)
			}
		})
	}
}

func TestWatcherFailedReloadKeepsLastGood(t *testing.T) {
	tests := []struct {
		name      string
		breakFile func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"emptied", func(t *testing.T, path string) { writeFile(t, path, "") }},
		{"blank", func(t *testing.T, path string) { writeFile(t, path, "\n \n") }},
		{"replaced by a directory", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"unreadable", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "unreadable" && os.Geteuid() == 0 {
				// Root reads a file whatever its mode (CI runs as root).
				runAsNobody(t)
				return
			}
			path := filepath.Join(t.TempDir(), "api-key")
			writeFile(t, path, testSecret)
			src, err := NewFile("api_key", path)
			if err != nil {
				t.Fatal(err)
			}
			w, _, rec, logs := testWatcher(t, time.Hour)
			w.Add(src)

			tt.breakFile(t, path)
			w.Check()
			w.Check() // a lasting failure is reported once
			if got := src.Reveal(); got != testSecret {
				t.Errorf("after a failed reload, Reveal() = %q, want the last good %q", got, testSecret)
			}
			if diff := cmp.Diff([]string{"api_key=error"}, rec.take()); diff != "" {
				t.Errorf("OnReload calls mismatch (-want +got):\n%s", diff)
			}
			if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), path) {
				t.Errorf("log = %s, want a WARN line naming %s", logs, path)
			}

			os.Remove(path) // whatever breakFile left there
			writeFile(t, path, "fixed")
			w.Check()
			if got := src.Reveal(); got != "fixed" {
				t.Errorf("after the file was fixed, Reveal() = %q, want %q", got, "fixed")
			}
			if diff := cmp.Diff([]string{"api_key=ok"}, rec.take()); diff != "" {
				t.Errorf("OnReload calls mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(logs.String(), testSecret) || strings.Contains(logs.String(), "fixed") {
				t.Errorf("log holds a secret value:\n%s", logs)
			}
		})
	}
}

// TestWatcherSymlinkSwap follows the layout Kubernetes gives a mounted
// Secret: name -> ..data/name, ..data -> ..<timestamp>, updated by renaming
// a new ..data link over the old one.
func TestWatcherSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for i, content := range []string{"v1", "v2"} {
		gen := filepath.Join(dir, fmt.Sprintf("..gen%d", i))
		if err := os.Mkdir(gen, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(gen, "api-key"), content)
	}
	if err := os.Symlink("..gen0", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "api-key")
	if err := os.Symlink(filepath.Join("..data", "api-key"), path); err != nil {
		t.Fatal(err)
	}
	src, err := NewFile("api_key", path)
	if err != nil {
		t.Fatal(err)
	}
	w, _, rec, _ := testWatcher(t, time.Hour)
	w.Add(src)

	if err := os.Symlink("..gen1", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	w.Check()
	if got := src.Reveal(); got != "v2" {
		t.Errorf("after the swap, Reveal() = %q, want v2", got)
	}
	if diff := cmp.Diff([]string{"api_key=ok"}, rec.take()); diff != "" {
		t.Errorf("OnReload calls mismatch (-want +got):\n%s", diff)
	}
}

func TestWatcherAdd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	writeFile(t, path, "a")
	file, err := NewFile("f", path)
	if err != nil {
		t.Fatal(err)
	}
	w, _, rec, _ := testWatcher(t, 0)
	w.Add(nil, NewValue("v", "x"), file, file)
	if len(w.sources) != 1 {
		t.Errorf("after Add(nil, value, file, file), %d sources watched, want 1", len(w.sources))
	}
	writeFile(t, path, "b")
	w.Check()
	if diff := cmp.Diff([]string{"f=ok"}, rec.take()); diff != "" {
		t.Errorf("OnReload calls mismatch (-want +got):\n%s", diff)
	}
	if w.grace != DefaultRotationGrace || w.interval != DefaultInterval {
		t.Errorf("zero options: grace %v, interval %v; want %v, %v", w.grace, w.interval, DefaultRotationGrace, DefaultInterval)
	}
}

func TestWatcherRunStopsWithContext(t *testing.T) {
	w := NewWatcher(WatcherOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run(cancelled) = %v, want nil", err)
	}
}

// TestSourceConcurrentReads runs readers against reloads, for the race
// detector.
func TestSourceConcurrentReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	writeFile(t, path, "v0")
	src, err := NewFile("s", path)
	if err != nil {
		t.Fatal(err)
	}
	w, clk, _, _ := testWatcher(t, time.Minute)
	w.Add(src)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if len(src.Secrets()) == 0 || src.Current().IsZero() {
					t.Error("a reader saw no secret during reloads")
					return
				}
			}
		})
	}
	for i := range 50 {
		writeFile(t, path, fmt.Sprintf("v%d", i+1))
		clk.Advance(10 * time.Second)
		w.Check()
	}
	close(stop)
	wg.Wait()
}

func TestSourceLogValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	writeFile(t, path, testSecret)
	file, err := NewFile("webhook_secret", path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "file", file, "value", NewValue("api_key", testSecret))
	out := buf.String()
	if strings.Contains(out, testSecret) {
		t.Errorf("log holds the secret: %s", out)
	}
	for _, want := range []string{`"path":"` + path + `"`, `"from":"value"`, `"value":"REDACTED"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log = %s, want it to hold %s", out, want)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", file, struct{ S *Source }{file}, []*Source{file}); strings.Contains(s, testSecret) {
		t.Errorf("fmt of a Source holds the secret: %s", s)
	}
}
