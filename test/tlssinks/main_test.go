// Package tlssinks_test runs connectd's PostgreSQL and Redis sinks over TLS
// against real servers each test starts on loopback for itself (its own
// initdb, its own redis-server with only a TLS port), with certificates
// from test/pki: a real `connectd run` process copies the shared test
// Kafka into them exactly once, `connectd verify` judges the result, and
// connectors with a wrong CA, no TLS, a wrong password or no client
// certificate show the cause in their status and write nothing (issue 20).
//
// It needs the Kafka of `make services` and the PostgreSQL and Redis
// server binaries it installs; a missing one fails the test saying how to
// install it, and -short skips every test.
package tlssinks_test

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

// connectd is the binary under test, built at first use (so -short builds
// nothing).
var connectd = testenv.ConnectdBinary("connectd-tlssinks-test-")
