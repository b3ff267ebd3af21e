package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sidecarv1 "github.com/chronoshub/chronoshub-sidecar/gen/go/chronoshub/sidecar/v1"
)

// profileResult is the CPU profile of the keep-alive ingest load, on the
// bare baseline and on the sidecar's ingest path run in-process.
type profileResult struct {
	Duration                         time.Duration
	BaselineRate, SideRate, SendRate float64
	// Categories are flat CPU shares (percent of each profile's samples)
	// by what the code is: Share[0] baseline ingest, [1] sidecar ingest,
	// [2] sidecar SendEvent.
	Categories []categoryShare
	// TopCum are the top functions by cumulative share of the sidecar's
	// ingest [0] and SendEvent [1] profiles.
	TopCum [2][]profileLine
	// Samples are pprof's "Duration: …, Total samples" lines, indexed as
	// Share.
	Samples [3]string
}

type categoryShare struct {
	Name  string
	Share [3]float64
}

type profileLine struct {
	Flat, Cum float64
	Name      string
}

// categories classify a function by its package, first match wins.
var categories = []struct {
	name     string
	prefixes []string
}{
	{"HMAC-SHA256 (webhook signature)", []string{"crypto/internal/fips140/sha256", "crypto/sha256", "crypto/hmac", "crypto/internal/fips140/hmac"}},
	{"TLS record crypto (AES-GCM)", []string{"crypto/internal/fips140/aes", "crypto/aes", "crypto/cipher"}},
	{"TLS handshake crypto (ECDSA, ECDH, ML-KEM)", []string{"crypto/internal/fips140/nistec", "crypto/internal/fips140/ecdsa", "crypto/internal/fips140/mlkem", "crypto/internal/fips140/edwards25519", "crypto/internal/fips140/bigmod", "crypto/ecdh", "crypto/internal/fips140/ecdh", "crypto/ecdsa", "crypto/internal/fips140/sha3", "crypto/internal/fips140/sha512", "crypto/internal/fips140/hkdf"}},
	{"crypto/tls protocol", []string{"crypto/"}},
	{"NATS JetStream server (embedded)", []string{"github.com/nats-io/nats-server"}},
	{"NATS client", []string{"github.com/nats-io/nats.go", "github.com/nats-io/nuid"}},
	{"JetStream checksums (highwayhash)", []string{"github.com/minio/highwayhash", "github.com/klauspost"}},
	{"sidecar code (webhook, eventlog, grpcapi, outbox, client)", []string{"github.com/chronoshub"}},
	{"gRPC, HTTP/2, protobuf", []string{"google.golang.org/grpc", "golang.org/x/net/http2", "google.golang.org/protobuf"}},
	{"encoding/json", []string{"encoding/json"}},
	{"net/http server and client (textproto, bufio)", []string{"net/http", "net/textproto", "bufio", "net/url", "mime"}},
	{"GC and allocation", []string{"runtime.gc", "runtime.scanobject", "runtime.mallocgc", "runtime.greyobject", "runtime.findObject", "runtime.markBits", "runtime.(*mspan)", "runtime.(*mheap)", "runtime.(*gcWork)", "runtime.memclrNoHeapPointers", "runtime.heapBits", "runtime.scanblock", "runtime.nextFreeFast", "runtime.(*mcache)", "runtime.wbBuf", "runtime.bulkBarrier", "runtime.typePointers", "runtime.sweep", "runtime.(*sweep", "runtime.spanOf", "runtime.markroot", "runtime.(*gcControllerState)", "runtime.newobject", "runtime.makeslice", "runtime.growslice", "runtime.(*mcentral)", "runtime.deductAssistCredit", "runtime.scanstack", "runtime.scanframe", "runtime.(*unwinder)", "runtime.pcvalue", "runtime.funcInfo", "runtime.step", "runtime.(*stkframe)", "runtime.tryDeferToSpanScan", "runtime.(*spanInlineMarkBits)", "runtime.scanSpan", "runtime.(*gcBits)", "runtime.(*spanQueue)", "runtime.(*spanSPMC)"}},
	{"system calls (network and file I/O)", []string{"internal/runtime/syscall", "syscall.", "runtime/internal/syscall", "internal/poll"}},
	{"scheduler, timers, futex, memmove", []string{"runtime.", "internal/runtime", "aeshashbody", "gogo", "memeqbody", "indexbytebody"}},
}

func categoryOf(name string) string {
	for _, c := range categories {
		for _, p := range c.prefixes {
			if strings.HasPrefix(name, p) {
				return c.name
			}
		}
	}
	return "other (strings, strconv, sync, time, …)"
}

