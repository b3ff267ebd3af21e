package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// jsonMarshaler is the runtime.Marshaler for every request and response:
// runtime.JSONPb (protojson) except that the payload fields are JSON values
// rather than base64 (see the package doc).
//
// Responses are marshalled from a copy of the message in which each payload
// is replaced by a placeholder: random bytes, different on every call, whose
// base64 string is then found in protojson's output and swapped for the
// payload's JSON. Walking the message with protoreflect finds payloads at any
// depth (ListDeadLettersResponse.dead_letters[].event.payload), and the random
// placeholder cannot be forged by a client-controlled string elsewhere in the
// message.
//
// A jsonMarshaler is safe for concurrent use.
type jsonMarshaler struct {
	pb runtime.JSONPb
	// payloadFields are the fields that hold a JSON document.
	payloadFields map[protoreflect.FullName]bool
}

const (
	contentTypeJSON   = "application/json"
	contentTypeNDJSON = "application/x-ndjson"

	// placeholderNonceLen and placeholderIndexLen are multiples of 3, so the
	// base64 of a placeholder is the base64 of the nonce followed by the
	// base64 of the index, without padding.
	placeholderNonceLen = 12
	placeholderIndexLen = 6
)

func newJSONMarshaler() *jsonMarshaler {
	payload := func(m proto.Message) protoreflect.FullName {
		return m.ProtoReflect().Descriptor().Fields().ByName("payload").FullName()
	}
	return &jsonMarshaler{
		pb: runtime.JSONPb{
			// The zero options are the ones we want, spelled out: camelCase
			// names, enums by name, unset fields omitted, unknown fields refused.
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		},
		payloadFields: map[protoreflect.FullName]bool{
			payload(&sidecarv1.Event{}):            true,
			payload(&sidecarv1.SendEventRequest{}): true,
		},
	}
}

// ContentType returns "application/json".
func (*jsonMarshaler) ContentType(any) string { return contentTypeJSON }

// StreamContentType returns "application/x-ndjson": a stream is one JSON
// value per line (runtime.StreamContentType).
func (*jsonMarshaler) StreamContentType(any) string { return contentTypeNDJSON }

// Delimiter returns the newline that ends each streamed message
// (runtime.Delimited).
func (*jsonMarshaler) Delimiter() []byte { return []byte("\n") }

// Marshal marshals a proto message, or a map of them such as the stream
// envelopes {"result": msg} and {"error": status}, applying the payload rule
// at any depth. Anything else goes to runtime.JSONPb.
func (m *jsonMarshaler) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case proto.Message:
		return m.marshalMessage(v)
	case map[string]any:
		return marshalObject(m, v)
	case map[string]proto.Message:
		return marshalObject(m, v)
	}
	return m.pb.Marshal(v)
}

// marshalObject marshals a map as a JSON object with its values marshalled by
// m, so that the payload rule also applies inside grpc-gateway's stream
// envelopes (runtime.JSONPb would marshal the values with itself).
func marshalObject[V any](m *jsonMarshaler, obj map[string]V) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(obj)) {
		if i > 0 {
			b.WriteByte(',')
		}
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		val, err := m.Marshal(obj[k])
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (m *jsonMarshaler) marshalMessage(msg proto.Message) ([]byte, error) {
	if len(m.payloadRefs(msg.ProtoReflect(), nil)) == 0 {
		return m.pb.Marshal(msg)
	}
	clone := proto.Clone(msg)
	refs := m.payloadRefs(clone.ProtoReflect(), nil)

	var nonce [placeholderNonceLen]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails.
	payloads := make([][]byte, len(refs))
	for i, r := range refs {
		payloads[i] = r.msg.Get(r.field).Bytes()
		r.msg.Set(r.field, protoreflect.ValueOfBytes(placeholder(nonce, i)))
	}
	out, err := m.pb.Marshal(clone)
	if err != nil {
		return nil, err
	}
	return splicePayloads(out, nonce, payloads)
}

// payloadRef is a populated payload field of a message.
type payloadRef struct {
	msg   protoreflect.Message
	field protoreflect.FieldDescriptor
}

// payloadRefs appends to refs the populated payload fields of msg and of the
// messages it contains, in lists and maps too.
func (m *jsonMarshaler) payloadRefs(msg protoreflect.Message, refs []payloadRef) []payloadRef {
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case m.payloadFields[fd.FullName()]:
			refs = append(refs, payloadRef{msg: msg, field: fd})
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					refs = m.payloadRefs(mv.Message(), refs)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				l := v.List()
				for i := range l.Len() {
					refs = m.payloadRefs(l.Get(i).Message(), refs)
				}
			}
		case fd.Message() != nil:
			refs = m.payloadRefs(v.Message(), refs)
		}
		return true
	})
	return refs
}

func placeholder(nonce [placeholderNonceLen]byte, i int) []byte {
	var idx [8]byte
	binary.BigEndian.PutUint64(idx[:], uint64(i))
	return append(nonce[:], idx[8-placeholderIndexLen:]...)
}

