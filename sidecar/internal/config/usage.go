package config

import (
	"fmt"
	"io"
	"strings"
)

// usageIntro opens --help.
const usageIntro = `Usage: chronoshub-sidecar serve [flags]

Runs the sidecar: receives ChronosHub's signed webhooks, keeps the events
until the app acknowledges them, and forwards the app's events to ChronosHub.

Every setting is a flag and an environment variable. A flag given on the
command line wins over the variable, and the variable wins over the default;
an empty variable counts as unset. Secrets are never flags: set them in the
environment, or give a file, which is re-read when it changes.

Signals: SIGTERM or SIGINT drains and stops (a second one stops at once);
SIGHUP re-reads the credential and certificate files at once and keeps
running (other settings need a restart).
`

// usageWidth is where --help wraps descriptions.
const usageWidth = 78

// writeUsage writes --help: every setting with its flag, variable, meaning and
// default. It shows defaults only, never a value read from the environment.
func writeUsage(w io.Writer, table []setting) {
	var b strings.Builder
	b.WriteString(usageIntro)
	group := ""
	for _, s := range table {
		if s.group != group {
			group = s.group
			fmt.Fprintf(&b, "\n%s:\n", group)
		}
		head := "  "
		if s.secret {
			head += s.env + " (environment only: a secret is never a flag)"
		} else {
			head += "--" + s.flagName()
			if k := s.value.kind(); k != "" {
				head += " " + k
			}
			head += "  $" + s.env
		}
		b.WriteString(head + "\n")
		text := s.usage
		switch {
		case s.note != "":
			text += " (" + s.note + ")"
		case s.def != "":
			text += " (default " + s.def + ")"
		}
		for _, line := range wrap(text, usageWidth-6) {
			b.WriteString("      " + line + "\n")
		}
	}
	b.WriteString(tracingUsage)
	io.WriteString(w, b.String())
}

// tracingUsage documents the OpenTelemetry variables, which package tracing
// reads with OpenTelemetry's own names and meaning.
const tracingUsage = `
Tracing (OpenTelemetry; standard OTEL_* variables, no flags). W3C Trace Context
is carried without an exporter too, as a service mesh carries it: ChronosHub's
traceparent reaches the app with the event (Event.traceparent), and the app's
reaches ChronosHub on SendEvent.
  $OTEL_EXPORTER_OTLP_ENDPOINT, $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
      Where to export spans with OTLP; setting one turns recording on. The
      webhook's span is then a new trace linked to ChronosHub's traceparent.
  $OTEL_EXPORTER_OTLP_PROTOCOL, $OTEL_EXPORTER_OTLP_HEADERS, $OTEL_EXPORTER_OTLP_TIMEOUT,
  $OTEL_EXPORTER_OTLP_INSECURE, $OTEL_SERVICE_NAME, $OTEL_RESOURCE_ATTRIBUTES,
  $OTEL_TRACES_SAMPLER, $OTEL_TRACES_SAMPLER_ARG, $OTEL_SDK_DISABLED
      As OpenTelemetry defines them (grpc or http/protobuf; OTEL_SDK_DISABLED=true
      keeps recording off).
  $OTEL_PROPAGATORS
      tracecontext (the default) or none: none carries no trace context
      (baggage is accepted and not carried).
`

// wrap breaks text into lines of at most width bytes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
