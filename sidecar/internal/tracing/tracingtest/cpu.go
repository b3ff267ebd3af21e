package tracingtest

import (
	"syscall"
	"testing"
	"time"
)

// CPUPerOp starts measuring the CPU time (user and system) of the whole
// process; the function it returns reports it per operation of b as
// "cpu-ns/op". On a shared machine this is steadier than wall time, which
// counts the time other processes hold the cores. Call it right before the
// benchmark loop and the returned function right after it.
func CPUPerOp(b *testing.B) func() {
	b.Helper()
	start := cpuTime(b)
	return func() {
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
