package grpcapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a stream or connection goroutine
// outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
