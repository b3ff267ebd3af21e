package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/sidecar"
)

// This file is the fault harness's common part: the seed every random
// choice of a schedule comes from, the load (ChronosHub's webhooks and the
// app's async SendEvents) and the ledger the checker reads at the end of
// every run. The faults are in powerloss_test.go (a FUSE file system that
// drops what was not fsynced), netfault_test.go (Toxiproxy in front of every
// NATS client and route port) and pause_test.go (SIGSTOP).
//
// CHRONOSHUB_FAULT_SEED replays a seed (printed by every run and by every
// failure); CHRONOSHUB_FAULT_ROUNDS sets the number of faults of each kind
// (the default is a short schedule for make test).

// faultSchedule is a run's source of random choices.
type faultSchedule struct {
	seed   uint64
	rounds int
	mu     sync.Mutex
	rng    *rand.Rand
}

// newSchedule reads CHRONOSHUB_FAULT_SEED (or picks a seed) and
// CHRONOSHUB_FAULT_ROUNDS (or takes defRounds), logs the seed and prints it
// again if the test fails.
func newSchedule(t *testing.T, defRounds int) *faultSchedule {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHRONOSHUB_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHRONOSHUB_FAULT_SEED: %v", err)
		}
		seed = s
	}
	rounds := defRounds
	if v := os.Getenv("CHRONOSHUB_FAULT_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHRONOSHUB_FAULT_ROUNDS: want a positive number, got %q", v)
		}
		rounds = n
	}
	t.Logf("fault schedule: seed %d, %d rounds (CHRONOSHUB_FAULT_SEED=%d reruns it)", seed, rounds, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: rerun with CHRONOSHUB_FAULT_SEED=%d CHRONOSHUB_FAULT_ROUNDS=%d go test -run '^%s$' ./sidecar/cmd/chronoshub-sidecar", seed, seed, rounds, t.Name())
		}
	})
	return &faultSchedule{seed: seed, rounds: rounds, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

// intN is rand.IntN from the schedule.
func (s *faultSchedule) intN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// between returns a duration in [lo, hi) from the schedule.
func (s *faultSchedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.intN(int(hi-lo)))
}

// unboundedHub is hub with an emulator that remembers every inbound event
// (its listing is the checker's evidence; the default keeps the last 1,000).
func unboundedHub(t *testing.T) (*emulator.Emulator, string) {
	t.Helper()
	emu, err := emulator.New(emulator.Options{APIKey: testAPIKey, WebhookSecret: []byte("unused"), MaxHistory: math.MaxInt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	return emu, srv.URL
}

// ledger is what the harness did and saw: the checker's input.
type ledger struct {
	mu        sync.Mutex
	accepted  map[string]bool // webhooks answered 2xx, by event id
	received  map[string]int  // deliveries to an app, by event id
	positions map[string]map[uint64]bool
	corrupted []string
	queued    map[string]bool        // async SendEvents the sidecar took, by key
	answers   map[int]int            // webhook answers by status (0: no answer)
	okAt      map[string][]time.Time // when each URL answered 2xx
	failAt    map[string][]time.Time // when each URL answered otherwise, or not at all
}

func newLedger() *ledger {
	return &ledger{accepted: map[string]bool{}, received: map[string]int{}, positions: map[string]map[uint64]bool{}, queued: map[string]bool{}, answers: map[int]int{}, okAt: map[string][]time.Time{}, failAt: map[string][]time.Time{}}
}

func (l *ledger) nAccepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// deliver records an event an app received.
func (l *ledger) deliver(e *sidecarv1.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received[e.GetId()]++
	if l.positions[e.GetId()] == nil {
		l.positions[e.GetId()] = map[uint64]bool{}
	}
	l.positions[e.GetId()][e.GetSequence()] = true
	if string(e.GetPayload()) != crashPayload(e.GetId()) {
		l.corrupted = append(l.corrupted, e.GetId())
	}
}

// longestGap returns the longest time within [from, to] that url answered
// no webhook with a 2xx.
func (l *ledger) longestGap(url string, from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, gap := from, time.Duration(0)
	for _, at := range l.okAt[url] {
		if at.Before(from) || at.After(to) {
			continue
		}
		gap = max(gap, at.Sub(last))
		last = at
	}
	return max(gap, to.Sub(last))
}

// outages returns the stretches within [from, to] of at least min in which
// url answered webhooks, but none with a 2xx: from the first failed attempt
// to the next 2xx (or to).
func (l *ledger) outages(url string, from, to time.Time, min time.Duration) [][2]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][2]time.Time
	cursor := from
	for _, fail := range l.failAt[url] { // in time order: appended under l.mu
		if fail.Before(cursor) || fail.After(to) {
			continue
		}
		end := to
		for _, ok := range l.okAt[url] {
			if ok.After(fail) {
				end = min2(ok, to)
				break
			}
		}
		if end.Sub(fail) >= min {
			out = append(out, [2]time.Time{fail, end})
		}
		cursor = end
	}
	return out
}

