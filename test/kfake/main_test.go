package kfake_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// connector, client and broker started here must be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
