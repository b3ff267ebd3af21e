package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
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
	RecoveryEvents int
	StreamEvents   int
	Profile        bool
	Out            string
	Bin            string
	Keep           bool
	Only           map[string]bool // sections to run; empty runs all
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("chronoshub-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{Args: args}
	fs.BoolVar(&c.Quick, "quick", false, "smoke run (<60 s): 1 run of 1 s each, 10,000 events for recovery, 5,000 for the stream drain; explicit flags still win")
	fs.IntVar(&c.Runs, "runs", 3, "runs per figure; each figure is the median with min–max")
	fs.DurationVar(&c.Duration, "duration", 3*time.Second, "measured duration of each load run")
	fs.DurationVar(&c.Warmup, "warmup", 500*time.Millisecond, "unmeasured load before each keep-alive run (connections, TLS, caches)")
	fs.IntVar(&c.Senders, "senders", 32, "concurrent webhook senders (ingest and end to end)")
	fs.IntVar(&c.SendCallers, "send-callers", 8, "concurrent SendEvent callers for the throughput ratio")
	rates := fs.String("rates", "1000,5000", "fixed offered rates (events/s) of the end-to-end latency runs")
	fs.DurationVar(&c.StepDuration, "step-duration", 2*time.Second, "duration of each rate step when searching the highest rate held")
	fs.DurationVar(&c.StepP99, "step-p99", 50*time.Millisecond, "the end-to-end p99 a rate step must stay under to count as held")
	fs.IntVar(&c.MaxStepRate, "max-step-rate", 64000, "stop the rate search here")
	fs.IntVar(&c.RecoveryEvents, "recovery-events", 100000, "events in the log before the SIGKILL of the recovery measurement")
	fs.IntVar(&c.StreamEvents, "stream-events", 20000, "events preloaded for the stream drain throughput")
	fs.BoolVar(&c.Profile, "profile", true, "CPU-profile the ingest path (in a child process) when the ingest target is missed")
	fs.StringVar(&c.Out, "out", "docs", "directory for benchmarks.md and the SVG charts")
	fs.StringVar(&c.Bin, "bin", "", "a prebuilt chronoshub-sidecar binary; empty builds ./sidecar/cmd/chronoshub-sidecar")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (data dirs, logs, profiles)")
	only := fs.String("only", "", "comma-separated sections to run (ingest,e2e,send,footprint,stream,profile); empty runs all")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Quick {
		quick := map[string]func(){
			"runs":            func() { c.Runs = 1 },
			"duration":        func() { c.Duration = time.Second },
			"warmup":          func() { c.Warmup = 200 * time.Millisecond },
			"step-duration":   func() { c.StepDuration = time.Second },
			"recovery-events": func() { c.RecoveryEvents = 10000 },
			"stream-events":   func() { c.StreamEvents = 5000 },
			"max-step-rate":   func() { c.MaxStepRate = 16000 },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
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
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			errs = append(errs, fmt.Errorf("-rates: %q is not a positive integer", s))
			continue
		}
		c.Rates = append(c.Rates, r)
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
	if c.RecoveryEvents < 1 || c.StreamEvents < 1 {
		errs = append(errs, errors.New("-recovery-events and -stream-events must be at least 1"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}
