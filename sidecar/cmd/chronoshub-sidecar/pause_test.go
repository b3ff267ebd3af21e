package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestPausedProcesses runs the fleet of TestNetworkFaults (without network
// faults) and pauses processes with SIGSTOP, then continues them with
// SIGCONT: the events stream's leader among the NATS nodes, for longer than
// NATS's election timeout, and a sidecar, for longer than the ack wait
// (2s), so that its unacked events go to the other sidecar's app. Each
// pause is logged with the longest time each sidecar answered no webhook
// with a 2xx in it; the checker runs at the end.
//
// CHRONOSHUB_FAULT_ROUNDS sets the number of pauses of each kind (default
// 1); CHRONOSHUB_FAULT_SEED replays a schedule.
func TestPausedProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary on a NATS cluster")
	}
	sched := newSchedule(t, 1)
	f := startFaultFleet(t)
	f.settle(50, time.Minute)
	var order []int
	for range sched.rounds {
		order = append(order, 0, 1)
	}
	for i := len(order) - 1; i > 0; i-- {
		j := sched.intN(i + 1)
		order[i], order[j] = order[j], order[i]
	}
	counts := map[string]int{}
	for round, kind := range order {
		var what string
		var resume func()
		start := time.Now()
		switch kind {
		case 0:
			k := leaderOf(t, f.c, "CHRONOSHUB_EVENTS")
			if k < 0 {
				k = sched.intN(3)
			}
			hold := sched.between(6*time.Second, 10*time.Second)
			f.c.Pause(k)
			what = fmt.Sprintf("NATS node %d (the events stream's leader) paused for %v", k, hold)
			time.Sleep(hold) // the pause's length, from the schedule
			resume = func() { f.c.Resume(k) }
			counts["nats leader"]++
		case 1:
			s := sched.intN(2)
			hold := sched.between(3*time.Second, 7*time.Second)
			p := f.slots[s].p
			if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("sidecar %d paused for %v", s, hold)
			time.Sleep(hold) // the pause's length, from the schedule
			resume = func() { p.cmd.Process.Signal(syscall.SIGCONT) }
			counts["sidecar"]++
		}
		resume()
		end := time.Now()
		f.checkReadiness(start, end)
		back := f.healthy(90 * time.Second)
		f.settle(20, time.Minute)
		var gaps []string
		for i, s := range f.slots {
			url := "https://" + s.get().Webhook + "/webhook"
			gaps = append(gaps, fmt.Sprintf("sidecar %d answered no 2xx for %v at most", i, f.l.longestGap(url, start, end).Round(100*time.Millisecond)))
		}
		t.Logf("pause %d: %s; %v; both sidecars ready %v after it", round+1, what, gaps, back.Round(100*time.Millisecond))
	}
	v := f.finish()
	t.Logf("pauses %v: %v; webhook answers %v; %s", counts, v, f.answers(), f.readinessReport())
}
