// Package process_test is connectd's process-level failure-injection suite:
// it builds the real binary, runs `connectd run` as child processes against
// the real Apache Kafka that `make services` starts, and hurts them with real
// signals — SIGKILL at random points, SIGSTOP past the group session timeout
// and past the broker's transaction timeout, SIGTERM mid-stream — then asks
// `connectd verify` whether every input event reached the output exactly once.
//
// It needs Kafka (`make services`); with -short every test skips. See
// README.md in this directory.
package process_test

import (
	"flag"
	"os"
	"testing"

	"github.com/connectd/connectd/test/testenv"
)

// defaultParallel replaces -test.parallel's default (GOMAXPROCS) unless
// the flag is given: the tests mostly wait on child processes, Kafka and
// session timeouts, not on the CPU, and run one after another in pairs on
// two cores they would take several times as long.
const defaultParallel = "8"

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", defaultParallel)
	}
	code := m.Run()
	connectd.Remove()
	os.Exit(code)
}

// connectdBinary builds cmd/connectd once per test binary run (so -short,
// which skips every test, builds nothing) and returns its path.
func connectdBinary(t *testing.T) string {
	t.Helper()
	return connectd.Path(t)
}

// connectd is the binary under test.
var connectd = testenv.ConnectdBinary("connectd-process-test-")
