package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/push"
)

// Subscription is a subscription declared in CHRONOSHUB_SUBSCRIPTIONS_FILE:
// created at start, with its filter; a push one is consumed by the sidecar.
type Subscription struct {
	// Name is the subscription's name.
	Name string
	// EventTypes is its event-type filter; none means every type.
	EventTypes []string
	// Push, when not nil, makes it a push subscription.
	Push *push.Target
}

// Push defaults.
const (
	defaultPushConcurrency = 1
	defaultPushTimeout     = 10 * time.Second
)

// subscriptionsUsage documents CHRONOSHUB_SUBSCRIPTIONS_FILE in --help.
const subscriptionsUsage = `A JSON file declaring subscriptions, created at start (at the oldest retained event) with the declared filter, which wins over an existing one (a narrower one moves the pending events it drops to the dead letters as filter_narrowed). A subscription with "push" is delivered by the sidecar as one POST per event to the app's URL (docs/push.md). Format: {"subscriptions": [{"name": "journal", "event_types": ["manuscript.*"]}, {"name": "php", "event_types": ["manuscript.submitted"], "push": {"url": "http://127.0.0.1:8000/chronoshub", "socket": "", "concurrency": 1, "timeout": "10s", "retry_4xx": false, "cloudevents": false, "signing_secret_file": "", "allow_remote": false}}]}. Only name and push.url are required; push.url must be on loopback unless allow_remote, or go through the unix socket "socket"; signing_secret_file holds a Standard Webhooks secret (whsec_<base64>), read at start.`

// pushJSON and subscriptionJSON are the file's shape.
type pushJSON struct {
	URL               string `json:"url"`
	Socket            string `json:"socket"`
	Concurrency       *int   `json:"concurrency"`
	Timeout           string `json:"timeout"`
	Retry4xx          bool   `json:"retry_4xx"`
	CloudEvents       bool   `json:"cloudevents"`
	SigningSecretFile string `json:"signing_secret_file"`
	AllowRemote       bool   `json:"allow_remote"`
}

type subscriptionJSON struct {
	Name       string    `json:"name"`
	EventTypes []string  `json:"event_types"`
	Push       *pushJSON `json:"push"`
}

