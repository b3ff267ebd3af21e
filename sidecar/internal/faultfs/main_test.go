package faultfs

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: a mount's server
// loop ends with its unmount.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
