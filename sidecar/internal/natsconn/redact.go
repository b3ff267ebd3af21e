package natsconn

import "strings"

// Redact returns a NATS server URL, or a comma-separated list of them, with
// the user information of every URL (user and password, or a token, which
// NATS also takes in that place) replaced by "REDACTED". Every error and log
// line that names a NATS URL goes through Redact. It works on the text, so
// that a URL net/url cannot parse is redacted too.
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
	end := len(u)
	if i := strings.IndexAny(u[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndex(u[start:end], "@")
	if at < 0 {
		return u
	}
	return u[:start] + "REDACTED" + u[start+at:]
}
