package config

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"
)

// envPrefix starts the name of every variable of ours.
const envPrefix = "CHRONOSHUB_"

// otherVariables are CHRONOSHUB_ variables that are not settings of serve
// but are read by something we ship, so that they are not reported as
// unknown: the emulator's secrets, and the example apps' settings, which
// often share the sidecar's environment (one ConfigMap for the pod).
var otherVariables = []string{
	"CHRONOSHUB_EMULATOR_API_KEY",
	"CHRONOSHUB_EMULATOR_WEBHOOK_SECRET",
	"CHRONOSHUB_SUBSCRIPTION",
	"CHRONOSHUB_EVENT_TYPES",
}

// Warning is a problem in the environment that does not stop the program: a
// CHRONOSHUB_ variable that nothing reads, most likely a typo.
type Warning struct {
	// Name is the unknown variable's name. Its value is never kept: it may
	// be a secret.
	Name string
	// Suggestion is the known variable closest to Name, or "" when none is
	// close enough to be a likely typo.
	Suggestion string
}

// String says what to change, for example
// `CHRONOSHUB_WEBHOOK_SECERT is not a chronoshub-sidecar setting; did you mean CHRONOSHUB_WEBHOOK_SECRET?`.
func (w Warning) String() string {
	if w.Suggestion != "" {
		return w.Name + " is not a chronoshub-sidecar setting; did you mean " + w.Suggestion + "?"
	}
	return w.Name + " is not a chronoshub-sidecar setting (see chronoshub-sidecar serve --help); it is ignored"
}

// WithWarnings returns err, the configuration's problems, followed by one
// line per warning, so that a misspelt variable is printed with the problem
// it most likely explains ("CHRONOSHUB_WEBHOOK_SECRET … required" when
// CHRONOSHUB_WEBHOOK_SECERT is set). It returns nil when err is nil: the
// warnings of a valid configuration are logged instead. errors.Is and
// errors.As see err through the result.
func WithWarnings(err error, warnings []Warning) error {
	if err == nil || len(warnings) == 0 {
		return err
	}
	return &warnedError{err: err, warnings: warnings}
}

// warnedError is an invalid configuration's error with the warnings about
// its environment.
type warnedError struct {
	err      error
	warnings []Warning
}

func (e *warnedError) Error() string {
	var b strings.Builder
	b.WriteString(e.err.Error())
	for _, w := range e.warnings {
		b.WriteString("\n")
		b.WriteString(w.String())
	}
	return b.String()
}

func (e *warnedError) Unwrap() error { return e.err }

// KnownVariables returns the name of every CHRONOSHUB_ variable that
// serve reads, sorted.
func KnownVariables() []string {
	var names []string
	for _, s := range settings(&Config{}, &raw{}) {
		names = append(names, s.env)
	}
	slices.Sort(names)
	return names
}

// UnknownVariables returns a Warning for every CHRONOSHUB_ variable of
// environ (as os.Environ returns it: "NAME=value") that no setting and
// nothing we ship reads, with the closest known name when one is close
// enough to be a typo. Other variables (OTEL_*, PATH, …) are not ours and
// are never reported. The result is sorted by name; it is empty when every
// variable is known.
func UnknownVariables(environ []string) []Warning {
	known := append(KnownVariables(), otherVariables...)
	var out []Warning
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || slices.Contains(known, name) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, Warning{Name: name, Suggestion: closest(name, known)})
	}
	slices.SortFunc(out, func(a, b Warning) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// closest returns the candidate nearest to name by edit distance, or "" when
// even the nearest needs more edits than a typo would (a third of the part
// after the prefix, at least two).
func closest(name string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := editDistance(name, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := max(2, (len(name)-len(envPrefix))/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b:
// the fewest insertions, deletions, substitutions and swaps of two adjacent
// bytes that turn a into b. A swap counts once, as in SECERT for SECRET.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// ListenError turns the error of listening on addr into one that names the
// setting and says what to change, in the form of Parse's errors, so that
// every listener's failure can be reported together with errors.Join. The
// setting is a variable of serve (such as "CHRONOSHUB_GRPC_ADDR", shown with
// its flag) or a flag of another subcommand (such as "--emulator-addr"). It
// wraps err.
func ListenError(setting, addr string, err error) error {
	label := setting
	if !strings.HasPrefix(setting, "-") {
		label = setting + " (--" + flagFor(setting) + ")"
	}
	var hint string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = "another process is listening there: stop it, or set " + setting + " to a free address (port 0 picks any)"
	case errors.Is(err, syscall.EACCES) || errors.Is(err, fs.ErrPermission):
		if strings.HasPrefix(addr, unixScheme) {
			hint = "no permission to create the socket: set " + setting + " to a path in a directory this user may write"
		} else {
			hint = "no permission: ports below 1024 need privileges; set " + setting + " to a port above 1023"
		}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = "no network interface of this machine has that address: set " + setting + " to one of its addresses, or 0.0.0.0"
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		hint = "the socket's directory does not exist: create it, or set " + setting + " to a path in an existing directory"
	default:
		hint = "set " + setting + " to an address this process can listen on"
	}
	return fmt.Errorf("%s: cannot listen on %s: %w; %s", label, quote(addr), err, hint)
}
