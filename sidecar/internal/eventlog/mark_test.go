package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronoshub/chronoshub-sidecar/sidecar/internal/eventlog"
)

// TestVerifyReportsDamagedStore damages the store's files between two runs,
// the way a torn write or a bad disk does: JetStream repairs them at start by
// dropping what it cannot read, and Verify reports how many events went.
func TestVerifyReportsDamagedStore(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, blk string)
		damaged bool
	}{
		{"tail truncated", func(t *testing.T, blk string) {
			fi, err := os.Stat(blk)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(blk, fi.Size()-500); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"middle garbled", func(t *testing.T, blk string) {
			fi, err := os.Stat(blk)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(blk, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("garbage-garbage-garbage"), fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"intact", func(*testing.T, string) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			markFile := filepath.Join(dir, "mark.json")
			l, closeLog := openLog(t, dir, eventlog.Options{})
			if lost, err := l.Verify(context.Background(), markFile); err != nil || lost != 0 {
				t.Fatalf("Verify(new store) = %d, %v", lost, err)
			}
			for i := range 100 {
				appendAll(t, l, eventlog.Event{ID: fmt.Sprint("e", i), Type: "manuscript.submitted", Payload: []byte(`{"title":"0123456789012345678901234567890123456789"}`), SignedAt: time.Now()})
			}
			if err := l.Mark(context.Background(), markFile); err != nil {
				t.Fatal(err)
			}
			closeLog()
			blks, _ := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", eventlog.EventsStream, "msgs", "*.blk"))
			if len(blks) == 0 {
				t.Fatal("no message block files")
			}
			tt.damage(t, blks[0])

			l, _ = openLog(t, dir, eventlog.Options{})
			lost, err := l.Verify(context.Background(), markFile)
			if err != nil {
				t.Fatal(err)
			}
			s, err := l.JetStream().Stream(context.Background(), eventlog.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: Verify reports %d lost, %d events left", tt.name, lost, info.State.Msgs)
			if lost != 100-info.State.Msgs {
				t.Fatalf("Verify = %d lost, want %d (100 stored, %d left)", lost, 100-info.State.Msgs, info.State.Msgs)
			}
			if tt.damaged && lost == 0 {
				t.Fatal("the damage took no event; the test damages nothing")
			}
			if again, err := l.Verify(context.Background(), markFile); err != nil || again != 0 {
				t.Fatalf("second Verify = %d, %v; want 0 (a loss is reported once)", again, err)
			}
		})
	}
}

// TestMarkCommits checks that Mark makes the events it records durable
// first (Options.Commit, between reading the log and writing the mark), and
// records nothing when that fails: a mark must never claim events a power
// loss can still take, or Verify reports a loss that was never answered 2xx.
func TestMarkCommits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	markFile := filepath.Join(dir, "mark.json")
	var commits int
	var fail error
	var markExisted bool
	l, _ := openLog(t, dir, eventlog.Options{Commit: func(context.Context) error {
		commits++
		_, err := os.Stat(markFile)
		markExisted = err == nil
		return fail
	}})
	appendAll(t, l, eventlog.Event{ID: "e1", Type: "manuscript.submitted", Payload: []byte(`{}`), SignedAt: time.Now()})
	if err := l.Mark(context.Background(), markFile); err != nil {
		t.Fatal(err)
	}
	if commits != 1 || markExisted {
		t.Errorf("Mark committed %d times (want 1), the mark existing before: %v (want false)", commits, markExisted)
	}
	want, err := os.ReadFile(markFile)
	if err != nil {
		t.Fatal(err)
	}

	fail = errors.New("fsync: input/output error")
	appendAll(t, l, eventlog.Event{ID: "e2", Type: "manuscript.submitted", Payload: []byte(`{}`), SignedAt: time.Now()})
	if err := l.Mark(context.Background(), markFile); !errors.Is(err, fail) {
		t.Errorf("Mark with a failing commit = %v, want %v", err, fail)
	}
	if got, err := os.ReadFile(markFile); err != nil || string(got) != string(want) {
		t.Errorf("mark after a failed commit = %s, %v; want it unchanged: %s", got, err, want)
	}
}
