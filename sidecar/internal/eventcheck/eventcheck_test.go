package eventcheck_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventcheck"
)

func newChecker(t *testing.T, opts eventcheck.Options) *eventcheck.Checker {
	t.Helper()
	c, err := eventcheck.New(opts)
	if err != nil {
		t.Fatalf("New(%+v) = %v", opts, err)
	}
	return c
}

const validSubmitted = `{"manuscriptId":"MS-2026-001","title":"Example Manuscript","submittedAt":"2026-02-26T12:00:00Z"}`

func TestCheck(t *testing.T) {
	c := newChecker(t, eventcheck.Options{
		AllowedTypes:    []string{"manuscript.*", "review.>"},
		SchemaDir:       filepath.Join("testdata", "schemas"),
		MaxPayloadBytes: 4096,
	})
	tests := []struct {
		name      string
		eventType string
		payload   string
		want      []eventcheck.Violation
	}{
		{name: "valid with schema", eventType: "manuscript.submitted", payload: validSubmitted},
		{name: "valid without schema", eventType: "manuscript.accepted", payload: `{"any":"thing"}`},
		{name: "valid deep pattern", eventType: "review.report.submitted", payload: `[1,2]`},
		{name: "valid with $ref", eventType: "manuscript.submitted",
			payload: `{"manuscriptId":"MS-2026-001","title":"t","submittedAt":"x","authors":[{"name":"Zoë"}]}`},
		{name: "empty object without schema", eventType: "manuscript.accepted", payload: `{}`},
		{name: "bad type", eventType: "manuscript..x", payload: `{}`, want: []eventcheck.Violation{
			{"type", `event type "manuscript..x": segment 2 is empty`}}},
		{name: "not allowed", eventType: "invoice.paid", payload: `{}`, want: []eventcheck.Violation{
			{"type", `event type "invoice.paid" is not allowed`}}},
		{name: "pattern needs a segment", eventType: "review", payload: `{}`, want: []eventcheck.Violation{
			{"type", `event type "review" is not allowed`}}},
		{name: "empty payload", eventType: "manuscript.accepted", payload: "", want: []eventcheck.Violation{
			{"payload", "is empty"}}},
		{name: "whitespace payload", eventType: "manuscript.accepted", payload: " \n\t", want: []eventcheck.Violation{
			{"payload", "is empty"}}},
		{name: "null payload", eventType: "manuscript.accepted", payload: " null ", want: []eventcheck.Violation{
			{"payload", "is null"}}},
		{name: "invalid JSON", eventType: "manuscript.accepted", payload: `{"a":}`, want: []eventcheck.Violation{
			{"payload", "is not valid JSON: invalid character '}' looking for beginning of value"}}},
		{name: "trailing data", eventType: "manuscript.accepted", payload: `{} {}`, want: []eventcheck.Violation{
			{"payload", "is not valid JSON: invalid character '{' after top-level value"}}},
		{name: "too large", eventType: "manuscript.accepted", payload: `"` + strings.Repeat("x", 4095) + `"`, want: []eventcheck.Violation{
			{"payload", "is 4097 bytes, limit is 4096"}}},
		{name: "type and payload", eventType: "", payload: "", want: []eventcheck.Violation{
			{"type", `event type "": is empty`}, {"payload", "is empty"}}},
		{name: "schema: missing fields", eventType: "manuscript.submitted", payload: `{"title":"t"}`, want: []eventcheck.Violation{
			{"/manuscriptId", "is required"}, {"/submittedAt", "is required"}}},
		{name: "schema: per-field", eventType: "manuscript.submitted",
			payload: `{"manuscriptId":"ms-1","title":"","submittedAt":5,"authors":[{"orcid":"x"},{"name":1}]}`,
			want: []eventcheck.Violation{
				{"/authors/0/name", "is required"},
				{"/authors/1/name", "got number, want string"},
				{"/manuscriptId", "'ms-1' does not match pattern '^MS-[0-9]{4}-[0-9]{3}$'"},
				{"/submittedAt", "got number, want string"},
				{"/title", "minLength: got 0, want 1"},
			}},
		{name: "schema: root", eventType: "manuscript.withdrawn", payload: `[]`, want: []eventcheck.Violation{
			{"payload", "got array, want object"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(tt.eventType, []byte(tt.payload))
			var got []eventcheck.Violation
			if err != nil {
				var cerr *eventcheck.Error
				if !errors.As(err, &cerr) {
					t.Fatalf("Check(%q, %.40q) = %v (%T), want *eventcheck.Error", tt.eventType, tt.payload, err, err)
				}
				got = cerr.Violations
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check(%q, %.40q) violations mismatch (-want +got):\n%s", tt.eventType, tt.payload, diff)
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	c := newChecker(t, eventcheck.Options{})
	if err := c.Check("anything.at.all", []byte(`{}`)); err != nil {
		t.Errorf("Check(%q) = %v, want nil", "anything.at.all", err)
	}
	big := []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	want := []eventcheck.Violation{{"payload", "is 1048578 bytes, limit is 1048576"}}
	var cerr *eventcheck.Error
	if err := c.Check("a", big); !errors.As(err, &cerr) || !cmp.Equal(cerr.Violations, want) {
		t.Errorf("Check(1 MiB + 2) = %v, want %v", err, want)
	}
	if err := c.Check("a", big[:1<<20]); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("Check(1 MiB unterminated string) = %v, want invalid JSON", err)
	}
}

func TestErrorString(t *testing.T) {
	err := &eventcheck.Error{Violations: []eventcheck.Violation{{"type", "bad"}, {"/a", "is required"}}}
	if got, want := err.Error(), "invalid event: type: bad; /a: is required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		opts     eventcheck.Options
		wantErrs []string // substrings, all required; none means success
	}{
		{name: "zero", opts: eventcheck.Options{}},
		{name: "schemas", opts: eventcheck.Options{SchemaDir: filepath.Join("testdata", "schemas")}},
		{name: "bad patterns", opts: eventcheck.Options{AllowedTypes: []string{"a.>.b", "ok.*", ""}, MaxPayloadBytes: -1},
			wantErrs: []string{`"a.>.b"`, `pattern "": is empty`, "max payload bytes -1 is negative"}},
		{name: "missing dir", opts: eventcheck.Options{SchemaDir: filepath.Join("testdata", "nope")},
			wantErrs: []string{"schema dir:"}},
		{name: "broken schemas", opts: eventcheck.Options{SchemaDir: filepath.Join("testdata", "broken")},
			wantErrs: []string{
				"schema bad~name.json: file name must be <event type>.json",
				"schema not.json.json:",
				"schema bad.keyword.json:",
				"schema remote.ref.json:",
				"schema file.ref.json:",
				"schema remote.meta.json:",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := eventcheck.New(tt.opts)
			if len(tt.wantErrs) == 0 {
				if err != nil || c == nil {
					t.Errorf("New(%+v) = %v, %v, want a Checker", tt.opts, c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%+v) = nil error, want errors containing %q", tt.opts, tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New(%+v) = %v, want it to contain %q", tt.opts, err, want)
				}
			}
			if strings.Contains(err.Error(), "fine.type.json") {
				t.Errorf("New(%+v) = %v, want no error about the valid fine.type.json", tt.opts, err)
			}
		})
	}
}
