// Package tracingtest is a real OTLP trace receiver for tests: a gRPC
// server of opentelemetry.proto.collector.trace.v1.TraceService on a
// loopback port (and, with [StartHTTP], OTLP/HTTP's POST /v1/traces of
// binary protobuf) that keeps every span it is sent, and a text rendering
// of a trace as a tree.
package tracingtest

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	TraceID, SpanID, ParentSpanID string // hex; ParentSpanID "" for a root
	Name                          string
	Kind                          tracepb.Span_SpanKind
	Start, End                    time.Time
	Attributes                    map[string]string // values as text
	Service                       string            // the resource's service.name
	StatusError                   bool
	Links                         []Link
}

// Link is a span's link to another span, maybe of another trace.
type Link struct {
	TraceID, SpanID string // hex
}

// Duration is how long the span lasted.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Receiver is an OTLP/gRPC trace receiver. It is safe for concurrent use.
type Receiver struct {
	collectortrace.UnimplementedTraceServiceServer

	srv      *grpc.Server
	endpoint string

	mu      sync.Mutex
	spans   []Span
	md      []metadata.MD
	changed chan struct{} // closed and replaced when spans grow
}

// Start starts a receiver on 127.0.0.1:0 and stops it when t ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlp receiver: %v", err)
	}
	r := &Receiver{srv: grpc.NewServer(), endpoint: "http://" + lis.Addr().String(), changed: make(chan struct{})}
	collectortrace.RegisterTraceServiceServer(r.srv, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.srv.Serve(lis) // returns when stopped
	}()
	t.Cleanup(func() {
		r.srv.Stop()
		<-done
	})
	return r
}

// StartHTTP starts a receiver of OTLP/HTTP with binary protobuf on
// 127.0.0.1:0 (POST /v1/traces) and stops it when t ends. Headers of each
// request are kept as metadata, with lower-case names.
func StartHTTP(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces of application/x-protobuf", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(req.Body)
		var msg collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		md := metadata.MD{}
		for k, v := range req.Header {
			md.Append(k, v...)
		}
		resp, _ := r.Export(metadata.NewIncomingContext(req.Context(), md), &msg)
		out, _ := proto.Marshal(resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.endpoint = srv.URL
	return r
}

// Endpoint is the receiver's URL, e.g. "http://127.0.0.1:4711", the value for
// OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) Endpoint() string { return r.endpoint }

// Export implements the TraceService.
func (r *Receiver) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				var links []Link
				for _, l := range s.GetLinks() {
					links = append(links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				got = append(got, Span{
					TraceID:      hex.EncodeToString(s.GetTraceId()),
					SpanID:       hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Name:         s.GetName(),
					Kind:         s.GetKind(),
					Start:        time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:          time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attributes:   attrs(s.GetAttributes()),
					Service:      service,
					StatusError:  s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Links:        links,
				})
			}
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.md = append(r.md, md)
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(v.GetBoolValue())
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(v.GetDoubleValue())
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Metadata returns the gRPC metadata of every export received so far.
func (r *Receiver) Metadata() []metadata.MD {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.md)
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Wait returns the spans received once done reports true of them, or fails
// t when that has not happened within timeout.
func (r *Receiver) Wait(t testing.TB, timeout time.Duration, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := slices.Clone(r.spans), r.changed
		r.mu.Unlock()
		if done(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("otlp receiver: the spans awaited did not arrive within %v; got %d:\n%s", timeout, len(spans), Render(spans, true))
			return nil
		}
	}
}

// Render draws spans as trees, one per root (a span whose parent is not
// among spans), children under their parent in start order, e.g.
//
//	POST /webhook  SERVER  1.2ms  chronoshub-sidecar
//	└─ receive default  CONSUMER  80µs  chronoshub-sidecar
//
// With durations false the durations are left out, so that the shape of two
// runs of one trace can be compared.
func Render(spans []Span, durations bool) string {
	byID := map[string]bool{}
	children := map[string][]Span{}
	for _, s := range spans {
		byID[s.TraceID+s.SpanID] = true
	}
	var roots []Span
	for _, s := range spans {
		if s.ParentSpanID != "" && byID[s.TraceID+s.ParentSpanID] {
			children[s.TraceID+s.ParentSpanID] = append(children[s.TraceID+s.ParentSpanID], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(a, b Span) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Name, b.Name))
	}
	slices.SortFunc(roots, byStart)
	var b strings.Builder
	var draw func(s Span, prefix, branch, next string)
	draw = func(s Span, prefix, branch, next string) {
		b.WriteString(prefix + branch + s.Name + "  " + strings.TrimPrefix(s.Kind.String(), "SPAN_KIND_"))
		if durations {
			b.WriteString("  " + s.Duration().Round(time.Microsecond).String())
		}
		b.WriteString("  " + s.Service)
		if s.StatusError {
			b.WriteString("  ERROR")
		}
		b.WriteString("\n")
		kids := children[s.TraceID+s.SpanID]
		slices.SortFunc(kids, byStart)
		for i, k := range kids {
			if i == len(kids)-1 {
				draw(k, prefix+next, "└─ ", "   ")
			} else {
				draw(k, prefix+next, "├─ ", "│  ")
			}
		}
	}
	for _, r := range roots {
		draw(r, "", "", "")
	}
	return b.String()
}
