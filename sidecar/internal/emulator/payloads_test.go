package emulator_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// TestDefaultPayloadMatchesExamples keeps the embedded samples identical to examples/events.
func TestDefaultPayloadMatchesExamples(t *testing.T) {
	for _, tt := range []struct {
		eventType string
		fields    []string
	}{
		{"manuscript.submitted", []string{"manuscriptId", "title", "submittedAt"}},
		{"manuscript.status.updated", []string{"manuscriptId", "status", "previousStatus", "updatedAt"}},
	} {
		t.Run(tt.eventType, func(t *testing.T) {
			got := emulator.DefaultPayload(tt.eventType)
			want, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "events", tt.eventType+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("DefaultPayload(%q) = %s, want examples/events/%s.json byte for byte: %s", tt.eventType, got, tt.eventType, want)
			}
			var v map[string]string
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatalf("DefaultPayload(%q) is not a JSON object of strings: %v", tt.eventType, err)
			}
			for _, f := range tt.fields {
				if v[f] == "" {
					t.Errorf("DefaultPayload(%q) has no %s", tt.eventType, f)
				}
			}
			if len(v) != len(tt.fields) {
				t.Errorf("DefaultPayload(%q) has fields %v, want exactly %v", tt.eventType, v, tt.fields)
			}
		})
	}

	t.Run("non-ASCII title", func(t *testing.T) {
		p := emulator.DefaultPayload("manuscript.submitted")
		if !bytes.Contains(p, []byte("𝔸")) || !bytes.Contains(p, []byte("é")) {
			t.Errorf("manuscript.submitted title should contain 𝔸 (outside the BMP) and é: %s", p)
		}
	})

	t.Run("caller owns the result", func(t *testing.T) {
		p := emulator.DefaultPayload("manuscript.submitted")
		p[0] = 'X'
		if emulator.DefaultPayload("manuscript.submitted")[0] != '{' {
			t.Errorf("DefaultPayload returned shared memory")
		}
	})

	for _, unknown := range []string{"", "journal.created", "../events/manuscript.submitted", "manuscript.submitted/x", "*"} {
		t.Run("unknown "+unknown, func(t *testing.T) {
			if got := emulator.DefaultPayload(unknown); got != nil {
				t.Errorf("DefaultPayload(%q) = %s, want nil", unknown, got)
			}
		})
	}
}

// TestDefaultEventTypesAreTheExamples: the catalogue is the event types of
// examples/events, one per sample file.
func TestDefaultEventTypesAreTheExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "examples", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	if got := emulator.DefaultEventTypes(); !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("DefaultEventTypes() = %q, want the types of examples/events %q", got, want)
	}
	for _, typ := range emulator.DefaultEventTypes() {
		if emulator.DefaultPayload(typ) == nil {
			t.Errorf("DefaultPayload(%q) = nil for a catalogue type", typ)
		}
	}
}