// splicePayloads replaces each placeholder string in out, the protojson of a
// message whose payloads were replaced by placeholder(nonce, i), with the JSON
// of payloads[i]. Each placeholder must appear exactly once.
func splicePayloads(out []byte, nonce [placeholderNonceLen]byte, payloads [][]byte) ([]byte, error) {
	prefix := []byte(`"` + base64.StdEncoding.EncodeToString(nonce[:]))
	idxLen := base64.StdEncoding.EncodedLen(placeholderIndexLen)

	size := len(out)
	for _, p := range payloads {
		size += len(p)
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	used := make([]bool, len(payloads))
	for {
		i := bytes.Index(out, prefix)
		if i < 0 {
			break
		}
		rest := out[i+len(prefix):]
		if len(rest) <= idxLen || rest[idxLen] != '"' {
			return nil, errors.New("marshal payload: malformed placeholder")
		}
		var idx [8]byte
		if _, err := base64.StdEncoding.Decode(idx[8-placeholderIndexLen:], rest[:idxLen]); err != nil {
			return nil, fmt.Errorf("marshal payload: malformed placeholder: %w", err)
		}
		n := binary.BigEndian.Uint64(idx[:])
		if n >= uint64(len(payloads)) || used[n] {
			return nil, errors.New("marshal payload: unexpected placeholder")
		}
		used[n] = true
		b.Write(out[:i])
		appendPayloadJSON(b, payloads[n])
		out = rest[idxLen+1:]
	}
	b.Write(out)
	if slices.Contains(used, false) {
		return nil, errors.New("marshal payload: placeholder missing from output")
	}
	return b.Bytes(), nil
}

// appendPayloadJSON writes payload as a JSON value: compacted if it is valid
// UTF-8 JSON, otherwise as a JSON string of its bytes, so that a corrupt
// payload still yields a well-formed response.
func appendPayloadJSON(b *bytes.Buffer, payload []byte) {
	if utf8.Valid(payload) && json.Valid(payload) {
		if err := json.Compact(b, payload); err == nil {
			return
		}
	}
	s, _ := json.Marshal(string(payload)) // Marshal of a string cannot fail.
	b.Write(s)
}

// Unmarshal unmarshals the single JSON value in data into v.
func (m *jsonMarshaler) Unmarshal(data []byte, v any) error {
	return m.decode(json.NewDecoder(bytes.NewReader(data)), v)
}

// NewDecoder returns a Decoder for a request body, which holds exactly one
// JSON value: Decode returns io.EOF for an empty body and an error for
// anything after the value.
func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error { return m.decode(d, v) })
}

// NewEncoder returns an Encoder that writes each value followed by a newline.
func (m *jsonMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, m.Delimiter()...))
		return err
	})
}

func (m *jsonMarshaler) decode(d *json.Decoder, v any) error {
	var raw json.RawMessage
	if err := d.Decode(&raw); err != nil {
		return err
	}
	// A second value or trailing garbage is a malformed body, not something
	// to ignore. The error must not be io.EOF, which callers treat as "no body".
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return errors.New("unexpected data after the JSON value")
		}
		return fmt.Errorf("after the JSON value: %w", err)
	}
	switch v := v.(type) {
	case *sidecarv1.SendEventRequest:
		return m.unmarshalSendEvent(raw, v)
	case *sidecarv1.AckEventsRequest:
		raw, err := goDurations(raw, "redeliverDelay", "redeliver_delay")
		if err != nil {
			return err
		}
		return m.pb.UnmarshalOptions.Unmarshal(raw, v)
	case proto.Message:
		return m.pb.UnmarshalOptions.Unmarshal(raw, v)
	}
	return m.pb.Unmarshal(raw, v)
}

// goDurations returns the JSON object raw with the string values of the
// named fields that are Go durations ("1m", "1m30s", "500ms") rewritten in
// protojson's form ("60s"), so that a request accepts what the client
// command and the sidecar's settings accept. Other values, and everything
// else in the object (duplicate keys included), are left for protojson to
// judge.
func goDurations(raw json.RawMessage, names ...string) (json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return raw, nil // not an object: protojson says so
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v, want an object key", tok)
		}
		var val json.RawMessage
		if err := d.Decode(&val); err != nil {
			return nil, err
		}
		var str string
		if slices.Contains(names, key) && json.Unmarshal(val, &str) == nil {
			if dur, err := time.ParseDuration(str); err == nil {
				if b, err := protojson.Marshal(durationpb.New(dur)); err == nil {
					val = b
				}
			}
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		k, err := json.Marshal(key)
		if err != nil {
			return nil, err
		}
		out.Write(k)
		out.WriteByte(':')
		out.Write(val)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// unmarshalSendEvent unmarshals a JSON object into req, taking the raw text of
// its "payload" value as the payload bytes and the other fields with protojson.
func (m *jsonMarshaler) unmarshalSendEvent(raw json.RawMessage, req *sidecarv1.SendEventRequest) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("the request body must be a JSON object")
	}
	var (
		rest    bytes.Buffer
		payload json.RawMessage
	)
	rest.WriteByte('{')
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("unexpected %v, want an object key", tok)
		}
		var val json.RawMessage
		if err := d.Decode(&val); err != nil {
			return err
		}
		if key == "payload" {
			if payload != nil {
				return errors.New(`duplicate field "payload"`)
			}
			payload = val
			continue
		}
		if rest.Len() > 1 {
			rest.WriteByte(',')
		}
		k, err := json.Marshal(key)
		if err != nil {
			return err
		}
		rest.Write(k)
		rest.WriteByte(':')
		rest.Write(val)
	}
	rest.WriteByte('}')
	if err := m.pb.UnmarshalOptions.Unmarshal(rest.Bytes(), req); err != nil {
		return err
	}
	if payload == nil || bytes.Equal(payload, []byte("null")) {
		return nil // Like protojson, null is the field's default.
	}
	if !utf8.Valid(payload) {
		return errors.New(`field "payload": invalid UTF-8`)
	}
	req.Payload = bytes.Clone(payload)
	return nil
}
