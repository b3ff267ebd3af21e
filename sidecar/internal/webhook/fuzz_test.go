package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/signature"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/webhook"
)

// FuzzHandler feeds arbitrary header values and bodies through the handler.
// When sign is set the signature header is replaced by a valid signature, so
// that the fuzzer also reaches the checks after verification. The handler
// must not panic, must answer 2xx only for a valid signature over a fresh
// timestamp and a JSON body, and must then store exactly that body.
func FuzzHandler(f *testing.F) {
	ts := strconv.Itoa(nowUnix)
	f.Add(eventType, eventID, ts, "", []byte(validBody), true)
	f.Add(eventType, eventID, ts, "", []byte(nonASCII), true)
	f.Add(eventType, eventID, ts, "sha256="+strings.Repeat("0", 64), []byte(validBody), false)
	f.Add("manuscript.*", "{"+eventID+"}", "+1740000000", "SHA256=00", []byte("{\"a\":\"\xff\"}"), true)
	f.Add(eventType, strings.ToUpper(eventID), "01740000000", "", []byte("  [1, 2]\n"), true)
	f.Add("", "", "", "", []byte{}, false)

	f.Fuzz(func(t *testing.T, typ, id, ts, sig string, body []byte, sign bool) {
		fx := newFixture(t, webhook.Options{}, nil)
		if sign {
			sig = signature.Sign([]byte(secret), body, typ, id, ts)
		}
		r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header[signature.HeaderEventType] = []string{typ}
		r.Header[signature.HeaderEventID] = []string{id}
		r.Header[signature.HeaderTimestamp] = []string{ts}
		r.Header[signature.HeaderSignature] = []string{sig}
		w := fx.do(r)

		stored := fx.store.stored()
		if w.Code < 200 || w.Code > 299 {
			if len(stored) != 0 {
				t.Fatalf("POST = %d but stored %d events", w.Code, len(stored))
			}
			return
		}
		if err := signature.Verify([][]byte{[]byte(secret)}, body, typ, id, ts, sig); err != nil {
			t.Fatalf("POST = %d with signature error %v", w.Code, err)
		}
		if !json.Valid(body) {
			t.Fatalf("POST = %d with non-JSON body %q", w.Code, body)
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sec < nowUnix-300 || sec > nowUnix+300 {
			t.Fatalf("POST = %d with X-Timestamp %q", w.Code, ts)
		}
		if len(stored) != 1 || !bytes.Equal(stored[0].Payload, body) || stored[0].ID != id || stored[0].DedupKey != strings.ToLower(id) || stored[0].Type != typ {
			t.Fatalf("POST = %d, stored %+v, want one event with the request's id (and its lower case as DedupKey), type and body", w.Code, stored)
		}
	})
}

type discardStore struct{}

func (discardStore) Append(context.Context, webhook.Event) (bool, error) { return false, nil }

// BenchmarkHandler measures a signed 1 KiB event against a store that does
// nothing: the cost of the handler itself.
func BenchmarkHandler(b *testing.B) {
	body := []byte(`{"title":"` + strings.Repeat("a", 1024-len(`{"title":""}`)) + `"}`)
	if len(body) != 1024 {
		b.Fatalf("body is %d bytes, want 1024", len(body))
	}
	keys := [][]byte{[]byte(secret)}
	srv := webhook.New(discardStore{}, func() [][]byte { return keys }, webhook.Options{Now: now})
	ts := strconv.Itoa(nowUnix)
	header := http.Header{
		"Content-Type":            {"application/json"},
		signature.HeaderEventType: {eventType},
		signature.HeaderEventID:   {eventID},
		signature.HeaderTimestamp: {ts},
		signature.HeaderSignature: {signature.Sign([]byte(secret), body, eventType, eventID, ts)},
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		r.Header = header
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("POST = %d, want %d", w.Code, http.StatusOK)
		}
	}
}
