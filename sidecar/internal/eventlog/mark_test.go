package eventlog_test

import (
	"context"
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
