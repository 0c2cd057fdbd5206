package faults

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// instance is one `connectd run` OS process of a scenario (a
// testenv.Process), whose connections the fault proxies attribute to it
// from the first one on.
type instance struct {
	*testenv.Process
	t *testing.T
	e *env
}

func startInstance(t *testing.T, e *env, cfgPath, id string) *instance {
	t.Helper()
	in := &instance{t: t, e: e}
	logPath := filepath.Join(filepath.Dir(cfgPath), "connectd-"+id+".log")
	in.Process = testenv.NewProcess(t, connectdBinary(t), cfgPath, logPath, id, testenv.ProcessOptions{
		OnStart: func(pid int) { e.addPID(pid, id) },
		OnExit:  e.removePID,
	})
	in.Start()
	return in
}

// kill SIGKILLs the process and waits until it is gone.
func (in *instance) kill() {
	in.t.Helper()
	in.Signal(syscall.SIGKILL)
	in.WaitExit(30 * time.Second)
}

// stop sends SIGTERM and requires a clean exit (code 0) within the
// connector's shutdown_timeout plus a margin for leaving the group. It
// returns how many open batches the stop finished on the way out
// (committed, or aborted because the group was rebalancing), by the
// connectors' log lines: that a SIGTERM landed mid-batch is its bite.
func (in *instance) stop(shutdown time.Duration) int {
	in.t.Helper()
	before := in.stopFinished()
	in.Signal(syscall.SIGTERM)
	if code := in.WaitExit(shutdown + 30*time.Second); code != 0 {
		in.t.Fatalf("instance %s: SIGTERM exit code %d, want 0\n%s", in.ID(), code, in.LogTail(40))
	}
	return in.stopFinished() - before
}

// stopFinished counts the lines of the process's log (every run of it)
// that say a stop finished an open batch.
func (in *instance) stopFinished() int {
	raw, err := os.ReadFile(in.LogPath())
	if err != nil && !os.IsNotExist(err) {
		in.t.Fatal(err)
	}
	return bytes.Count(raw, []byte(connector.StopCommittedMsg)) + bytes.Count(raw, []byte(connector.StopAbortedMsg))
}

// letter is the instance's last character (a, b, c), how fault
// descriptions name it.
func (in *instance) letter() string {
	id := in.ID()
	return id[len(id)-1:]
}
