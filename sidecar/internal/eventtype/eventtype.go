// Package eventtype defines the syntax of ChronosHub event types, shared by
// the webhook, the event log, the configuration and the checks of outgoing
// events: dot-separated segments of [A-Za-z0-9_-] that map one-to-one onto
// NATS subject suffixes, with NATS-style "*" and ">" wildcards in patterns.
package eventtype

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest event type or pattern, in bytes.
const MaxLen = 255

// Validate reports whether t is a valid event type: 1 to [MaxLen]
// bytes of dot-separated segments, each one or more of [A-Za-z0-9_-], so
// that it maps one-to-one onto a NATS subject suffix. The error says what is
// wrong and quotes at most a prefix of t.
func Validate(t string) error {
	if problem := checkName(t, false); problem != "" {
		return fmt.Errorf("event type %s: %s", Quote(t), problem)
	}
	return nil
}

// ValidatePattern reports whether p is a valid subscription filter: the
// syntax of [Validate], except that a segment may be "*" (exactly one
// segment) and the last segment may be ">" (one or more segments).
func ValidatePattern(p string) error {
	if problem := checkName(p, true); problem != "" {
		return fmt.Errorf("event type pattern %s: %s", Quote(p), problem)
	}
	return nil
}

// Match reports whether the event type t matches the pattern p, where
// a "*" segment matches exactly one segment and a trailing ">" matches one or
// more. Matching is case-sensitive. It reports false if t is not a valid type
// or p is not a valid pattern.
func Match(p, t string) bool {
	if checkName(p, true) != "" || checkName(t, false) != "" {
		return false
	}
	for {
		ps, prest, pmore := strings.Cut(p, ".")
		if ps == ">" {
			return true // t has at least one segment left: it is non-empty here.
		}
		ts, trest, tmore := strings.Cut(t, ".")
		if ps != "*" && ps != ts {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		p, t = prest, trest
	}
}

// checkName returns what is wrong with s as an event type (or, if pattern,
// as a pattern), or "" if nothing is.
func checkName(s string, pattern bool) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > MaxLen:
		return fmt.Sprintf("is %d bytes, longer than %d", len(s), MaxLen)
	}
	segment := 1
	for rest := s; ; segment++ {
		seg, after, more := strings.Cut(rest, ".")
		switch {
		case seg == "":
			return fmt.Sprintf("segment %d is empty", segment)
		case pattern && seg == "*":
		case pattern && seg == ">":
			if more {
				return fmt.Sprintf(`segment %d: ">" is allowed only as the last segment`, segment)
			}
		default:
			for i := 0; i < len(seg); i++ {
				if !isNameByte(seg[i]) {
					r, _ := utf8.DecodeRuneInString(seg[i:])
					return fmt.Sprintf("segment %d: character %q is not allowed, want A-Z a-z 0-9 _ -", segment, r)
				}
			}
		}
		if !more {
			return ""
		}
		rest = after
	}
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// Quote returns s quoted, cut to a short prefix so that errors do not echo
// huge input.
func Quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}
