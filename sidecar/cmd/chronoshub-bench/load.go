package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// Benchmark credentials and the event type sent.
const (
	benchAPIKey    = "bench-api-key"
	benchSecret    = "bench-webhook-secret"
	benchEventType = "manuscript.submitted"
	payloadSize    = 1024
)

// The 1 KiB payload: {"run":RRRRRR,"sent_ns":NNNNNNNNNNNNNNNNNNN,"pad":"xxx…"},
// the numbers right-aligned with spaces (JSON has no leading zeros). The
// fixed offsets let the consumer read the run and the send time without
// parsing JSON.
const (
	payloadRunAt  = len(`{"run":`)
	payloadRunEnd = payloadRunAt + 6
	payloadSentAt = payloadRunEnd + len(`,"sent_ns":`)
	payloadSentTo = payloadSentAt + 19
)

// makePayload returns a 1 KiB JSON payload stamped with run and sent.
func makePayload(run int, sent time.Time) []byte {
	b := make([]byte, 0, payloadSize)
	b = fmt.Appendf(b, `{"run":%6d,"sent_ns":%19d,"pad":"`, run, sent.UnixNano())
	b = append(b, bytes.Repeat([]byte{'x'}, payloadSize-len(b)-2)...)
	return append(b, '"', '}')
}

// parsePayload reads the run and send time back from a payload of
// makePayload.
func parsePayload(p []byte) (run int, sent time.Time, ok bool) {
	if len(p) < payloadSentTo {
		return 0, time.Time{}, false
	}
	r, err1 := strconv.Atoi(strings.TrimSpace(string(p[payloadRunAt:payloadRunEnd])))
	ns, err2 := strconv.ParseInt(strings.TrimSpace(string(p[payloadSentAt:payloadSentTo])), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return r, time.Unix(0, ns), true
}

// webhookClient is ChronosHub's side of the webhook: HTTP/1.1 over TLS,
// trusting the bench certificate. keepAlive false opens a new TLS
// connection (a full handshake, no session resumption) per request.
func webhookClient(pool *x509.CertPool, keepAlive bool, conns int) *http.Client {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableKeepAlives:   !keepAlive,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// postWebhook sends one signed webhook as ChronosHub does
// (emulator.NewWebhookRequest) and returns an error unless the answer is 200.
func postWebhook(ctx context.Context, c *http.Client, url string, payload []byte) error {
	req, err := emulator.NewWebhookRequest(ctx, url, []byte(benchSecret), benchEventType, payload, "", time.Now())
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

// tally counts failed calls and keeps the last error; it is safe for
// concurrent use.
type tally struct {
	mu   sync.Mutex
	n    int
	last error
}

func (t *tally) add(err error) {
	if err != nil {
		t.mu.Lock()
		t.n, t.last = t.n+1, err
		t.mu.Unlock()
	}
}

// forN makes n calls of op spread over workers, each worker taking the
// next call when its last one returns, and returns how many failed and the
// last error.
func forN(ctx context.Context, workers, n int, op func(ctx context.Context) error) (failed int, lastErr error) {
	var next atomic.Int64
	var errs tally
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				errs.add(op(ctx))
			}
		})
	}
	wg.Wait()
	return errs.n, errs.last
}

// loadResult is the outcome of one load run.
type loadResult struct {
	Lat     quantiles
	Ok      int
	Errors  int
	Elapsed time.Duration
	Rate    float64 // successful requests per second
	LastErr error   `json:"-"`
}

// closedLoop runs workers that each call op back to back: unmeasured for
// warmup, then measured for d. Latency is each call's own duration.
func closedLoop(ctx context.Context, workers int, warmup, d time.Duration, op func(ctx context.Context) error) loadResult {
	lats := make([]latencies, workers)
	var errs tally
	var wg sync.WaitGroup
	measureStart := time.Now().Add(warmup)
	measureEnd := measureStart.Add(d)
	for w := range workers {
		wg.Go(func() {
			lats[w] = make(latencies, 0, 4096)
			for t0 := time.Now(); ctx.Err() == nil && t0.Before(measureEnd); t0 = time.Now() {
				err := op(ctx)
				if t0.Before(measureStart) {
					continue
				}
				if errs.add(err); err == nil {
					lats[w] = append(lats[w], time.Since(t0))
				}
			}
		})
	}
	wg.Wait()
	all := slices.Concat(lats...)
	return loadResult{Lat: summarize(all), Ok: len(all), Errors: errs.n, Elapsed: d, Rate: float64(len(all)) / d.Seconds(), LastErr: errs.last}
}

// openLoop offers rate calls per second for d, spread over workers: worker
// w makes calls number w, w+workers, w+2·workers… each at its scheduled time
// start+i/rate, or at once when it is behind (open loop: a slow answer does
// not slow the offered rate down, it builds a backlog). op gets the
// scheduled time, which is what end-to-end latency is measured from, so
// that queueing in the sender counts (no coordinated omission). It returns
// how many calls were made and how many failed.
func openLoop(ctx context.Context, rate, workers int, d time.Duration, op func(ctx context.Context, scheduled time.Time) error) (sent, failed int, lastErr error) {
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(d)
	total := int(float64(rate) * d.Seconds())
	var nSent atomic.Int64
	var errs tally
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				at := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
				if wait := time.Until(at); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				// A sender still behind after the run's end gives up: what it
				// did not send was not offered in time.
				if time.Now().After(end.Add(time.Second)) || ctx.Err() != nil {
					return
				}
				nSent.Add(1)
				errs.add(op(ctx, at))
			}
		})
	}
	wg.Wait()
	return int(nSent.Load()), errs.n, errs.last
}

// errNotReceived means an end-to-end run ended with events not received.
var errNotReceived = errors.New("events not received")
