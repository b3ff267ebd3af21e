// Package tracing is the sidecar's OpenTelemetry tracing: W3C Trace Context
// propagation and export of spans over OTLP, configured by the standard
// OTEL_* environment variables.
//
// [Setup] returns a *[Tracer]: one that records spans when an exporter is
// configured, else one that only carries the trace context across the
// sidecar ([Propagating]), or nil when OTEL_PROPAGATORS is "none". Every
// method of *Tracer works on a nil receiver and then does nothing (the
// wrappers return what they are given), so the components take a *Tracer in
// their Options and pay one nil check on the hot path when it is nil.
//
// The spans follow OpenTelemetry's semantic conventions:
//   - a server span "POST /webhook" for each webhook, the root of a new
//     trace linked to the traceparent ChronosHub sends (the listener is
//     public and the request not yet authenticated), whose context is stored
//     with the event;
//   - a consumer span "receive <subscription>" each time an event is handed
//     to the app, child of the webhook's span; the event the app receives
//     carries this span's context in Event.traceparent;
//   - gRPC server spans from otelgrpc (SendEvent continues the app's trace
//     from its traceparent metadata, or from the HTTP header through the REST
//     gateway);
//   - an HTTP client span "POST" from otelhttp for each request to
//     ChronosHub, which carries the traceparent header.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultServiceName is the service.name of the sidecar's spans unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names another.
const DefaultServiceName = "chronoshub-sidecar"

// Setup reads the OTEL_* variables through getenv and, when they ask for
// tracing, starts an OTLP exporter and returns the Tracer that uses it, and a
// shutdown function that flushes the spans still buffered (call it once, with
// a deadline, after the servers have stopped). When they do not, it returns
// a [Propagating] Tracer, which records nothing but carries the trace
// context, or nil when OTEL_PROPAGATORS is "none"; the shutdown then does
// nothing.
//
// OTEL_PROPAGATORS, a comma-separated list, may name "tracecontext" (the
// default; W3C Trace Context is the only format carried) and "baggage"
// (accepted, not carried), or be "none", which an exporter cannot be
// combined with.
//
// Tracing is on when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT is set, unless OTEL_SDK_DISABLED is "true" or
// OTEL_TRACES_EXPORTER is "none". Also read: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL
// ("grpc", the default, or "http/protobuf"), _HEADERS, _TIMEOUT, _INSECURE,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG. The batching variables (OTEL_BSP_*) and the
// exporter's certificate variables are read by the OpenTelemetry SDK from the
// process environment. Every invalid value is reported, together.
func Setup(ctx context.Context, getenv func(string) string) (*Tracer, func(context.Context) error, error) {
	nop := func(context.Context) error { return nil }
	cfg, err := parseEnv(getenv)
	if err != nil {
		return nil, nop, fmt.Errorf("tracing: %w", err)
	}
	if !cfg.on {
		if !cfg.propagate {
			return nil, nop, nil
		}
		return Propagating(), nop, nil
	}
	exp, err := cfg.exporter(ctx)
	if err != nil {
		return nil, nop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(cfg.resource...))
	if err != nil {
		return nil, nop, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(cfg.sampler),
	)
	return New(tp), tp.Shutdown, nil
}

// CheckEnv returns every invalid OTEL_* value that Setup would refuse, as
// Setup reports them, without starting anything: a command reports them
// together with the rest of its configuration's problems before it starts.
// It returns nil when Setup would accept the variables.
func CheckEnv(getenv func(string) string) error {
	if _, err := parseEnv(getenv); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	return nil
}

// config is what parseEnv found.
type config struct {
	on        bool // export spans
	propagate bool // carry W3C Trace Context
	protocol  string
	endpoint  string // a URL
	headers   map[string]string
	timeout   time.Duration
	insecure  *bool
	resource  []attribute.KeyValue
	sampler   sdktrace.Sampler
}

