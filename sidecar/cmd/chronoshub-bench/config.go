package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	sidecarconfig "github.com/chronoshub/chronoshub-sidecar/sidecar/internal/config"
)

// config is the harness's flags.
type config struct {
	Args           []string // as given, for the report
	Quick          bool
	Runs           int
	Duration       time.Duration
	Warmup         time.Duration
	Senders        int
	SendCallers    int
	Rates          []int
	StepDuration   time.Duration
	StepP99        time.Duration
	MaxStepRate    int
	StreamEvents   int
	LogSizes       []int
	Subs           []int
	ScaleRate      int
	BacklogEvents  int
	BacklogLatency time.Duration
	BacklogMax     time.Duration
	BacklogEnv     listFlag
	Profile        bool
	Out            string
	Bin            string
	Keep           bool
	Save, From     string
	Only           map[string]bool // sections to run; empty runs all
	// InFlight is the sidecar's default in-flight window: the bench's app
	// asks for none, so it gets this one, and the minimal pipeline uses it.
	InFlight int
}

// sidecarInFlight reads the sidecar's default in-flight window from its
// configuration table.
func sidecarInFlight() (int, error) {
	v, ok := sidecarconfig.Default("CHRONOSHUB_MAX_IN_FLIGHT")
	if !ok {
		return 0, errors.New("the sidecar has no CHRONOSHUB_MAX_IN_FLIGHT setting")
	}
	return strconv.Atoi(v)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("chronoshub-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{Args: args}
	fs.BoolVar(&c.Quick, "quick", false, "smoke run (about 2 min): 1 run of 1 s each, logs of 0, 2,000 and 10,000 events, 1 and 10 subscriptions, 5,000 events for the stream drain, 2,000 for the backlog; explicit flags still win")
	fs.IntVar(&c.Runs, "runs", 3, "runs per figure; each figure is the median with min–max")
	fs.DurationVar(&c.Duration, "duration", 3*time.Second, "measured duration of each load run")
	fs.DurationVar(&c.Warmup, "warmup", 500*time.Millisecond, "unmeasured load before each keep-alive run (connections, TLS, caches)")
	fs.IntVar(&c.Senders, "senders", 32, "concurrent webhook senders (ingest and end to end)")
	fs.IntVar(&c.SendCallers, "send-callers", 8, "concurrent SendEvent callers for the throughput ratio")
	rates := fs.String("rates", "1000,5000", "fixed offered rates (events/s) of the end-to-end latency runs")
	fs.DurationVar(&c.StepDuration, "step-duration", 2*time.Second, "duration of each rate step when searching the highest rate held")
	fs.DurationVar(&c.StepP99, "step-p99", 50*time.Millisecond, "the end-to-end p99 a rate step must stay under to count as held")
	fs.IntVar(&c.MaxStepRate, "max-step-rate", 64000, "stop the rate search here")
	fs.IntVar(&c.StreamEvents, "stream-events", 20000, "events preloaded for the stream drain throughput")
	logSizes := fs.String("log-sizes", "0,100000,1000000", "events already in the log for the scale curves (end-to-end p99, RSS, heap, startup, recovery); the 1,000,000 step takes a few minutes")
	subs := fs.String("subs", "1,10,100", "subscriptions with open streams for the scale curve")
	fs.IntVar(&c.ScaleRate, "scale-rate", 100, "offered webhooks/s of the subscriptions curve (each subscription receives every event)")
	fs.IntVar(&c.BacklogEvents, "backlog-events", 10000, "async SendEvents queued while ChronosHub does not answer")
	fs.DurationVar(&c.BacklogLatency, "backlog-latency", 50*time.Millisecond, "the emulator's injected latency while the backlog drains")
	fs.DurationVar(&c.BacklogMax, "backlog-max", 20*time.Second, "stop measuring the backlog drain after this long (the rate is what was accepted by then)")
	fs.Var(&c.BacklogEnv, "backlog-env", "a CHRONOSHUB_NAME=value setting for the backlog drain's sidecar, such as the outbox's concurrency (repeatable)")
	fs.BoolVar(&c.Profile, "profile", true, "profile the running binary through its pprof endpoint under each load with a target")
	fs.StringVar(&c.Out, "out", "docs", "directory for benchmarks.md and the SVG charts")
	fs.StringVar(&c.Bin, "bin", "", "a prebuilt chronoshub-sidecar binary; empty builds ./sidecar/cmd/chronoshub-sidecar")
	fs.StringVar(&c.Save, "save", "", "also write the raw results to this JSON file")
	fs.StringVar(&c.From, "from", "", "measure nothing: write the report (into -out) from a -save file")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (data dirs, logs, profiles)")
	only := fs.String("only", "", "comma-separated sections to run ("+strings.Join(sectionNames(), ",")+"); empty runs all")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Quick {
		for name, v := range map[string]string{"runs": "1", "duration": "1s", "warmup": "200ms", "step-duration": "1s", "stream-events": "5000",
			"log-sizes": "0,2000,10000", "subs": "1,10", "backlog-events": "2000", "backlog-max": "5s", "max-step-rate": "16000"} {
			if !set[name] {
				_ = fs.Set(name, v) // valid values
			}
		}
	}
	var errs []error
	c.Only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Only[s] = true
		}
	}
	for name, list := range map[string]struct {
		text string
		to   *[]int
		min  int
	}{"rates": {*rates, &c.Rates, 1}, "log-sizes": {*logSizes, &c.LogSizes, 0}, "subs": {*subs, &c.Subs, 1}} {
		for _, s := range strings.Split(list.text, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v < list.min {
				errs = append(errs, fmt.Errorf("-%s: %q is not an integer ≥ %d", name, s, list.min))
				continue
			}
			*list.to = append(*list.to, v)
		}
	}
	for s := range c.Only {
		if !slices.Contains(sectionNames(), s) {
			errs = append(errs, fmt.Errorf("-only: unknown section %q (want some of %s)", s, strings.Join(sectionNames(), ",")))
		}
	}
	if c.Runs < 1 {
		errs = append(errs, errors.New("-runs must be at least 1"))
	}
	if c.Duration <= 0 || c.StepDuration <= 0 {
		errs = append(errs, errors.New("-duration and -step-duration must be positive"))
	}
	if c.Senders < 1 || c.SendCallers < 1 {
		errs = append(errs, errors.New("-senders and -send-callers must be at least 1"))
	}
	if c.StreamEvents < 1 || c.BacklogEvents < 1 || c.ScaleRate < 1 {
		errs = append(errs, errors.New("-stream-events, -backlog-events and -scale-rate must be at least 1"))
	}
	if c.BacklogLatency < 0 || c.BacklogMax <= 0 {
		errs = append(errs, errors.New("-backlog-latency must not be negative and -backlog-max must be positive"))
	}
	n, err := sidecarInFlight()
	if err != nil {
		errs = append(errs, err)
	}
	c.InFlight = n
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(s string) error {
	if k, _, ok := strings.Cut(s, "="); !ok || !strings.HasPrefix(k, "CHRONOSHUB_") {
		return fmt.Errorf("%q: want CHRONOSHUB_NAME=value", s)
	}
	*l = append(*l, s)
	return nil
}
