package credentials

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxFileBytes bounds how much of a credential file is read, so that a path
// pointing at the wrong file fails instead of filling memory.
const maxFileBytes = 64 << 10

// Source is one credential, from a fixed value (an environment variable) or
// from a file that a [Watcher] re-reads. Its content is held as a whole
// ([Source.Current]) and as a list ([Source.Values]): separated by commas or
// one per line, trimmed, empty entries dropped. A Source from
// [NewRotatingFile] also remembers, during a rotation, the list it held
// before the last change.
//
// Reading a Source (Current, Reveal, Values, Secrets) is lock-free and safe
// for concurrent use with reloads.
type Source struct {
	name    string
	path    string // "" for a fixed value
	rotates bool   // replaced values stay accepted for the rotation grace
	snap    atomic.Pointer[snapshot]

	mu      sync.Mutex // serialises polls; guards sum and failure
	sum     [sha256.Size]byte
	failure string // the last failure reported, "" once a read succeeds
}

// snapshot is one immutable state of a Source.
type snapshot struct {
	current  Secret
	values   []Secret  // current, split
	previous []retired // earlier values still accepted, none of them in values
}

// retired is a value replaced by a reload, accepted until its grace ends.
type retired struct {
	secret Secret
	until  time.Time
}

// NewValue returns a Source holding value, trimmed of surrounding white
// space, that never changes. name labels it in logs and errors (for example
// "api_key"); it is not secret. An empty value gives a Source whose Current
// is zero and whose Values are empty: the caller decides whether that is an
// error.
func NewValue(name, value string) *Source {
	s := &Source{name: name}
	s.snap.Store(newSnapshot(strings.TrimSpace(value), nil))
	return s
}

// NewFile returns a Source holding the content of the file at path, read
// now. It fails if the file cannot be read, is larger than 64 KiB, or holds
// no value (only white space, commas and newlines); the error names the path,
// never the content. Register the Source with a [Watcher] to follow changes:
// a change replaces the content at once (an API key, a bearer token).
func NewFile(name, path string) (*Source, error) {
	content, sum, err := readCredential(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Source{name: name, path: path, sum: sum}
	s.snap.Store(newSnapshot(content, nil))
	return s, nil
}

// NewRotatingFile is [NewFile] for a credential whose earlier values stay
// accepted for a while after the file changes (webhook secrets): after a
// change, Values and Secrets keep the values the file no longer holds until
// the Watcher's RotationGrace has passed.
func NewRotatingFile(name, path string) (*Source, error) {
	s, err := NewFile(name, path)
	if err != nil {
		return nil, err
	}
	s.rotates = true
	return s, nil
}

// newSnapshot returns the snapshot of content with previous still accepted;
// previous must hold none of content's values.
func newSnapshot(content string, previous []retired) *snapshot {
	snap := &snapshot{previous: previous}
	if content != "" {
		snap.current = NewSecret(content)
	}
	for _, v := range splitValues(content) {
		snap.values = append(snap.values, NewSecret(v))
	}
	return snap
}

// readCredential returns the trimmed content of the file at path and the
// hash of its raw bytes. Errors name the path and never quote the content.
func readCredential(path string) (string, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	b, err := readLimited(path, maxFileBytes)
	if err != nil {
		return "", sum, err
	}
	content := strings.TrimSpace(string(b))
	if len(splitValues(content)) == 0 {
		return "", sum, fmt.Errorf("credential file %s is empty", path)
	}
	return content, sha256.Sum256(b), nil
}

// readLimited reads the file at path, failing if it is larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the path
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("file %s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// splitValues splits s at commas and newlines, trims every part and drops
// empty parts and repeats, keeping the first occurrence's order.
func splitValues(s string) []string {
	var out []string
	for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		part = strings.TrimSpace(part)
		if part != "" && !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out
}

// Name returns the label given to NewValue or NewFile.
func (s *Source) Name() string { return s.name }

// Path returns the file the Source reads, or "" for a fixed value.
func (s *Source) Path() string { return s.path }

// Current returns the whole current content, trimmed of surrounding white
// space: what an API key or a bearer token is. It never returns an earlier
// value, even during a rotation grace.
func (s *Source) Current() Secret { return s.snap.Load().current }

// Reveal returns Current().Reveal(). Its method value (src.Reveal) is the
// func() string an API client calls for every request, so that a rotated key
// takes effect at once.
func (s *Source) Reveal() string { return s.Current().Reveal() }

// Values returns the values accepted now: the current content split at
// commas and newlines, followed, during the rotation of a Source from
// [NewRotatingFile], by the values the file held before its last change that
// it no longer holds. Those earlier values
// stay until the Watcher's RotationGrace after the change has passed (the
// first Check after that drops them). The result is the caller's to modify.
func (s *Source) Values() []Secret {
	snap := s.snap.Load()
	out := make([]Secret, 0, len(snap.values)+len(snap.previous))
	out = append(out, snap.values...)
	for _, r := range snap.previous {
		out = append(out, r.secret)
	}
	return out
}

// Secrets returns Values as byte slices, freshly allocated on every call.
// Its method value (src.Secrets) is the func() [][]byte a webhook verifier
// calls for every request, so that every accepted secret, current and
// previous, verifies.
func (s *Source) Secrets() [][]byte {
	vals := s.Values()
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v.Reveal())
	}
	return out
}

