package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// problem is an RFC 9457 Problem Details body in the shape ASP.NET's ValidationProblemDetails
// gives it, which is what ChronosHub answers with.
type problem struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors map[string][]string `json:"errors,omitempty"`
}

// problemType returns the type URI ASP.NET uses for its default problem response with status,
// or "about:blank" (RFC 9457) for the others.
func problemType(status int) string {
	const rfc9110 = "https://tools.ietf.org/html/rfc9110#section-"
	switch status {
	case http.StatusBadRequest:
		return rfc9110 + "15.5.1"
	case http.StatusUnauthorized:
		return rfc9110 + "15.5.2"
	case http.StatusForbidden:
		return rfc9110 + "15.5.4"
	case http.StatusNotFound:
		return rfc9110 + "15.5.5"
	case http.StatusMethodNotAllowed:
		return rfc9110 + "15.5.6"
	case http.StatusConflict:
		return rfc9110 + "15.5.10"
	case http.StatusRequestEntityTooLarge:
		return rfc9110 + "15.5.14"
	case http.StatusUnsupportedMediaType:
		return rfc9110 + "15.5.16"
	case http.StatusUnprocessableEntity:
		return rfc9110 + "15.5.21"
	case http.StatusTooManyRequests:
		return "https://tools.ietf.org/html/rfc6585#section-4"
	case http.StatusInternalServerError:
		return rfc9110 + "15.6.1"
	case http.StatusBadGateway:
		return rfc9110 + "15.6.3"
	case http.StatusServiceUnavailable:
		return rfc9110 + "15.6.4"
	case http.StatusGatewayTimeout:
		return rfc9110 + "15.6.5"
	}
	return "about:blank"
}

// Titles ASP.NET uses where they differ from the reason phrase.
const (
	titleValidation  = "One or more validation errors occurred."
	titleServerError = "An error occurred while processing your request."
)

// writeProblem is the one way the emulator answers with an error. errs, when set, become the
// ValidationProblemDetails "errors" member and the title says so.
func writeProblem(w http.ResponseWriter, status int, detail string, errs map[string][]string) {
	p := problem{
		Type:   problemType(status),
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: errs,
	}
	switch {
	case len(errs) > 0:
		p.Title = titleValidation
	case status == http.StatusInternalServerError:
		p.Title = titleServerError
	}
	body, err := json.Marshal(p)
	if err != nil {
		// A problem of strings, ints and string maps always marshals.
		panic(err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "encode response", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// readJSON decodes the body of a request to the emulator's own API into v, answering 400 or
// 413 and reporting false when it cannot.
func (e *Emulator) readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", e.maxBodyBytes), nil)
			return false
		}
		writeProblem(w, http.StatusBadRequest, "The request body could not be read.", nil)
		return false
	}
	if err := decodeStrict(body, v); err != nil {
		writeProblem(w, http.StatusBadRequest, "The request body is not valid: "+err.Error(), nil)
		return false
	}
	return true
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
