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

// DefaultPayload returns a sample payload for eventType (one of DefaultEventTypes), or nil
// when there is none. The caller owns the result.
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

// DefaultEventTypes returns the catalogue: the event types that have a sample payload
// (examples/events), sorted. They are what the emulate and dev commands authorise a
// partner to send unless told otherwise. The caller owns the result.
func DefaultEventTypes() []string {
	entries, err := samples.ReadDir("events")
	if err != nil {
		// The directory is embedded: it always reads.
		panic(err)
	}
	var types []string
	for _, e := range entries {
		if t, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			types = append(types, t)
		}
	}
	return types
}
