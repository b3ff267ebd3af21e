package grpcapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/gateway"
)

// openAPI is the generated OpenAPI (Swagger 2.0) document, made strict for
// the test: a response field the document does not describe fails.
type openAPI struct {
	doc      map[string]any
	defs     map[string]any
	compiler *jsonschema.Compiler
	n        int
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	b, err := os.ReadFile("../../../gen/openapi/sidecar.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	defs := doc["definitions"].(map[string]any)
	for _, d := range defs {
		strict(d.(map[string]any))
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4) // Swagger 2.0's schemas are draft 4's
	return &openAPI{doc: doc, defs: defs, compiler: c}
}

// strict forbids properties a schema does not list.
func strict(s map[string]any) {
	if _, ok := s["properties"]; ok {
		if _, set := s["additionalProperties"]; !set {
			s["additionalProperties"] = false
		}
	}
}

// operation returns the document's operation for method and a concrete
// path, or fails: every route the server answers is documented.
func (o *openAPI) operation(t *testing.T, method, path string) map[string]any {
	t.Helper()
	path, _, _ = strings.Cut(path, "?")
	for tmpl, item := range o.doc["paths"].(map[string]any) {
		re := "^" + regexp.MustCompile(`\\\{[^}]*\\\}`).ReplaceAllStringFunc(regexp.QuoteMeta(tmpl), func(p string) string {
			if strings.Contains(p, "=\\*\\*") {
				return ".+"
			}
			return "[^/]+"
		}) + "$"
		if regexp.MustCompile(re).MatchString(path) {
			if op, ok := item.(map[string]any)[strings.ToLower(method)]; ok {
				return op.(map[string]any)
			}
		}
	}
	t.Fatalf("the OpenAPI document has no %s %s", method, path)
	return nil
}

// validate checks body against a schema of the document (an inline schema
// or a $ref to its definitions).
func (o *openAPI) validate(t *testing.T, what string, schema map[string]any, body []byte) {
	t.Helper()
	s := maps.Clone(schema)
	strict(s)
	s["definitions"] = o.defs
	o.n++
	url := fmt.Sprintf("mem:///schema-%d.json", o.n)
	if err := o.compiler.AddResource(url, s); err != nil {
		t.Fatal(err)
	}
	sch, err := o.compiler.Compile(url)
	if err != nil {
		t.Fatalf("compile the schema of %s: %v", what, err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, body, err)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s: the answer %.300s does not match the OpenAPI document: %v", what, body, err)
	}
}

// check checks an answer against the operation's documented response: the
// 200 schema and content type, or the default (error) ones.
func (o *openAPI) check(t *testing.T, method, path string, status int, contentType string, body []byte) {
	t.Helper()
	op := o.operation(t, method, path)
	responses := op["responses"].(map[string]any)
	what := fmt.Sprintf("%s %s (%d)", method, path, status)
	key := "default"
	if status == http.StatusOK {
		key = "200"
	}
	r, ok := responses[key].(map[string]any)
	if !ok {
		t.Fatalf("%s: the document has no %s response", what, key)
	}
	produces := o.doc["produces"]
	if p, ok := op["produces"]; ok && status == http.StatusOK {
		produces = p
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if !strings.Contains(fmt.Sprint(produces), mt) || mt == "" {
		t.Errorf("%s: Content-Type %q, the document says %v", what, contentType, produces)
	}
	o.validate(t, what, r["schema"].(map[string]any), body)
}

// TestOpenAPIMatchesServer calls every route of the REST API on a real
// service, successes and errors, and validates each answer (every line of
// the stream, heartbeats and the final error line included) against the
// generated OpenAPI document, with unknown fields forbidden, and its content
// type against the document's.
func TestOpenAPIMatchesServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	gw, err := gateway.New(t.Context(), e.conn, gateway.Options{HeartbeatInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rest := httptest.NewServer(gw)
	t.Cleanup(rest.Close)
	o := loadOpenAPI(t)
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		code, b, ct := restDo(t, rest, method, path, body)
		o.check(t, method, path, code, ct, b)
		return code, b
	}
	e.appendEvent(t, "e1", "manuscript.submitted", `{"a":[1,2,{"b":null}]}`)
	e.appendEvent(t, "e2", "manuscript.submitted", `{"s":"Über 🧬"}`)
	e.appendEvent(t, "e3", "manuscript.status.updated", `{}`)

	// The stream: events, heartbeats, and the error that ends it.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const streamPath = "/v1/events:stream?subscription=oa&maxInFlight=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rest.URL+streamPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewReader(resp.Body)
	streamOp := o.operation(t, http.MethodGet, "/v1/events:stream")
	streamSchema := streamOp["responses"].(map[string]any)["200"].(map[string]any)["schema"].(map[string]any)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" || !strings.Contains(fmt.Sprint(streamOp["produces"]), ct) {
		t.Fatalf("stream: %d %q, want 200 application/x-ndjson, which the document lists (%v)", resp.StatusCode, ct, streamOp["produces"])
	}
	// nextLine returns the next stream line that is not a heartbeat, after
	// validating every line.
	heartbeats := 0
	nextLine := func() []byte {
		t.Helper()
		for {
			line, err := lines.ReadBytes('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			o.validate(t, "stream line", streamSchema, line)
			if strings.TrimSpace(string(line)) != `{"result":{}}` {
				return line
			}
			heartbeats++
		}
	}
	for _, id := range []string{"e1", "e2"} {
		if line := nextLine(); !strings.Contains(string(line), `"id":"`+id+`"`) {
			t.Fatalf("stream line %s, want event %s", line, id)
		}
		if id == "e1" {
			call(http.MethodPost, "/v1/events:ack", `{"subscription":"oa","eventIds":["e1","nope"]}`)
		}
	}
	if heartbeats == 0 {
		// Wait for one: the stream holds e2, so nothing else comes.
		for heartbeats == 0 {
			line, err := lines.ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			o.validate(t, "stream line", streamSchema, line)
			heartbeats++
		}
	}
	call(http.MethodGet, "/v1/subscriptions", "")
	call(http.MethodGet, "/v1/subscriptions/oa", "")
	// Narrowing moves e3 (pending: the stream holds e2, its one in flight)
	// to the dead letters, at attempt 0, omitted.
	call(http.MethodPost, "/v1/subscriptions/oa:update", `{"eventTypes":["manuscript.submitted"]}`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, b := call(http.MethodGet, "/v1/subscriptions/oa/dead-letters?pageSize=1", ""); strings.Contains(string(b), "e3") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("e3 is not a dead letter after 10s")
		}
	}
	call(http.MethodPost, "/v1/events:ack", `{"subscription":"oa","eventIds":["e2"],"reject":true,"redeliverDelay":"1m"}`)
	call(http.MethodPost, "/v1/subscriptions/oa/dead-letters:replay", `{"eventIds":["e3","nope"]}`)
	call(http.MethodPost, "/v1/events:send", `{"type":"manuscript.submitted","payload":{"m":1},"idempotencyKey":"k/1"}`)
	call(http.MethodPost, "/v1/events:send", `{"type":"manuscript.submitted","payload":{"m":2},"async":true}`)
	call(http.MethodGet, "/v1/sent-events/k%2F1", "") // the document has the key as one segment

	// Errors: every one is a google.rpc.Status, details included.
	errorCalls := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/events:ack", `{"subscription":"missing","eventIds":["e1"]}`},
		{http.MethodPost, "/v1/events:ack", `{"eventIds":[]}`},
		{http.MethodPost, "/v1/events:ack", `{"eventIds":["e1"],"bogus":1}`},
		{http.MethodPost, "/v1/events:send", `{"type":"Not A Type","payload":{}}`},
		{http.MethodGet, "/v1/sent-events/nope", ""},
		{http.MethodGet, "/v1/subscriptions/missing", ""},
		{http.MethodGet, "/v1/subscriptions/missing/dead-letters", ""},
		{http.MethodGet, "/v1/subscriptions/oa/dead-letters?pageToken=x", ""},
		{http.MethodDelete, "/v1/subscriptions/missing", ""},
		{http.MethodGet, "/v1/events:stream?subscription=oa&eventTypes=review.*", ""},
		{http.MethodGet, "/v1/events:stream?subscription=bad%20name", ""},
	}
	for _, c := range errorCalls {
		if code, b := call(c.method, c.path, c.body); code < 400 {
			t.Errorf("%s %s = %d %s, want an error", c.method, c.path, code, b)
		}
	}

	// Deleting the subscription ends the open stream with a last error line.
	call(http.MethodDelete, "/v1/subscriptions/oa", "")
	for {
		line := nextLine()
		if strings.HasPrefix(string(line), `{"error":`) {
			break
		}
	}
	if _, err := lines.ReadBytes('\n'); err != io.EOF {
		t.Errorf("after the error line: %v, want the end of the stream", err)
	}
}

// restDo makes a REST call and returns its status, body and Content-Type.
func restDo(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}
