package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/natsconn"
)

// value parses one setting's text into the Config and shows it back for the
// start-up log.
type value interface {
	// set parses s and stores it. Its error says what is wrong with s
	// without naming the setting, and never quotes a secret.
	set(s string) error
	// show returns the effective value for Config.LogValue; secrets show as
	// "REDACTED".
	show() slog.Value
	// targets returns pointers to the Config fields the value sets.
	targets() []any
	// kind names the value's syntax in --help ("duration", "path", ...);
	// "" for a boolean flag, which takes no argument.
	kind() string
}

// stringValue is text, checked by check when it is not nil.
type stringValue struct {
	p     *string
	arg   string
	check func(string) error
}

func (v stringValue) set(s string) error {
	if v.check != nil {
		if err := v.check(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}
func (v stringValue) show() slog.Value { return slog.StringValue(*v.p) }
func (v stringValue) targets() []any   { return []any{v.p} }
func (v stringValue) kind() string     { return v.arg }

// durationValue is a positive time.ParseDuration value.
type durationValue struct{ p *time.Duration }

func (v durationValue) set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %s (want a number and a unit, as in 30s, 5m or 24h)", quote(s))
	}
	if d <= 0 {
		return fmt.Errorf("duration %s must be positive", quote(s))
	}
	*v.p = d
	return nil
}
func (v durationValue) show() slog.Value { return slog.StringValue(v.p.String()) }
func (v durationValue) targets() []any   { return []any{v.p} }
func (v durationValue) kind() string     { return "duration" }

// intValue is a decimal integer in [min, max].
type intValue[T int | int64] struct {
	p        *T
	min, max T
}

func (v intValue[T]) set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid integer %s", quote(s))
	}
	if n < int64(v.min) || n > int64(v.max) {
		return fmt.Errorf("%d is out of range: want %d to %d", n, v.min, v.max)
	}
	*v.p = T(n)
	return nil
}
func (v intValue[T]) show() slog.Value { return slog.Int64Value(int64(*v.p)) }
func (v intValue[T]) targets() []any   { return []any{v.p} }
func (v intValue[T]) kind() string     { return "int" }

// boolValue is a strconv.ParseBool value; its flag needs no argument.
type boolValue struct{ p *bool }

func (v boolValue) set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("invalid boolean %s (want true or false)", quote(s))
	}
	*v.p = b
	return nil
}
func (v boolValue) show() slog.Value { return slog.BoolValue(*v.p) }
func (v boolValue) targets() []any   { return []any{v.p} }
func (v boolValue) kind() string     { return "" }

// syncValue is "always" or a positive fsync interval.
type syncValue struct {
	always   *bool
	interval *time.Duration
}

func (v syncValue) set(s string) error {
	if strings.EqualFold(s, "always") {
		*v.always, *v.interval = true, 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("invalid value %s: want always or a positive duration, as in 1s", quote(s))
	}
	*v.always, *v.interval = false, d
	return nil
}
func (v syncValue) show() slog.Value {
	if !*v.always && *v.interval == 0 {
		return slog.StringValue("cluster") // external NATS: the cluster decides
	}
	if *v.always {
		return slog.StringValue("always")
	}
	return slog.StringValue(v.interval.String())
}
func (v syncValue) targets() []any { return []any{v.always, v.interval} }
func (v syncValue) kind() string   { return "always|duration" }

// levelValue is a log level name.
type levelValue struct{ p *slog.Level }

func (v levelValue) set(s string) error {
	switch strings.ToLower(s) {
	case "debug":
		*v.p = slog.LevelDebug
	case "info":
		*v.p = slog.LevelInfo
	case "warn":
		*v.p = slog.LevelWarn
	case "error":
		*v.p = slog.LevelError
	default:
		return fmt.Errorf("invalid level %s: want debug, info, warn or error", quote(s))
	}
	return nil
}
func (v levelValue) show() slog.Value { return slog.StringValue(strings.ToLower(v.p.String())) }
func (v levelValue) targets() []any   { return []any{v.p} }
func (v levelValue) kind() string     { return "level" }

// logFormatValue is a log format name.
type logFormatValue struct{ p *LogFormat }

func (v logFormatValue) set(s string) error {
	switch f := LogFormat(strings.ToLower(s)); f {
	case LogJSON, LogText:
		*v.p = f
		return nil
	}
	return fmt.Errorf("invalid log format %s: want json or text", quote(s))
}
func (v logFormatValue) show() slog.Value { return slog.StringValue(string(*v.p)) }
func (v logFormatValue) targets() []any   { return []any{v.p} }
func (v logFormatValue) kind() string     { return "format" }

