package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// stream the gateway forwards must end with its request.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