// benchProfile profiles, with runtime/pprof in child processes (the binary
// has no pprof endpoint), the keep-alive ingest load on the bare baseline
// and on the sidecar's ingest path, and SendEvent with SendCallers callers
// on the sidecar's gRPC path, and classifies where the CPU goes.
func (h *harness) benchProfile(ctx context.Context) error {
	if !h.cfg.Profile {
		h.res.Notes = append(h.res.Notes, "profiling skipped (-profile=false)")
		return nil
	}
	d := max(h.cfg.Duration, 3*time.Second)
	if h.cfg.Quick {
		d = h.cfg.Duration
	}
	ingest := func(c *child) (float64, error) {
		url := "https://" + c.Addr + "/webhook"
		client := webhookClient(h.pool, true, h.cfg.Senders)
		defer client.CloseIdleConnections()
		r := closedLoop(ctx, h.cfg.Senders, h.cfg.Warmup, d, func(ctx context.Context, _ int) error {
			return postWebhook(ctx, client, url, makePayload(0, time.Now()))
		})
		if r.Errors > 0 {
			return 0, fmt.Errorf("%d errors, last %v", r.Errors, r.LastErr)
		}
		return r.Rate, nil
	}
	send := func(c *child) (float64, error) {
		conn, err := dialGRPC(c.GRPC)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		grpcc := sidecarv1.NewEventServiceClient(conn)
		payload := makePayload(0, time.Now())
		r := closedLoop(ctx, h.cfg.SendCallers, h.cfg.Warmup, d, func(ctx context.Context, _ int) error {
			_, err := grpcc.SendEvent(ctx, &sidecarv1.SendEventRequest{Type: benchEventType, Payload: payload})
			return err
		})
		h.emu.ClearInbound()
		if r.Errors > 0 {
			return 0, fmt.Errorf("%d errors, last %v", r.Errors, r.LastErr)
		}
		return r.Rate, nil
	}
	profileOne := func(mode, prof string, load func(*child) (float64, error), args ...string) (float64, error) {
		c, err := h.startChild(mode, append([]string{"-cert", h.certFile, "-key", h.keyFile, "-cpuprofile", prof}, args...)...)
		if err != nil {
			return 0, err
		}
		rate, loadErr := load(c)
		if err := c.stop(); err != nil {
			return 0, fmt.Errorf("%s: %w", mode, err)
		}
		if loadErr != nil {
			return 0, fmt.Errorf("%s: %w", mode, loadErr)
		}
		return rate, nil
	}
	inprocArgs := func() []string {
		return []string{"-dir", h.dataDir("profile"), "-secret", benchSecret, "-base-url", h.emuURL}
	}

	pr := &profileResult{Duration: d}
	baseProf := filepath.Join(h.tmp, "baseline.pprof")
	sideProf := filepath.Join(h.tmp, "sidecar-ingest.pprof")
	sendProf := filepath.Join(h.tmp, "sidecar-send.pprof")
	var err error
	if pr.BaselineRate, err = profileOne(childBaseline, baseProf, ingest); err != nil {
		return err
	}
	if pr.SideRate, err = profileOne(childInproc, sideProf, ingest, inprocArgs()...); err != nil {
		return err
	}
	if pr.SendRate, err = profileOne(childInproc, sendProf, send, inprocArgs()...); err != nil {
		return err
	}
	h.logf("profiled: baseline %.0f req/s, in-process ingest path %.0f req/s, in-process SendEvent %.0f req/s", pr.BaselineRate, pr.SideRate, pr.SendRate)

	var profiles [3][]profileLine
	for i, f := range []string{baseProf, sideProf, sendProf} {
		lines, total, err := pprofTop(ctx, f, false)
		if err != nil {
			return err
		}
		profiles[i] = lines
		pr.Samples[i] = total
	}
	shares := map[string]*categoryShare{}
	for i, lines := range profiles {
		for _, l := range lines {
			name := categoryOf(l.Name)
			s := shares[name]
			if s == nil {
				s = &categoryShare{Name: name}
				shares[name] = s
			}
			s.Share[i] += l.Flat
		}
	}
	for _, s := range shares {
		pr.Categories = append(pr.Categories, *s)
	}
	slices.SortFunc(pr.Categories, func(a, b categoryShare) int {
		switch {
		case a.Share[1] > b.Share[1]:
			return -1
		case a.Share[1] < b.Share[1]:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i, f := range []string{sideProf, sendProf} {
		cum, _, err := pprofTop(ctx, f, true)
		if err != nil {
			return err
		}
		pr.TopCum[i] = cum[:min(len(cum), 30)]
	}
	h.res.Profile = pr
	return nil
}

// pprofTop runs "go tool pprof -top" on a profile and parses its table:
// every function with its flat and cumulative share, sorted by flat (or
// cumulative) share. It also returns pprof's duration/samples line.
func pprofTop(ctx context.Context, prof string, byCum bool) ([]profileLine, string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=100000"}
	if byCum {
		args = append(args, "-cum")
	}
	out, err := exec.CommandContext(ctx, "go", append(args, prof)...).Output()
	if err != nil {
		return nil, "", fmt.Errorf("go tool pprof: %w", err)
	}
	var lines []profileLine
	var total string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Duration:") {
			total = strings.TrimSpace(l)
		}
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") || !strings.HasSuffix(f[4], "%") {
			continue
		}
		flat, err1 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cum, err2 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		lines = append(lines, profileLine{Flat: flat, Cum: cum, Name: strings.Join(f[5:], " ")})
	}
	if len(lines) == 0 {
		return nil, "", fmt.Errorf("go tool pprof %s: no samples parsed", prof)
	}
	return lines, total, nil
}
