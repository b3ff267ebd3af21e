package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/emulator"
)

// crashPayload is the payload of event id: derived from the id, so that a
// corrupted or mixed-up event is detected.
func crashPayload(id string) string {
	return fmt.Sprintf(`{"id":%q,"title":"Über 𝔸 🧬","pad":"%0200d"}`, id, 7)
}

// TestCrashLosesNothing is the crash harness. While webhooks arrive the way
// ChronosHub sends them (retries with the same id until a 2xx), a consumer
// acks, and the app queues async events during a ChronosHub outage, the
// sidecar binary is killed with SIGKILL at random moments and restarted on
// the same data dir. At the end every webhook that got a 2xx has been
// delivered, uncorrupted, and every queued event reached ChronosHub.
//
// Meanwhile a flapping app churns a second subscription: it connects, reads
// a couple of events, never acks them and drops the stream. Those events
// reach the subscription's dead letters after CHRONOSHUB_MAX_ATTEMPTS
// offers; the harness checks that none got there with fewer offers to an
// app (an attempt counts an offer, not a fetch into a stream's buffer).
//
// A push subscription posts every event to an app as well: each webhook
// that got a 2xx must reach it at least once, uncorrupted.
//
// CHRONOSHUB_CRASH_ROUNDS sets the number of kills (default 3); run it longer
// by hand, e.g. CHRONOSHUB_CRASH_ROUNDS=50 go test -run TestCrashLosesNothing.
func TestCrashLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rounds := 3
	if v := os.Getenv("CHRONOSHUB_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CHRONOSHUB_CRASH_ROUNDS: %v", err)
		}
		rounds = n
	}
	emu, baseURL := hub(t)
	env, client := serveEnv(t, baseURL)
	env["CHRONOSHUB_ACK_WAIT"] = "1s"
	env["CHRONOSHUB_SEND_MAX_ATTEMPTS"] = "2"
	pushFile, pushOutstanding := pushReceiver(t, "500ms", crashPayload)
	env["CHRONOSHUB_SUBSCRIPTIONS_FILE"] = pushFile

	var (
		webhookURL atomic.Value // string: the current sidecar's webhook URL
		grpcAddr   atomic.Value // string
		mu         sync.Mutex
		accepted   = map[string]bool{} // webhooks answered 2xx
		received   = map[string]int{}  // deliveries to the consumer, by id
		corrupted  []string
		queued     = map[string]bool{} // async SendEvent keys the sidecar took
		kills      int
	)
	stop := make(chan struct{})     // ends the consumer
	stopLoad := make(chan struct{}) // ends the senders
	var wg, load sync.WaitGroup

	// Senders: like ChronosHub, retry an event until it is accepted.
	for range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				id := uuid.NewString()
				for {
					select {
					case <-stopLoad:
						return
					case <-time.After(10 * time.Millisecond):
					}
					url, _ := webhookURL.Load().(string)
					st, _, err := emulator.SendWebhook(context.Background(), client, url, []byte(testSecret), "manuscript.submitted", []byte(crashPayload(id)), id, time.Now())
					if err == nil && st/100 == 2 {
						mu.Lock()
						accepted[id] = true
						mu.Unlock()
						break
					}
				}
			}
		}()
	}

	// The consumer: reconnects whenever the stream breaks; acks everything.
	wg.Add(1)
	go func() {
		defer wg.Done()
		untilStopped(stop, 10*time.Millisecond, func() {
			addr, _ := grpcAddr.Load().(string)
			consume(addr, stop, func(e *sidecarv1.Event) {
				mu.Lock()
				defer mu.Unlock()
				received[e.GetId()]++
				if string(e.GetPayload()) != crashPayload(e.GetId()) {
					corrupted = append(corrupted, e.GetId())
				}
			})
		})
	}()

	// A flapping app on another subscription: read two, drop the stream.
	churnOffers := map[string]int{} // offers the flapping app received, by id
	wg.Add(1)
	go func() {
		defer wg.Done()
		untilStopped(stop, 5*time.Millisecond, func() {
			addr, _ := grpcAddr.Load().(string)
			churn(addr, stop, 2, func(e *sidecarv1.Event) {
				mu.Lock()
				churnOffers[e.GetId()]++
				mu.Unlock()
			})
		})
	}()

	// The app queues async events; ChronosHub is down for the first rounds.
	if err := emu.SetFaults(emulator.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	load.Add(1)
	go func() {
		defer load.Done()
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(20 * time.Millisecond):
			}
			addr, _ := grpcAddr.Load().(string)
			if addr == "" {
				continue
			}
			key := "async-" + strconv.Itoa(i)
			if sendAsync(addr, key) {
				mu.Lock()
				queued[key] = true
				mu.Unlock()
			}
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round <= rounds; round++ {
		p := startProcess(t, env)
		a := p.ready(t)
		if strings.Contains(p.stderr.String(), "event store damaged") {
			t.Fatalf("round %d: a restart after SIGKILL reported a damaged store", round)
		}
		webhookURL.Store("https://" + a.Webhook + "/webhook")
		grpcAddr.Store(a.GRPC)
		if round == rounds/2+1 {
			emu.SetFaults(emulator.Faults{}) // ChronosHub is back
		}
		if round == rounds {
			break // the last one stays up
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
		p.kill(t)
		kills++
	}
	emu.SetFaults(emulator.Faults{})

	// Let the last sidecar take a little more, then stop the load and
	// wait until everything accepted was delivered.
	time.Sleep(500 * time.Millisecond)
	close(stopLoad)
	load.Wait()
	// 6 minutes: an async event queued during the ChronosHub outage of the
	// first half retries with a growing delay, up to the outbox's 5 minutes,
	// so after ChronosHub is back it may wait that long for its next attempt
	// (a 200-kill run found one still queued after 120 s, at its 14th
	// attempt, that reached ChronosHub later); and a kill mid-post holds it
	// for the worker's lease (30 s). The wait ends as soon as nothing is
	// outstanding.
	waitDelivered(t, 6*time.Minute, fmt.Sprintf("after %d kills", kills), stop, func() (missing, unsent []string, nAccepted, nQueued int) {
		mu.Lock()
		defer mu.Unlock()
		missing, unsent = outstanding(accepted, received, queued, emu.Inbound())
		notPushed, _ := pushOutstanding(accepted)
		return append(missing, notPushed...), unsent, len(accepted), len(queued)
	})
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(corrupted) > 0 {
		t.Fatalf("corrupted events: %v", corrupted)
	}
	if _, bad := pushOutstanding(accepted); len(bad) > 0 {
		t.Fatalf("corrupted pushed events: %v", bad)
	}
	dups := 0
	for id, n := range received {
		if accepted[id] && n > 1 {
			dups += n - 1
		}
	}
	// Every dead letter of the flapping app's subscription was offered to
	// it CHRONOSHUB_MAX_ATTEMPTS times. A SIGKILL can take an offer the
	// sidecar sent before the app read it, so each kill may cost one.
	const maxAttempts = 5
	addr, _ := grpcAddr.Load().(string)
	conn, err := grpcDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Every page: a long run dead-letters more than one page holds.
	var dead []*sidecarv1.DeadLetter
	for token := ""; ; {
		dl, err := sidecarv1.NewEventServiceClient(conn).ListDeadLetters(t.Context(), &sidecarv1.ListDeadLettersRequest{Subscription: "churn", PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("ListDeadLetters(churn): %v", err)
		}
		dead = append(dead, dl.GetDeadLetters()...)
		if token = dl.GetNextPageToken(); token == "" {
			break
		}
	}
	short := 0
	for _, d := range dead {
		id := d.GetEvent().GetId()
		if a := d.GetEvent().GetAttempt(); a != maxAttempts {
			t.Errorf("dead letter %s records %d attempts, want %d", id, a, maxAttempts)
		}
		if n := churnOffers[id]; n < maxAttempts-kills {
			t.Errorf("dead letter %s was offered to the app %d times, fewer than %d attempts less %d kills", id, n, maxAttempts, kills)
		} else if n < maxAttempts {
			short++
		}
	}
	inbound := emu.Inbound()
	t.Logf("flapping app: %d dead letters, each offered %d times (%d short of it by an offer lost to a kill)", len(dead), maxAttempts, short)
	t.Logf("%d kills: %d webhooks accepted, all delivered (%d duplicate deliveries, at-least-once); %d async events queued, all reached ChronosHub (%d posts in all)",
		kills, len(accepted), dups, len(queued), len(inbound))
}

// waitDelivered polls check, which returns what is still outstanding (see
// outstanding) and how many webhooks were accepted and events queued, until
// nothing is; after limit it closes stop and fails, saying what the test did
// before (after).
func waitDelivered(t *testing.T, limit time.Duration, after string, stop chan struct{}, check func() (missing, unsent []string, nAccepted, nQueued int)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		missing, unsent, nAccepted, nQueued := check()
		if len(missing) == 0 && len(unsent) == 0 {
			return
		}
		if time.Now().After(deadline) {
			close(stop)
			t.Fatalf("%s: %d of %d accepted webhooks never delivered (e.g. %v); %d of %d queued events never reached ChronosHub (e.g. %v)",
				after, len(missing), nAccepted, first(missing), len(unsent), nQueued, first(unsent))
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not a wait for timing
	}
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// consume streams the "crash" subscription from addr until the stream
// breaks or stop is closed, acking every event after handing it to handle.
func consume(addr string, stop <-chan struct{}, handle func(*sidecarv1.Event)) {
	if addr == "" {
		return
	}
	conn, err := grpcDial(addr)
	if err != nil {
		return
	}
	defer conn.Close()
	client := sidecarv1.NewEventServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s, err := client.StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "crash"})
	if err != nil {
		return
	}
	for {
		r, err := s.Recv()
		if err != nil {
			return
		}
		handle(r.GetEvent())
		if _, err := client.AckEvents(ctx, &sidecarv1.AckEventsRequest{Subscription: "crash", EventIds: []string{r.GetEvent().GetId()}}); err != nil {
			return
		}
	}
}

// sendAsync queues one async event with key; it reports whether the
// sidecar took it.
func sendAsync(addr, key string) bool {
	resp, ok := sendEvent(addr, key, true, 2*time.Second)
	return ok && resp.GetState() != sidecarv1.SentEventState_SENT_EVENT_STATE_UNSPECIFIED
}

// outstanding returns the webhooks answered 2xx (accepted) that no app
// received, and the async events queued (by key) that ChronosHub's inbound
// events do not carry yet.
func outstanding[V any](accepted map[string]bool, received map[string]int, queued map[string]V, inbound []emulator.InboundEvent) (missing, unsent []string) {
	for id := range accepted {
		if received[id] == 0 {
			missing = append(missing, id)
		}
	}
	in := map[string]bool{}
	for _, e := range inbound {
		var p struct{ Key string }
		json.Unmarshal(e.Payload, &p)
		in[p.Key] = true
	}
	for key := range queued {
		if !in[key] {
			unsent = append(unsent, key)
		}
	}
	return missing, unsent
}

// untilStopped calls connect again, pause after each return, until stop is
// closed: an app that reconnects whenever its stream breaks.
func untilStopped(stop <-chan struct{}, pause time.Duration, connect func()) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		connect()
		time.Sleep(pause)
	}
}

// churn opens a stream on the "churn" subscription with at most n events in
// flight, reads n events without acking them, and drops the stream, as a
// flapping app does.
func churn(addr string, stop <-chan struct{}, n uint32, offered func(*sidecarv1.Event)) {
	if addr == "" {
		return
	}
	conn, err := grpcDial(addr)
	if err != nil {
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	s, err := sidecarv1.NewEventServiceClient(conn).StreamEvents(ctx, &sidecarv1.StreamEventsRequest{Subscription: "churn", MaxInFlight: n})
	if err != nil {
		return
	}
	for range n {
		r, err := s.Recv()
		if err != nil {
			return
		}
		offered(r.GetEvent())
	}
}
