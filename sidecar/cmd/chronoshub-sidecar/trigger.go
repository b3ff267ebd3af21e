package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/credentials"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
)

const triggerUsage = `Usage: chronoshub-sidecar trigger [flags] [URL]

Sends one webhook to URL (default https://127.0.0.1:8443/webhook) exactly as
ChronosHub does: every header of ChronosHub's reference, signed with the
webhook secret, a new X-Timestamp per attempt and the same X-Event-Id. It
prints each attempt and exits 0 when the webhook was accepted (2xx), 1
otherwise.

The secret comes from CHRONOSHUB_WEBHOOK_SECRET (the first one, when it lists
several) or --secret-file. The payload is read from --payload-file ("-" for
stdin); without one, a sample payload for the event type is sent.

Flags:
`

const defaultTriggerURL = "https://127.0.0.1:8443/webhook"

func runTrigger(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trigger")
	eventType := fs.String("type", "manuscript.submitted", "event type (X-Event-Type)")
	payloadFile := fs.String("payload-file", "", `file holding the JSON payload, "-" for stdin; empty sends a sample for the type`)
	eventID := fs.String("event-id", "", "X-Event-Id; empty means a new UUID")
	secretFile := fs.String("secret-file", "", "file holding the webhook secret (instead of CHRONOSHUB_WEBHOOK_SECRET)")
	retries := fs.Int("retries", 0, "retries after a failed attempt (non-2xx or no answer), as ChronosHub makes up to 5")
	retryWait := fs.Duration("retry-wait", time.Second, "wait before the first retry; doubles each retry")
	caFile := fs.String("ca-file", "", "PEM certificates to trust (e.g. the dev playground's self-signed certificate)")
	insecure := fs.Bool("insecure-skip-verify", false, "do not verify the server's TLS certificate (tests only)")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each attempt")
	if err := parseFlags(fs, triggerUsage, args, stdout); err != nil {
		return err
	}
	url := defaultTriggerURL
	switch fs.NArg() {
	case 0:
	case 1:
		url = fs.Arg(0)
	default:
		return fmt.Errorf("trigger: one URL expected, got %q", fs.Args())
	}

	var problems []error
	if err := eventtype.Validate(*eventType); err != nil {
		problems = append(problems, fmt.Errorf("--type: %w", err))
	}
	if *eventID == "" {
		*eventID = uuid.NewString()
	}
	secret, err := triggerSecret(getenv("CHRONOSHUB_WEBHOOK_SECRET"), *secretFile)
	if err != nil {
		problems = append(problems, err)
	}
	payload, err := readPayload(*payloadFile, *eventType)
	if err != nil {
		problems = append(problems, err)
	}
	client, err := webhookClient(*caFile, *insecure)
	if err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	client.Timeout = *timeout

	wait := *retryWait
	for attempt := 1; ; attempt++ {
		status, body, err := emulator.SendWebhook(ctx, client, url, []byte(secret), *eventType, payload, *eventID, time.Now())
		if err != nil {
			fmt.Fprintf(stdout, "attempt %d: %s %s: no answer: %v\n", attempt, *eventType, *eventID, err)
		} else {
			fmt.Fprintf(stdout, "attempt %d: %s %s: HTTP %d %s\n", attempt, *eventType, *eventID, status, strings.TrimSpace(string(body)))
			if status >= 200 && status < 300 {
				fmt.Fprintf(stdout, "accepted: event %s\n", *eventID)
				return nil
			}
		}
		if attempt > *retries {
			fmt.Fprintf(stdout, "not accepted after %d attempt(s)\n", attempt)
			return errExitStatus
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// triggerSecret returns the first webhook secret of the environment value
// or of the file (several are separated by commas or newlines, as for
// serve); exactly one must be given.
func triggerSecret(envValue, file string) (string, error) {
	var src *credentials.Source
	switch {
	case envValue != "" && file != "":
		return "", errors.New("CHRONOSHUB_WEBHOOK_SECRET and --secret-file are both set; give one")
	case file != "":
		var err error
		if src, err = credentials.NewFile("webhook_secret", file); err != nil {
			return "", fmt.Errorf("--secret-file: %w", err)
		}
	default:
		src = credentials.NewValue("webhook_secret", envValue)
	}
	if v := src.Values(); len(v) > 0 {
		return v[0].Reveal(), nil
	}
	return "", errors.New("no webhook secret: set CHRONOSHUB_WEBHOOK_SECRET or --secret-file")
}

func readPayload(file, eventType string) ([]byte, error) {
	switch file {
	case "":
		if p := emulator.DefaultPayload(eventType); p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("no sample payload for %s: give --payload-file", eventType)
	case "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("read payload from stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--payload-file: %w", err)
	}
	return b, nil
}
