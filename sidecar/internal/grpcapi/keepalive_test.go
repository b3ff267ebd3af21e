package grpcapi_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/grpcapi"
)

// keepaliveScale shrinks the production keepalive policy and the client's
// timings alike, so that the test takes 3 s instead of 60.
const keepaliveScale = 20

// TestIdleStreamSurvivesClientKeepalive opens a StreamEvents call on which
// no event arrives, with a 60 s deadline, from a client that pings every
// 10 s (grpc-go's shortest client keepalive), all scaled down by
// keepaliveScale against DefaultKeepalive scaled alike: the stream stays
// open until its deadline and ends with DEADLINE_EXCEEDED. With grpc-go's
// default enforcement (one ping per 5 minutes) the server answered the
// third ping with GOAWAY too_many_pings, ending the stream. grpc-go's own
// client cannot ping more often than every 10 s, so the client here speaks
// HTTP/2 itself.
func TestIdleStreamSurvivesClientKeepalive(t *testing.T) {
	t.Parallel()
	d := grpcapi.DefaultKeepalive()
	k := grpcapi.Keepalive{Time: d.Time / keepaliveScale, Timeout: d.Timeout / keepaliveScale, MinClientPing: d.MinClientPing / keepaliveScale}
	const (
		clientPing = 10 * time.Second / keepaliveScale
		deadline   = 60 * time.Second / keepaliveScale
	)
	if clientPing < 2*k.MinClientPing {
		t.Fatalf("the client pings every %s, the server allows every %s: the documented margin is 2x", clientPing, k.MinClientPing)
	}
	e := newEnvWith(t, envOptions{serverOpts: k.ServerOptions()})

	c, err := net.Dial("tcp", e.conn.Target())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex // guards writes to fr
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	write := func(f func() error) {
		mu.Lock()
		defer mu.Unlock()
		if err := f(); err != nil {
			t.Errorf("write frame: %v", err)
		}
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", e.conn.Target()},
		{":path", "/chronoshub.sidecar.v1.EventService/StreamEvents"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
		{"grpc-timeout", strconv.FormatInt(deadline.Milliseconds(), 10) + "m"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := proto.Marshal(&sidecarv1.StreamEventsRequest{Subscription: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	write(func() error {
		if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
			return err
		}
		if err := fr.WriteSettings(); err != nil {
			return err
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
			return err
		}
		return fr.WriteData(1, true, append(body, msg...))
	})

	// The reader answers the server's settings and pings, and reports how
	// the call ended.
	ended := make(chan string, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				ended <- "connection: " + err.Error()
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					write(fr.WriteSettingsAck)
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					write(func() error { return fr.WritePing(true, f.Data) })
				}
			case *http2.GoAwayFrame:
				ended <- fmt.Sprintf("GOAWAY %v %q", f.ErrCode, f.DebugData())
				return
			case *http2.RSTStreamFrame:
				ended <- fmt.Sprintf("RST_STREAM %v", f.ErrCode)
				return
			case *http2.MetaHeadersFrame:
				if f.StreamEnded() {
					ended <- "grpc-status " + headerValue(f, "grpc-status")
					return
				}
			}
		}
	}()

	start := time.Now()
	tick := time.NewTicker(clientPing)
	defer tick.Stop()
	pings := 0
	for {
		select {
		case <-tick.C:
			pings++
			write(func() error { return fr.WritePing(false, [8]byte{byte(pings)}) })
			continue
		case <-time.After(10 * deadline):
			t.Fatalf("the stream did not end within %s of its %s deadline", 10*deadline, deadline)
		case how := <-ended:
			// At its deadline grpc-go's server resets the stream (the client
			// reports DEADLINE_EXCEEDED); a trailer saying so is as good.
			if how != "RST_STREAM CANCEL" && how != "grpc-status 4" {
				t.Fatalf("idle stream with a client ping every %s ended after %s and %d pings: %s; want its %s deadline to end it (RST_STREAM CANCEL or grpc-status 4)",
					clientPing, time.Since(start).Round(time.Millisecond), pings, how, deadline)
			}
			if pings < 4 {
				t.Fatalf("the stream ended after %d pings, want at least 4 (one every %s over %s)", pings, clientPing, deadline)
			}
			return
		}
	}
}

// headerValue returns the value of the header name in f, or "".
func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, h := range f.Fields {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}