func min2(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// chronosHub sends webhooks as ChronosHub does, from workers goroutines:
// each event is retried with the same id until a 2xx, to the URL url
// returns at the time ("" while no sidecar takes them). It returns when
// stop is closed.
func chronosHub(client *http.Client, url func() string, l *ledger, workers int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := uuid.NewString()
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					u := url()
					if u == "" {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					st, _, err := signedPost(ctx, client, u, id, crashPayload(id))
					cancel()
					if err != nil {
						st = 0
					}
					l.mu.Lock()
					l.answers[st]++
					if st/100 == 2 {
						l.accepted[id] = true
						l.okAt[u] = append(l.okAt[u], time.Now())
					} else {
						l.failAt[u] = append(l.failAt[u], time.Now())
					}
					l.mu.Unlock()
					if st/100 == 2 {
						break
					}
				}
			}
		}()
	}
	return &wg
}

// appSends queues an async SendEvent every 20ms through the sidecar at
// addr() until stop is closed, recording each one the sidecar took.
func appSends(addr func() string, l *ledger, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	var n atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			a := addr()
			if a == "" {
				continue
			}
			key := "async-" + strconv.FormatInt(n.Add(1), 10)
			if sendAsync(a, key) {
				l.mu.Lock()
				l.queued[key] = true
				l.mu.Unlock()
			}
		}
	}()
	return &wg
}

// verdict is what the checker found.
type verdict struct {
	accepted, delivered, lost int      // webhooks
	lostIDs                   []string // the first few
	stored2                   int      // events stored at more than one log position
	redelivered               int      // deliveries beyond the first
	queued, reached, unsent   int      // async SendEvents; unsent: no record left in the sidecar
	unsentKeys                []string
	stuck                     int // async SendEvents the sidecar still says are queued (not strict)
	stuckKeys                 []string
	deadLetters               int
}

func (v verdict) String() string {
	return fmt.Sprintf("%d webhooks answered 2xx: %d delivered and acked, %d lost; %d stored twice, %d redelivered; %d async events queued: %d reached ChronosHub, %d lost, %d stuck as queued; %d dead letters",
		v.accepted, v.delivered, v.lost, v.stored2, v.redelivered, v.queued, v.reached, v.unsent, v.stuck, v.deadLetters)
}

