// Package eventcheck checks events an app sends to ChronosHub before they
// leave the pod: the event-type allowlist and the payload's JSON Schema.
// The event-type syntax itself is package eventtype's.
package eventcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventtype"
)

// DefaultMaxPayloadBytes is the payload limit when Options.MaxPayloadBytes is 0.
const DefaultMaxPayloadBytes = 1 << 20

// Options configures a [Checker]. The zero value allows any valid event type
// with a JSON payload of up to [DefaultMaxPayloadBytes] and no schemas.
type Options struct {
	// AllowedTypes are patterns (see eventtype.ValidatePattern) of the event types an
	// app may send. Empty means any valid type is allowed.
	AllowedTypes []string
	// SchemaDir is a directory of JSON Schemas named "<event.type>.json",
	// draft 2020-12 unless a schema says otherwise. Other files are ignored.
	// "" means no schemas.
	SchemaDir string
	// MaxPayloadBytes limits the payload size. 0 means DefaultMaxPayloadBytes.
	MaxPayloadBytes int
}

// Checker validates outgoing events. It is immutable after [New] and safe for
// concurrent use.
type Checker struct {
	allowed    []string
	schemas    map[string]*jsonschema.Schema // by event type
	maxPayload int
}

// New returns a Checker for opts. It validates every pattern and compiles
// every schema in opts.SchemaDir, and reports all problems at once; errors
// about a schema name its file. Schemas may refer to each other by relative
// file name, and to the standard metaschemas, but never load anything else.
func New(opts Options) (*Checker, error) {
	c := &Checker{maxPayload: opts.MaxPayloadBytes}
	var errs []error
	switch {
	case c.maxPayload == 0:
		c.maxPayload = DefaultMaxPayloadBytes
	case c.maxPayload < 0:
		errs = append(errs, fmt.Errorf("max payload bytes %d is negative", opts.MaxPayloadBytes))
	}
	for _, p := range opts.AllowedTypes {
		if err := eventtype.ValidatePattern(p); err != nil {
			errs = append(errs, fmt.Errorf("allowed types: %w", err))
			continue
		}
		c.allowed = append(c.allowed, p)
	}
	if opts.SchemaDir != "" {
		schemas, err := compileSchemas(opts.SchemaDir)
		if err != nil {
			errs = append(errs, err)
		}
		c.schemas = schemas
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// errNoLoader is returned for every schema reference that is not a file in
// Options.SchemaDir or a standard metaschema.
var errNoLoader = errors.New("loading schemas from outside the schema directory is disabled")

// refuseLoader makes every reference outside the preloaded schema files an
// error, so compiling a schema never touches the network or other files.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) { return nil, errNoLoader }

func compileSchemas(dir string) (map[string]*jsonschema.Schema, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("schema dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("schema dir: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})

	var errs []error
	paths := map[string]string{} // event type -> file path
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(abs, name)
		eventType := strings.TrimSuffix(name, ".json")
		if err := eventtype.Validate(eventType); err != nil {
			errs = append(errs, fmt.Errorf("schema %s: file name must be <event type>.json: %w", name, err))
			continue
		}
		doc, err := readJSON(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("schema %s: %w", name, err))
			continue
		}
		if err := c.AddResource(path, doc); err != nil {
			errs = append(errs, fmt.Errorf("schema %s: %w", name, err))
			continue
		}
		paths[eventType] = path
	}
	schemas := make(map[string]*jsonschema.Schema, len(paths))
	for eventType, path := range paths {
		sch, err := c.Compile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("schema %s: %w", filepath.Base(path), err))
			continue
		}
		schemas[eventType] = sch
	}
	// Sort so the joined error reads the same on every run.
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return schemas, errors.Join(errs...)
}