// parseEnv reads the variables Setup documents; it reports every invalid one.
func parseEnv(getenv func(string) string) (config, error) {
	var (
		cfg  config
		errs []error
	)
	// signal returns the traces-specific variable, or the general one.
	signal := func(suffix string) (name, value string) {
		name = "OTEL_EXPORTER_OTLP_TRACES_" + suffix
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return name, v
		}
		name = "OTEL_EXPORTER_OTLP_" + suffix
		return name, strings.TrimSpace(getenv(name))
	}

	cfg.propagate = true
	propagators := strings.TrimSpace(getenv("OTEL_PROPAGATORS"))
	for p := range strings.SplitSeq(propagators, ",") {
		switch strings.TrimSpace(p) {
		case "", "tracecontext", "baggage":
		case "none":
			cfg.propagate = false
		default:
			errs = append(errs, fmt.Errorf("OTEL_PROPAGATORS=%q: only tracecontext, baggage and none are supported", propagators))
		}
	}
	if !cfg.propagate && propagators != "none" {
		errs = append(errs, fmt.Errorf("OTEL_PROPAGATORS=%q: none goes alone", propagators))
	}
	disabled := strings.TrimSpace(getenv("OTEL_SDK_DISABLED"))
	switch strings.ToLower(disabled) {
	case "", "false":
	case "true":
		return cfg, errors.Join(errs...)
	default:
		errs = append(errs, fmt.Errorf("OTEL_SDK_DISABLED=%q: want true or false", disabled))
	}
	switch exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exporter {
	case "", "otlp":
	case "none":
		return cfg, errors.Join(errs...)
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exporter))
	}
	name, endpoint := signal("ENDPOINT")
	if endpoint == "" {
		return cfg, errors.Join(errs...)
	}
	cfg.on = true
	if !cfg.propagate {
		errs = append(errs, fmt.Errorf("OTEL_PROPAGATORS=none with %s: the sidecar's spans need tracecontext to form traces", name))
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The value is not quoted: a URL may hold credentials.
		errs = append(errs, fmt.Errorf("%s: want an http or https URL with a host, e.g. http://otel-collector:4317", name))
	}
	general := name == "OTEL_EXPORTER_OTLP_ENDPOINT"
	name, cfg.protocol = signal("PROTOCOL")
	switch cfg.protocol {
	case "":
		cfg.protocol = "grpc"
	case "grpc", "http/protobuf":
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want grpc or http/protobuf", name, cfg.protocol))
	}
	if u != nil {
		if general && cfg.protocol == "http/protobuf" {
			// OTLP/HTTP: the general endpoint is a base URL, the signal's
			// path is appended to it; a traces endpoint is used as it is.
			u = u.JoinPath("v1", "traces")
		}
		cfg.endpoint = u.String()
	}
	if name, v := signal("HEADERS"); v != "" {
		h, err := parseList(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err)) // the value may hold a secret
		}
		cfg.headers = h
	}
	if name, v := signal("TIMEOUT"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want milliseconds", name, v))
		}
		cfg.timeout = time.Duration(ms) * time.Millisecond
	}
	if name, v := signal("INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, v))
		}
		cfg.insecure = &b
	}
	serviceName := DefaultServiceName
	if v := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); v != "" {
		attrs, err := parseList(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err))
		}
		for k, v := range attrs {
			if k == "service.name" {
				serviceName = v
				continue
			}
			cfg.resource = append(cfg.resource, attribute.String(k, v))
		}
	}
	if v := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); v != "" {
		serviceName = v
	}
	cfg.resource = append(cfg.resource, attribute.String("service.name", serviceName))
	sampler, err := parseSampler(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG"))
	if err != nil {
		errs = append(errs, err)
	}
	cfg.sampler = sampler
	return cfg, errors.Join(errs...)
}

// parseList parses the W3C Baggage-like list of OTEL_*_HEADERS and
// OTEL_RESOURCE_ATTRIBUTES: key=value pairs separated by commas, values
// percent-encoded. Errors never quote a value.
func parseList(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("item %d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %q is not percent-encoded", k)
		}
		out[k] = dv
	}
	return out, nil
}

// parseSampler maps OTEL_TRACES_SAMPLER and its argument to a sampler; the
// default is parentbased_always_on.
func parseSampler(name, arg string) (sdktrace.Sampler, error) {
	name, arg = strings.TrimSpace(name), strings.TrimSpace(arg)
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a probability from 0 to 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio()
		return sdktrace.TraceIDRatioBased(r), err
	case "parentbased_traceidratio":
		r, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), err
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample()), fmt.Errorf("OTEL_TRACES_SAMPLER=%q: not a supported sampler", name)
}

// exporter starts the OTLP exporter cfg describes. It does not connect yet.
func (cfg config) exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if cfg.protocol == "http/protobuf" {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.endpoint)}
		if cfg.headers != nil {
			opts = append(opts, otlptracehttp.WithHeaders(cfg.headers))
		}
		if cfg.timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(cfg.timeout))
		}
		if cfg.insecure != nil && *cfg.insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.endpoint)}
	if cfg.headers != nil {
		opts = append(opts, otlptracegrpc.WithHeaders(cfg.headers))
	}
	if cfg.timeout > 0 {
		opts = append(opts, otlptracegrpc.WithTimeout(cfg.timeout))
	}
	if cfg.insecure != nil && *cfg.insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return otlptracegrpc.New(ctx, opts...)
}
