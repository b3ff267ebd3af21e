package emulator

import (
	"embed"
	"io/fs"
	"strings"
)

// samples are copies of examples/events/*.json; TestDefaultPayloadMatchesExamples keeps them
// identical.
//
//go:embed events/*.json
var samples embed.FS

// DefaultPayload returns a sample payload for eventType (manuscript.submitted or
// manuscript.status.updated), or nil when there is none. The caller owns the result.
func DefaultPayload(eventType string) []byte {
	name := "events/" + eventType + ".json"
	if strings.Contains(eventType, "/") || !fs.ValidPath(name) {
		return nil
	}
	b, err := samples.ReadFile(name)
	if err != nil {
		return nil
	}
	return b
}