func readJSON(path string) (any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

// Violation is one reason an event was rejected.
type Violation struct {
	// Field is "type", "payload", or a JSON pointer into the payload such as
	// "/manuscriptId" for a schema violation below the top level.
	Field string
	// Description says what is wrong, without echoing large input.
	Description string
}

// Error is returned by [Checker.Check] for a rejected event. It lists every
// violation found.
type Error struct {
	Violations []Violation
}

// Error joins the violations as "field: description; …".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid event: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// Check validates one event: the type's syntax, the allowlist, that the
// payload is present, within the size limit and valid JSON other than null,
// and the schema for the type if there is one. It returns nil or an *Error
// listing every violation.
func (c *Checker) Check(eventType string, payload []byte) error {
	var vs []Violation
	var schema *jsonschema.Schema
	if err := eventtype.Validate(eventType); err != nil {
		vs = append(vs, Violation{"type", err.Error()})
	} else if !c.isAllowed(eventType) {
		vs = append(vs, Violation{"type", fmt.Sprintf("event type %s is not allowed", eventtype.Quote(eventType))})
	} else {
		schema = c.schemas[eventType]
	}
	vs = append(vs, c.checkPayload(payload, schema)...)
	if len(vs) > 0 {
		return &Error{Violations: vs}
	}
	return nil
}

func (c *Checker) isAllowed(eventType string) bool {
	if len(c.allowed) == 0 {
		return true
	}
	return slices.ContainsFunc(c.allowed, func(p string) bool { return eventtype.Match(p, eventType) })
}

func (c *Checker) checkPayload(payload []byte, schema *jsonschema.Schema) []Violation {
	trimmed := bytes.TrimSpace(payload)
	switch {
	case len(trimmed) == 0:
		return []Violation{{"payload", "is empty"}}
	case len(payload) > c.maxPayload:
		return []Violation{{"payload", fmt.Sprintf("is %d bytes, limit is %d", len(payload), c.maxPayload)}}
	case !json.Valid(payload):
		// Unmarshal validates the whole input before decoding anything, so
		// this only describes the syntax error.
		err := json.Unmarshal(payload, new(json.RawMessage))
		return []Violation{{"payload", fmt.Sprintf("is not valid JSON: %v", err)}}
	case string(trimmed) == "null":
		return []Violation{{"payload", "is null"}}
	case schema == nil:
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil { // Unreachable after json.Valid, but never skip the schema silently.
		return []Violation{{"payload", fmt.Sprintf("is not valid JSON: %v", err)}}
	}
	err = schema.Validate(doc)
	var verr *jsonschema.ValidationError
	if err == nil {
		return nil
	}
	if !errors.As(err, &verr) {
		return []Violation{{"payload", err.Error()}}
	}
	var vs []Violation
	collect(verr, &vs)
	slices.SortFunc(vs, func(a, b Violation) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Description, b.Description)
	})
	return slices.Compact(vs)
}

// collect appends a Violation for every leaf of the validation error tree;
// the inner nodes only say which keyword (allOf, $ref, properties…) led there.
func collect(e *jsonschema.ValidationError, vs *[]Violation) {
	if len(e.Causes) > 0 {
		for _, cause := range e.Causes {
			collect(cause, vs)
		}
		return
	}
	if req, ok := e.ErrorKind.(*kind.Required); ok {
		for _, prop := range req.Missing {
			*vs = append(*vs, Violation{pointer(append(slices.Clip(e.InstanceLocation), prop)), "is required"})
		}
		return
	}
	field := pointer(e.InstanceLocation)
	if field == "" {
		field = "payload"
	}
	// BasicOutput of a leaf carries just the localised message, without the
	// "at '/x':" prefix that Error adds.
	// Messages such as pattern's quote the offending value: cut them short.
	desc := e.BasicOutput().Error.String()
	if len(desc) > maxDescription {
		desc = eventtype.Quote(desc)
	}
	*vs = append(*vs, Violation{field, desc})
}

// maxDescription bounds a schema violation's description, which may quote
// part of the payload.
const maxDescription = 200

// pointer returns the JSON pointer (RFC 6901) for the path tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	r := strings.NewReplacer("~", "~0", "/", "~1")
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(r.Replace(t))
	}
	return b.String()
}
