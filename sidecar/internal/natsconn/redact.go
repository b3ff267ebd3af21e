package natsconn

import (
	"errors"
	"net/url"
	"strings"
)

// Redact returns a NATS server URL, or a comma-separated list of them, with
// the user information of every URL (user and password, or a token, which
// NATS also takes in that place) replaced by "REDACTED". Every error and log
// line that names a NATS URL goes through Redact. It works on the text, so
// that a URL net/url cannot parse is redacted too.
//
// The user information ends at the last '@' of a URL: a password may hold
// '/', '?', '#' or '@' that were not percent-encoded, and a NATS URL has no
// use for a path or query, so a URL whose path or query holds an '@' is
// redacted up to it rather than risk showing a password.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

func redactOne(u string) string {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(u[start:], "@")
	if at < 0 {
		return u
	}
	return u[:start] + "REDACTED" + u[start+at:]
}

// RedactError returns err's text with every URL of urls, and its user
// information, replaced as Redact does. A URL that net/url cannot parse
// makes an error that names no part of it: its parse error quotes the
// offending characters, which may be the password's. The result does not
// wrap err, whose own text may hold the password.
func RedactError(urls string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		return errors.New("a NATS URL cannot be parsed: percent-encode the special characters of its user name and password ('%' as %25, '/' as %2F, '?' as %3F, '#' as %23, '@' as %40)")
	}
	msg := err.Error()
	for _, p := range strings.Split(urls, ",") {
		p = strings.TrimSpace(p)
		r := redactOne(p)
		if p == "" || p == r {
			continue
		}
		msg = strings.ReplaceAll(msg, p, r)
		// The user information on its own, as some errors quote it.
		start := 0
		if i := strings.Index(p, "://"); i >= 0 {
			start = i + len("://")
		}
		if info := p[start : start+strings.LastIndex(p[start:], "@")]; len(info) >= 4 {
			msg = strings.ReplaceAll(msg, info, "REDACTED")
		}
	}
	return errors.New(msg)
}
