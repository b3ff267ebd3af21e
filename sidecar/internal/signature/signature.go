// Package signature signs and verifies ChronosHub webhook requests.
//
// ChronosHub computes HMAC-SHA256 over the message
//
//	{payload_length}:{payload}|{event_type}|{event_id}|{timestamp}
//
// and sends it lowercase hex-encoded in the X-Hub-Signature-256 header as
// "sha256=<hex>". {payload_length} is the character length of the body
// decoded as UTF-8, and ChronosHub's two reference implementations disagree
// on what a character is: C# string.Length counts UTF-16 code units, Python
// len(str) counts code points. They differ only for characters outside the
// Basic Multilingual Plane (emoji, mathematical alphanumerics such as 𝔸), so
// [Verify] accepts either. The byte length is never accepted.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"unicode/utf8"
)

// Header names and the User-Agent ChronosHub sends with every webhook.
const (
	HeaderSignature = "X-Hub-Signature-256"                  // HeaderSignature carries "sha256=<hex>".
	HeaderEventType = "X-Event-Type"                         // HeaderEventType carries the event type, e.g. manuscript.submitted.
	HeaderEventID   = "X-Event-Id"                           // HeaderEventID carries the event's UUID.
	HeaderTimestamp = "X-Timestamp"                          // HeaderTimestamp carries the Unix time in seconds of signing.
	UserAgent       = "ChronosHub-Integration-Framework/1.0" // UserAgent is ChronosHub's User-Agent header value.
)

// Sentinel errors returned by [Verify]. They never contain a secret, the
// received header or the expected MAC.
var (
	// ErrMissing means the signature header value is empty.
	ErrMissing = errors.New("signature: missing " + HeaderSignature)
	// ErrMalformed means the header is not "sha256=" followed by 64 lowercase hex digits.
	ErrMalformed = errors.New("signature: malformed " + HeaderSignature + `, want "sha256=" and 64 lowercase hex digits`)
	// ErrInvalidUTF8 means the body is not valid UTF-8, so it has no character length.
	ErrInvalidUTF8 = errors.New("signature: payload is not valid UTF-8")
	// ErrMismatch means the header is well-formed but matches no secret.
	ErrMismatch = errors.New("signature: mismatch")
)

const (
	prefix  = "sha256="
	hexSize = 2 * sha256.Size
)

// Sign returns the X-Hub-Signature-256 header value "sha256=<hex>" as
// ChronosHub's C# code computes it, with the payload length in UTF-16 code
// units. The payload should be valid UTF-8: [Verify] rejects any other body,
// so a signature over one never verifies.
func Sign(secret, payload []byte, eventType, eventID, timestamp string) string {
	_, units, _ := lengths(payload)
	return sign(secret, payload, units, eventType, eventID, timestamp)
}

// SignCodePoints is [Sign] with the payload length in Unicode code points, as
// the Python reference computes it. It exists for tests and the emulator.
func SignCodePoints(secret, payload []byte, eventType, eventID, timestamp string) string {
	points, _, _ := lengths(payload)
	return sign(secret, payload, points, eventType, eventID, timestamp)
}

func sign(secret, payload []byte, length int, eventType, eventID, timestamp string) string {
	mac := hmac.New(sha256.New, secret)
	writeMessage(mac, length, payload, suffix(eventType, eventID, timestamp))
	var out [len(prefix) + hexSize]byte
	copy(out[:], prefix)
	hex.Encode(out[len(prefix):], mac.Sum(nil))
	return string(out[:])
}

// Verify reports whether header is a valid signature of the request under
// any of secrets; callers rotating secrets pass the current and the previous
// one. It accepts the payload length counted in UTF-16 code units (C#) or in
// code points (Python). The comparison is constant-time.
//
// Verify returns nil, or an error for which errors.Is reports one of
// [ErrMissing], [ErrMalformed], [ErrInvalidUTF8] or [ErrMismatch], checked in
// that order. Empty secrets are skipped, since anyone can compute an HMAC
// under an empty key; with no usable secret Verify returns [ErrMismatch].
func Verify(secrets [][]byte, payload []byte, eventType, eventID, timestamp, header string) error {
	want, err := parseHeader(header)
	if err != nil {
		return err
	}
	points, units, ok := lengths(payload)
	if !ok {
		return ErrInvalidUTF8
	}
	var (
		msgSuffix []byte
		sum       [sha256.Size]byte
	)
	for _, secret := range secrets {
		if len(secret) == 0 {
			continue
		}
		if msgSuffix == nil {
			msgSuffix = suffix(eventType, eventID, timestamp)
		}
		mac := hmac.New(sha256.New, secret)
		writeMessage(mac, units, payload, msgSuffix)
		if hmac.Equal(mac.Sum(sum[:0]), want[:]) {
			return nil
		}
		if points == units {
			continue
		}
		mac.Reset()
		writeMessage(mac, points, payload, msgSuffix)
		if hmac.Equal(mac.Sum(sum[:0]), want[:]) {
			return nil
		}
	}
	return ErrMismatch
}

// writeMessage streams "{length}:{payload}{suffix}" into mac without copying
// the payload.
func writeMessage(mac hash.Hash, length int, payload, suffix []byte) {
	var buf [24]byte
	head := strconv.AppendInt(buf[:0], int64(length), 10)
	head = append(head, ':')
	mac.Write(head)
	mac.Write(payload)
	mac.Write(suffix)
}

// suffix returns "|{event_type}|{event_id}|{timestamp}".
func suffix(eventType, eventID, timestamp string) []byte {
	b := make([]byte, 0, 3+len(eventType)+len(eventID)+len(timestamp))
	b = append(b, '|')
	b = append(b, eventType...)
	b = append(b, '|')
	b = append(b, eventID...)
	b = append(b, '|')
	b = append(b, timestamp...)
	return b
}

// lengths returns the length of p in code points and in UTF-16 code units,
// in one pass, and whether p is valid UTF-8. For invalid input each invalid
// byte counts as one unit of both.
func lengths(p []byte) (points, units int, ok bool) {
	ok = true
	pairs := 0 // code points outside the BMP: two UTF-16 units each
	i := 0
	for i < len(p) {
		// ASCII fast path, eight bytes at a time.
		for i+8 <= len(p) {
			if binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 != 0 {
				break
			}
			i += 8
			points += 8
		}
		if i >= len(p) {
			break
		}
		if p[i] < utf8.RuneSelf {
			i++
			points++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			ok = false
		}
		if size == 4 {
			pairs++
		}
		i += size
		points++
	}
	return points, points + pairs, ok
}

// parseHeader decodes the MAC from an X-Hub-Signature-256 value. Unlike the
// reference code it accepts only the exact form ChronosHub sends.
func parseHeader(header string) (mac [sha256.Size]byte, err error) {
	if header == "" {
		return mac, ErrMissing
	}
	if len(header) != len(prefix)+hexSize || header[:len(prefix)] != prefix {
		return mac, ErrMalformed
	}
	digits := header[len(prefix):]
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if ('0' > c || c > '9') && ('a' > c || c > 'f') {
			return mac, ErrMalformed
		}
	}
	if _, err := hex.Decode(mac[:], []byte(digits)); err != nil {
		return mac, ErrMalformed
	}
	return mac, nil
}
