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
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	binary    string // the connectd binary under test, built on first use
	buildErr  error
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
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// connectdBinary builds cmd/connectd once per test binary run (so -short,
// which skips every test, builds nothing) and returns its path.
func connectdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "connectd-process-test-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "connectd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/connectd/connectd/cmd/connectd")
		cmd.WaitDelay = 10 * time.Second // the compiler children must not hold the output open forever
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/connectd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}