// ParseSubscriptions reads the declarations in data, the contents of the
// file named file. Every problem is reported, each with the file, the line
// of the declaration and the field. maxConcurrency bounds a push's
// concurrency (CHRONOSHUB_MAX_IN_FLIGHT) and ackWait its timeout, which must
// be shorter.
func ParseSubscriptions(file string, data []byte, maxConcurrency int, ackWait time.Duration) ([]Subscription, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	at := func(offset int64) string {
		return fmt.Sprintf("%s:%d", file, 1+bytes.Count(data[:min(int(offset), len(data))], []byte("\n")))
	}
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%s: %w", at(se.Offset), err)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: unexpected end of file", at(int64(len(data))))
		}
		return fmt.Errorf("%s: %w", at(dec.InputOffset()), err)
	}
	expect := func(want json.Delim, what string) error {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		if tok != want {
			return fmt.Errorf("%s: want %s, found %v", at(dec.InputOffset()), what, tok)
		}
		return nil
	}
	if err := expect('{', `an object {"subscriptions": [...]}`); err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	var lines []string
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		if tok != "subscriptions" {
			return nil, fmt.Errorf("%s: unknown field %v: the file has one field, subscriptions", at(dec.InputOffset()), tok)
		}
		if seen {
			return nil, fmt.Errorf("%s: subscriptions given twice", at(dec.InputOffset()))
		}
		seen = true
		if err := expect('[', "a list of subscriptions"); err != nil {
			return nil, err
		}
		for dec.More() {
			// The offset of the element's first byte, past the comma and
			// whitespace before it.
			start := dec.InputOffset()
			for start < int64(len(data)) && strings.ContainsRune(", \t\r\n", rune(data[start])) {
				start++
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, syntax(err)
			}
			raws, lines = append(raws, raw), append(lines, at(start))
		}
		if err := expect(']', "the end of the list"); err != nil {
			return nil, err
		}
	}
	if err := expect('}', "the end of the object"); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: unexpected data after the object", at(dec.InputOffset()))
	}

	var out []Subscription
	var errs []error
	names := map[string]string{}
	for i, raw := range raws {
		where := fmt.Sprintf("%s: subscriptions[%d]", lines[i], i)
		var sj subscriptionJSON
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&sj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if sj.Name != "" {
			where += " (" + sj.Name + ")"
		}
		s, serrs := sj.validate(maxConcurrency, ackWait)
		for _, err := range serrs {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if prev, dup := names[s.Name]; dup && s.Name != "" {
			errs = append(errs, fmt.Errorf("%s: name: %s is already declared at %s", where, s.Name, prev))
		}
		names[s.Name] = lines[i]
		out = append(out, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// validate checks one declaration and returns it, with every problem.
func (sj subscriptionJSON) validate(maxConcurrency int, ackWait time.Duration) (Subscription, []error) {
	var errs []error
	s := Subscription{Name: sj.Name, EventTypes: sj.EventTypes}
	if sj.Name == "" {
		errs = append(errs, errors.New("name: required"))
	} else if _, err := eventlog.NormalizeSubscription(sj.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %s", strings.TrimPrefix(err.Error(), eventlog.ErrInvalid.Error()+": ")))
	}
	for i, t := range sj.EventTypes {
		if err := eventtype.ValidatePattern(t); err != nil {
			errs = append(errs, fmt.Errorf("event_types[%d]: %w", i, err))
		}
	}
	if sj.Push == nil {
		return s, errs
	}
	p := sj.Push
	t := &push.Target{
		Subscription: sj.Name, Types: sj.EventTypes, URL: p.URL, Socket: p.Socket, AllowRemote: p.AllowRemote,
		Concurrency: defaultPushConcurrency, Timeout: defaultPushTimeout, Retry4xx: p.Retry4xx, CloudEvents: p.CloudEvents,
	}
	if p.URL == "" {
		errs = append(errs, errors.New("push.url: required"))
	} else if err := push.CheckURL(p.URL, p.Socket, p.AllowRemote); err != nil {
		errs = append(errs, fmt.Errorf("push.url: %w", err))
	}
	if p.Concurrency != nil {
		t.Concurrency = *p.Concurrency
		if t.Concurrency < 1 || t.Concurrency > maxConcurrency {
			errs = append(errs, fmt.Errorf("push.concurrency: %d is not between 1 and CHRONOSHUB_MAX_IN_FLIGHT (%d)", t.Concurrency, maxConcurrency))
		}
	}
	if p.Timeout != "" {
		d, err := time.ParseDuration(p.Timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("push.timeout: invalid duration %q (want a number and a unit, as in 10s)", p.Timeout))
		case d <= 0:
			errs = append(errs, fmt.Errorf("push.timeout: %q must be positive", p.Timeout))
		default:
			t.Timeout = d
		}
	}
	if ackWait > 0 && t.Timeout >= ackWait {
		errs = append(errs, fmt.Errorf("push.timeout: %s is not shorter than CHRONOSHUB_ACK_WAIT (%s): the event would be offered again while its POST runs", t.Timeout, ackWait))
	}
	if p.SigningSecretFile != "" {
		b, err := os.ReadFile(p.SigningSecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("push.signing_secret_file: %w", err))
		} else if t.Secret, err = push.ParseSecret(string(b)); err != nil {
			errs = append(errs, fmt.Errorf("push.signing_secret_file: %s: %w", p.SigningSecretFile, err))
		}
	}
	s.Push = t
	return s, errs
}

// loadSubscriptions reads CHRONOSHUB_SUBSCRIPTIONS_FILE into
// c.Subscriptions and checks CHRONOSHUB_STRICT_SUBSCRIPTIONS against it.
func (c *Config) loadSubscriptions() []error {
	const label = "CHRONOSHUB_SUBSCRIPTIONS_FILE (--subscriptions-file)"
	if c.SubscriptionsFile == "" {
		if c.StrictSubscriptions {
			return []error{errors.New("CHRONOSHUB_STRICT_SUBSCRIPTIONS (--strict-subscriptions): true without " + label + ": no stream could open any subscription")}
		}
		return nil
	}
	data, err := os.ReadFile(c.SubscriptionsFile)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", label, err)}
	}
	c.Subscriptions, err = ParseSubscriptions(c.SubscriptionsFile, data, c.MaxInFlight, c.AckWait)
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var errs []error
	for _, e := range list {
		errs = append(errs, fmt.Errorf("%s: %w", label, e))
	}
	return errs
}