// check is the checker, run at the end of every fault run against the
// sidecar at a once the faults are over and the load stopped. It posts one
// last webhook, the marker, and then reads the whole event log through a
// fresh subscription (sub), acking every event, until the marker was
// delivered and the subscription has nothing pending and nothing unacked:
// an event missing at the end is proven missing by the log's state, not by
// a timeout. It then checks that every async event the sidecar took reached
// ChronosHub, waiting for those still queued and counting as lost those the
// sidecar no longer knows.
//
// strict fails the test on any loss; otherwise losses are counted and
// returned. Corruption and dead letters with other than 5 offers (the
// default CHRONOSHUB_MAX_ATTEMPTS) always fail it.
func check(t *testing.T, l *ledger, emu *emulator.Emulator, a sidecar.Addrs, hc *http.Client, sub string, strict bool, diag func()) verdict {
	t.Helper()
	fatalf := func(format string, args ...any) {
		t.Helper()
		if diag != nil {
			diag()
		}
		t.Fatalf(format, args...)
	}
	client, _ := grpcClient(t, a.GRPC)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	marker := uuid.NewString()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		st, _, err := signedPost(pctx, hc, "https://"+a.Webhook+"/webhook", marker, crashPayload(marker))
		pcancel()
		if err == nil && st/100 == 2 {
			break
		}
		if ctx.Err() != nil {
			fatalf("checker: the marker webhook was not accepted: %d, %v", st, err)
		}
		time.Sleep(100 * time.Millisecond) // ChronosHub's retry
	}
	// The reading app reconnects whenever its stream breaks, as apps do (a
	// store in an election answers some calls with an error).
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	var markerSeen atomic.Bool
	var reconnects atomic.Int64
	go func() {
		for streamCtx.Err() == nil {
			s, err := client.StreamEvents(streamCtx, &sidecarv1.StreamEventsRequest{Subscription: sub, MaxInFlight: 256})
			for err == nil {
				var r *sidecarv1.StreamEventsResponse
				if r, err = s.Recv(); err != nil {
					break
				}
				if r.GetEvent().GetId() == marker {
					markerSeen.Store(true)
				} else {
					l.deliver(r.GetEvent())
				}
				_, err = client.AckEvents(streamCtx, &sidecarv1.AckEventsRequest{Subscription: sub, EventIds: []string{r.GetEvent().GetId()}})
			}
			if streamCtx.Err() == nil {
				reconnects.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	var (
		g   *sidecarv1.GetSubscriptionResponse
		err error
	)
	for {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		g, err = client.GetSubscription(gctx, &sidecarv1.GetSubscriptionRequest{Subscription: sub})
		gcancel()
		if err == nil && markerSeen.Load() && g.GetSubscription().GetPendingCount() == 0 && g.GetSubscription().GetUnackedCount() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			fatalf("checker: subscription %s not read to its end (marker delivered: %v, %d reconnects) after 3 minutes: %v, %v", sub, markerSeen.Load(), reconnects.Load(), g, err)
		case <-time.After(50 * time.Millisecond): // a poll interval
		}
	}
	stopStream()
	if n := reconnects.Load(); n > 0 {
		t.Logf("checker: the reading app reconnected %d times", n)
	}

	l.mu.Lock()
	var v verdict
	v.accepted = len(l.accepted)
	for id := range l.accepted {
		if l.received[id] == 0 {
			v.lostIDs = append(v.lostIDs, id)
		} else {
			v.delivered++
		}
	}
	v.lost = len(v.lostIDs)
	for id, n := range l.received {
		if len(l.positions[id]) > 1 {
			v.stored2++
		}
		v.redelivered += n - 1
	}
	corrupted := l.corrupted
	queued := make([]string, 0, len(l.queued))
	for k := range l.queued {
		queued = append(queued, k)
	}
	l.mu.Unlock()
	if len(corrupted) > 0 {
		fatalf("checker: %d corrupted events, e.g. %v", len(corrupted), first(corrupted))
	}
	v.queued = len(queued)

	// Async: each queued key reaches ChronosHub, or is still queued (wait),
	// or is unknown to the sidecar (lost).
	// Without strict, a record the sidecar keeps as queued while the cut
	// took its queue entry is never sent: it is counted as stuck after a
	// shorter wait.
	asyncLimit := 2 * time.Minute
	if !strict {
		asyncLimit = 30 * time.Second
	}
	deadline := time.Now().Add(asyncLimit)
	for {
		in := map[string]bool{}
		for _, e := range emu.Inbound() {
			var p struct{ Key string }
			json.Unmarshal(e.Payload, &p)
			in[p.Key] = true
		}
		var waiting, unknown []string
		v.reached, v.unsent, v.unsentKeys = 0, 0, nil
		for _, k := range queued {
			if in[k] {
				v.reached++
				continue
			}
			var r *sidecarv1.GetSentEventResponse
			err := whileUnavailable(ctx, func() (err error) {
				r, err = client.GetSentEvent(ctx, &sidecarv1.GetSentEventRequest{IdempotencyKey: k})
				return err
			})
			switch {
			case status.Code(err) == codes.NotFound:
				// On a cluster a read may be answered by a replica of the
				// bucket that has not applied the newest write yet: unknown
				// is lost only if it stays so until the deadline.
				unknown = append(unknown, k)
			case err != nil:
				fatalf("checker: GetSentEvent(%s): %v", k, err)
			case r.GetSentEvent().GetState() == sidecarv1.SentEventState_SENT_EVENT_STATE_FAILED:
				fatalf("checker: async event %s failed: %v", k, r.GetSentEvent())
			default:
				waiting = append(waiting, k)
			}
		}
		if len(waiting) == 0 && (len(unknown) == 0 || time.Now().After(deadline)) {
			v.unsent, v.unsentKeys = len(unknown), unknown
			break
		}
		if time.Now().After(deadline) {
			v.unsent, v.unsentKeys = len(unknown), unknown
			if len(waiting) > 0 && strict {
				fatalf("checker: %d of %d queued events still not at ChronosHub after %v, e.g. %v", len(waiting), len(queued), asyncLimit, first(waiting))
			}
			v.stuck, v.stuckKeys = len(waiting), waiting
			break
		}
		time.Sleep(100 * time.Millisecond) // a poll interval
	}

	// Dead letters: none expected (the checker acks everything), and any
	// there must have been offered exactly CHRONOSHUB_MAX_ATTEMPTS times.
	dls, err := allDeadLetters(ctx, client, sub)
	if err != nil {
		fatalf("checker: %v", err)
	}
	v.deadLetters = len(dls)
	for _, d := range dls {
		if a := d.GetEvent().GetAttempt(); a != 5 {
			t.Errorf("checker: dead letter %s records %d attempts, want 5", d.GetEvent().GetId(), a)
		}
	}
	if strict && (v.lost > 0 || v.unsent > 0) {
		fatalf("checker: %v (lost webhooks e.g. %v; lost async keys e.g. %v)", v, first(v.lostIDs), first(v.unsentKeys))
	}
	return v
}

// whileUnavailable calls f until it returns anything but UNAVAILABLE, for up
// to a minute, as an app retries: after a partition heals, a JetStream
// server can answer "temporarily unavailable" (503) for several seconds
// while it catches up with the cluster (ListDeadLetters' consumer lookup
// failed so in a CI run, after "both sidecars ready").
func whileUnavailable(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond): // a poll interval
		}
	}
}

