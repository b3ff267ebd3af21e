package kubernetes

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the NATS servers and clients the tests start are all
// gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