// eventTypesValue is a comma-separated list of event types or patterns.
type eventTypesValue struct{ p *[]string }

func (v eventTypesValue) set(s string) error {
	var list, problems []string
	for t := range strings.SplitSeq(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if err := eventtype.ValidatePattern(t); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		list = append(list, t)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	*v.p = list
	return nil
}
func (v eventTypesValue) show() slog.Value { return slog.StringValue(strings.Join(*v.p, ",")) }
func (v eventTypesValue) targets() []any   { return []any{v.p} }
func (v eventTypesValue) kind() string     { return "list" }

// secretValue is a secret given in the environment. set keeps the raw text
// for Parse to build src from; show only says whether src came from it.
type secretValue struct {
	raw *string
	src **credentials.Source
}

func (v secretValue) set(s string) error { *v.raw = s; return nil }
func (v secretValue) show() slog.Value {
	if *v.src != nil && (*v.src).Path() == "" {
		return slog.StringValue("REDACTED")
	}
	return slog.StringValue("")
}
func (v secretValue) targets() []any { return []any{v.src} }
func (v secretValue) kind() string   { return "secret" }

// secretFileValue is the path of a file holding a secret.
type secretFileValue struct {
	path *string
	src  **credentials.Source
}

func (v secretFileValue) set(s string) error { *v.path = s; return nil }
func (v secretFileValue) show() slog.Value {
	if *v.src != nil {
		return slog.StringValue((*v.src).Path())
	}
	return slog.StringValue("")
}
func (v secretFileValue) targets() []any { return []any{v.src} }
func (v secretFileValue) kind() string   { return "path" }

// checkBaseURL accepts an absolute http or https URL with a host and no user
// information, query or fragment, since the client appends /inbound/{type}.
func checkBaseURL(s string) error {
	if s != "" && !strings.Contains(s, "://") && !strings.HasPrefix(s, "/") {
		// "api.chronoshub.example" or "api.chronoshub.example:443": a host
		// without a scheme, which url.Parse reads as a path or an opaque URL.
		if strings.Contains(s, "@") {
			return errors.New("URL has no scheme and seems to carry user information: write https://host, and put the API key in CHRONOSHUB_API_KEY")
		}
		return fmt.Errorf("URL %s has no scheme: write %s", quote(s), quote("https://"+s))
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("invalid URL %s", quote(s))
	case u.User != nil:
		return fmt.Errorf("URL %s must not carry user information: the API key goes in CHRONOSHUB_API_KEY", quote(u.Redacted()))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL %s must be absolute, with scheme http or https", quote(s))
	case u.Host == "":
		return fmt.Errorf("URL %s has no host", quote(s))
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?"):
		return fmt.Errorf("URL %s must not have a query or fragment", quote(s))
	}
	return nil
}

// checkNATSURL accepts a comma-separated list of NATS server URLs, or ""
// for the embedded server.
func checkNATSURL(s string) error {
	if s == "" {
		return nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		u, err := url.Parse(part)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("invalid NATS URL %s: want a list of URLs such as nats://nats:4222", quote(natsconn.Redact(part)))
		}
	}
	return nil
}

// natsURLValue shows the NATS URL with its user information (passwords and
// tokens) hidden.
type natsURLValue struct{ stringValue }

func (v natsURLValue) show() slog.Value { return slog.StringValue(natsconn.Redact(*v.p)) }

// checkNATSDomain accepts a JetStream domain: one subject token.
func checkNATSDomain(s string) error {
	if s == "" || strings.ContainsAny(s, ". *>\t\r\n") {
		return fmt.Errorf("invalid domain %s: want a name without dots, spaces, * or >", quote(s))
	}
	return nil
}

// checkWebhookPath accepts an absolute URL path.
func checkWebhookPath(s string) error {
	if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?# \t\r\n") {
		return fmt.Errorf("path %s must start with / and hold no query, fragment or white space", quote(s))
	}
	return nil
}

// checkTCPAddr accepts a host:port address.
func checkTCPAddr(s string) error {
	_, err := splitHostPort(s)
	return err
}

// checkListenAddr accepts what ParseListenAddr accepts; the loopback rule is
// checked with the other settings, in Parse.
func checkListenAddr(s string) error {
	_, _, err := ParseListenAddr(s)
	return err
}

// checkNotEmpty refuses an empty value.
func checkNotEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// The values of CHRONOSHUB_PPROF (Config.Pprof).
const (
	PprofOff      = "off"
	PprofLoopback = "loopback"
	PprofAny      = "any"
)

func checkPprof(s string) error {
	switch s {
	case PprofOff, PprofLoopback, PprofAny:
		return nil
	}
	return fmt.Errorf("invalid value %s: want off, loopback or any", quote(s))
}
