// Package batch_test is the proof of "batch equals stream" (issue 16): the
// same connector definitions, run once as a stream (`connectd run`, drained,
// then SIGTERM) and once as a bounded job (`connectd run --until end`,
// SIGKILLed while it works, then finished by the same command), over the
// same input topic, write the same output record for record, and
// `connectd verify --stopped` is clean on both. It runs the real binary
// against the Kafka, PostgreSQL and Redis of `make services`; with -short
// it skips. See test/README.md, "Batch equals stream".
package batch_test

import (
	"os"
	"testing"

	"github.com/connectd/connectd/test/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	connectd.Remove()
	os.Exit(code)
}

// connectd is the binary under test, built once on first use (so -short,
// which skips the test, builds nothing).
var connectd = testenv.ConnectdBinary("connectd-batch-test-")
