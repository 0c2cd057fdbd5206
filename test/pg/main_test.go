// Package pg_test runs connectd's Kafka → PostgreSQL pipelines end to end:
// Kafka is franz-go's in-process kfake broker (with injected faults), the
// sink is the real PostgreSQL of `make services` (PG_DSN), a fresh database
// per test. Without PostgreSQL the tests fail; -short skips them.
package pg_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
