package eventlog

import "testing"

// FuzzParseCursor: a page token comes from the client; any string is
// refused or read back as a cursor that formats to itself.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"1-1", "5-4", "0-3", "3-1", "-", "", "18446744073709551615-18446744073709551615", "1-2-3", "+1-2", "01-2", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		next, last, ok := parseCursor(s)
		if !ok {
			return
		}
		if next == 0 || next > last+1 {
			t.Fatalf("parseCursor(%q) = %d, %d, true: outside a range", s, next, last)
		}
		if n2, l2, ok2 := parseCursor(formatCursor(next, last)); !ok2 || n2 != next || l2 != last {
			t.Fatalf("parseCursor(formatCursor(%d, %d)) = %d, %d, %v", next, last, n2, l2, ok2)
		}
	})
}