// String describes the Source without its content, for example
// "api_key (file /etc/chronoshub/api-key)" or "api_key (value)".
func (s *Source) String() string {
	if s.path == "" {
		return s.name + " (value)"
	}
	return s.name + " (file " + s.path + ")"
}

// LogValue implements slog.LogValuer: where the credential comes from and how
// many values it holds, its content shown as "REDACTED".
func (s *Source) LogValue() slog.Value {
	snap := s.snap.Load()
	attrs := make([]slog.Attr, 0, 4)
	if s.path == "" {
		attrs = append(attrs, slog.String("from", "value"))
	} else {
		attrs = append(attrs, slog.String("from", "file"), slog.String("path", s.path))
	}
	attrs = append(attrs, slog.String("value", redacted), slog.Int("count", len(snap.values)))
	if len(snap.previous) > 0 {
		attrs = append(attrs, slog.Int("previous", len(snap.previous)))
	}
	return slog.GroupValue(attrs...)
}

// pollResult is what one poll of a Source did, for the Watcher to report.
type pollResult struct {
	changed   bool  // a new content was applied
	retained  bool  // after a change, earlier values stay accepted until now+grace
	err       error // the read failed; set only the first time a failure is seen
	recovered bool  // a read succeeded after a reported failure
	expired   int   // earlier values dropped because their grace ended
}

// poll re-reads the file, applies a changed content (keeping the values it
// replaces until now+grace) and drops earlier values whose grace has ended.
// A failed read keeps the current content.
func (s *Source) poll(now time.Time, grace time.Duration) pollResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res pollResult
	old := s.snap.Load()
	previous := slices.DeleteFunc(slices.Clone(old.previous), func(r retired) bool { return !now.Before(r.until) })
	res.expired = len(old.previous) - len(previous)

	content, sum, err := readCredential(s.path)
	switch {
	case err != nil:
		if msg := err.Error(); msg != s.failure {
			s.failure = msg
			res.err = fmt.Errorf("%s: %w", s.name, err)
		}
	case sum != s.sum:
		s.sum, s.failure = sum, ""
		next := newSnapshot(content, nil)
		for _, v := range old.values {
			if s.rotates && !containsValue(next.values, v) {
				previous = append(previous, retired{secret: v, until: now.Add(grace)})
			}
		}
		next.previous = slices.DeleteFunc(previous, func(r retired) bool { return containsValue(next.values, r.secret) })
		res.changed = true
		res.retained = len(next.previous) > 0
		s.snap.Store(next)
		return res
	default:
		res.recovered = s.failure != ""
		s.failure = ""
	}
	if res.expired > 0 {
		s.snap.Store(&snapshot{current: old.current, values: old.values, previous: previous})
	}
	return res
}

// containsValue reports whether list holds a secret equal to v.
func containsValue(list []Secret, v Secret) bool {
	return slices.ContainsFunc(list, func(x Secret) bool { return x.Reveal() == v.Reveal() })
}