// allDeadLetters lists every dead letter of sub, page by page (nothing the
// checker reads may come from a bounded listing).
func allDeadLetters(ctx context.Context, client sidecarv1.EventServiceClient, sub string) ([]*sidecarv1.DeadLetter, error) {
	var all []*sidecarv1.DeadLetter
	token := ""
	for {
		var r *sidecarv1.ListDeadLettersResponse
		err := whileUnavailable(ctx, func() (err error) {
			r, err = client.ListDeadLetters(ctx, &sidecarv1.ListDeadLettersRequest{Subscription: sub, PageSize: 1000, PageToken: token})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("ListDeadLetters(%s): %w", sub, err)
		}
		all = append(all, r.GetDeadLetters()...)
		if token = r.GetNextPageToken(); token == "" {
			return all, nil
		}
	}
}

// TestLedgerOutages checks how the readiness check finds a sidecar's
// stretches without a 2xx.
func TestLedgerOutages(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	const u = "u"
	tests := []struct {
		name     string
		ok, fail []float64
		want     [][2]float64
	}{
		{"none", []float64{1, 2, 3}, nil, nil},
		{"short", []float64{1, 3}, []float64{2}, nil},
		{"long, ended by a 2xx", []float64{1, 9}, []float64{2, 4, 6}, [][2]float64{{2, 9}}},
		{"long, to the end", []float64{1}, []float64{2, 4}, [][2]float64{{2, 10}}},
		{"two", []float64{1, 6, 7}, []float64{2, 3, 6.5, 7.5}, [][2]float64{{2, 6}, {7.5, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			for _, s := range tt.ok {
				l.okAt[u] = append(l.okAt[u], at(s))
			}
			for _, s := range tt.fail {
				l.failAt[u] = append(l.failAt[u], at(s))
			}
			var got [][2]float64
			for _, o := range l.outages(u, at(0), at(10), 2*time.Second) {
				got = append(got, [2]float64{o[0].Sub(t0).Seconds(), o[1].Sub(t0).Seconds()})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("outages = %v, want %v", got, tt.want)
			}
		})
	}
}
