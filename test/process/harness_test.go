package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connectd/connectd/test/testenv"
)

// report is the JSON line `connectd verify` prints (only the fields the
// tests read; the CLI's output is the contract, not the verify package).
type report struct {
	Expected     int      `json:"expected"`
	Actual       int      `json:"actual"`
	Duplicates   int      `json:"duplicates"`
	Missing      int      `json:"missing"`
	Unexpected   int      `json:"unexpected"`
	DuplicateIDs []string `json:"duplicate_ids"`
	// ApplyCountViolations counts events of a PostgreSQL or Redis sink
	// with test_apply_counter whose apply counter is not 1 (0 when absent).
	ApplyCountViolations int `json:"apply_count_violations"`
}

func (r report) clean() bool {
	return r.Duplicates == 0 && r.Missing == 0 && r.Unexpected == 0 && r.ApplyCountViolations == 0
}

func (r report) String() string {
	return fmt.Sprintf("expected %d, actual %d, duplicates %d, missing %d, unexpected %d, apply_count violations %d",
		r.Expected, r.Actual, r.Duplicates, r.Missing, r.Unexpected, r.ApplyCountViolations)
}

// instance is one `connectd run` child process (a testenv.Process) with
// its log in t.TempDir() and its working directory the config's.
type instance struct {
	*testenv.Process
	t *testing.T
}

// startInstance runs `connectd run -c cfgPath` as instance id and waits
// until its admin API answers.
func startInstance(t *testing.T, cfgPath, id string) *instance {
	t.Helper()
	in := newInstance(t, cfgPath, id)
	in.Start()
	return in
}

// newInstance prepares instance id of cfgPath without starting it.
func newInstance(t *testing.T, cfgPath, id string) *instance {
	t.Helper()
	return &instance{t: t, Process: testenv.NewProcess(t, connectdBinary(t), cfgPath,
		filepath.Join(t.TempDir(), "connectd-"+id+".log"), id, testenv.ProcessOptions{Dir: filepath.Dir(cfgPath)})}
}

// startMayDie starts the process like Start, but a process that exits
// before its admin API answers (a fail point reached during start-up) is
// expected: it reports whether the admin API answered.
func (in *instance) startMayDie() bool {
	in.t.Helper()
	in.Launch()
	return in.WaitAdmin(time.Minute, true)
}

// kill sends sig (SIGKILL, SIGTERM, SIGSTOP, SIGCONT); after SIGKILL it
// also waits for the process to be gone, so a restart cannot overlap it.
func (in *instance) kill(sig syscall.Signal) {
	in.t.Helper()
	in.Signal(sig)
	if sig == syscall.SIGKILL {
		in.WaitExit(30 * time.Second)
	}
}

// restart starts the instance again (same config, same instance_id) after
// its process has exited.
func (in *instance) restart() {
	in.t.Helper()
	if in.ExitState() == nil {
		in.t.Fatalf("instance %s: restart while its process runs", in.ID())
	}
	in.Start()
}

// logSince is what the instance logged after mark (a LogSize) at level
// WARN or above.
func (in *instance) logSince(mark int64) string {
	var out []string
	for _, l := range strings.Split(string(in.LogFrom(mark)), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// status is the part of GET /connectors/{name}/status the tests read.
type status struct {
	Connector struct {
		State string `json:"state"`
		Trace string `json:"trace"`
	} `json:"connector"`
	RecordsIn  uint64            `json:"records_in"`
	RecordsOut uint64            `json:"records_out"`
	Commits    uint64            `json:"commits"`
	LastCommit time.Time         `json:"last_commit"`
	Aborts     map[string]uint64 `json:"aborts"`
	LastAbort  *struct {
		Kind  string `json:"kind"`
		Error string `json:"error"`
	} `json:"last_abort"`
	Partitions []struct {
		Topic      string `json:"topic"`
		Partition  int32  `json:"partition"`
		Checkpoint int64  `json:"checkpoint"`
		Lag        int64  `json:"lag"`
	} `json:"partitions"`
	raw string
}

func (s status) String() string { return s.raw }

// aborts is the total of s.Aborts.
func (s status) aborts() uint64 {
	var n uint64
	for _, v := range s.Aborts {
		n += v
	}
	return n
}

// status GETs the connector's admin status from the current process.
func (in *instance) status(connector string) (status, error) {
	base := in.Admin()
	if base == "" {
		return status{}, errors.New("no admin API (process not started)")
	}
	body, err := testenv.StatusBody(base, connector)
	if err != nil {
		return status{}, err
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil {
		return status{}, fmt.Errorf("%w: %s", err, body)
	}
	st.raw = string(body)
	return st, nil
}

// mustStatus is status failing the test on error.
func (in *instance) mustStatus(connector string) status {
	in.t.Helper()
	st, err := in.status(connector)
	if err != nil {
		in.t.Fatalf("instance %s: status of %s: %v\n%s", in.ID(), connector, err, in.LogTail(40))
	}
	return st
}

// limit caps a wait at what is left of the test binary's -timeout, less a
// margin for cleanup and logs, so a stuck wait fails naming what it waited
// for instead of ending in the -timeout panic.
func limit(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		d = min(d, time.Until(dl)-45*time.Second)
	}
	return max(d, time.Second)
}

// verifyResult is one `connectd verify` run.
type verifyResult struct {
	code   int
	report report
	stdout string
	stderr string
}

// runVerify runs `connectd verify --stopped` on connector of cfgPath: every
// caller runs it after its final drain, once every instance has exited. A
// run that cannot answer (exit 2, or no JSON line) fails the test; exit 0
// and 1 are returned with the report.
func runVerify(t *testing.T, cfgPath, connector string) verifyResult {
	t.Helper()
	within := limit(t, 4*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, connectdBinary(t), "verify", "--stopped", "-c", cfgPath, "--connector", connector,
		"--timeout", (within - 15*time.Second).Round(time.Second).String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := verifyResult{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("connectd verify did not finish within %v\n%s", within, r.stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("connectd verify: %v", err)
	}
	if r.code != 0 && r.code != 1 {
		t.Fatalf("connectd verify could not answer: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	line := strings.TrimSpace(r.stdout)
	if strings.Count(line, "\n") != 0 || line == "" {
		t.Fatalf("connectd verify: want one JSON line on stdout, got %q (stderr %s)", r.stdout, r.stderr)
	}
	if err := json.Unmarshal([]byte(line), &r.report); err != nil {
		t.Fatalf("connectd verify: %v: %q", err, line)
	}
	t.Logf("connectd verify (exit %d): %s", r.code, line)
	return r
}

// verifyClean runs `connectd verify` and requires exit 0 and a clean
// report covering want expected outputs.
func verifyClean(t *testing.T, cfgPath, connector string, want int) report {
	t.Helper()
	r := runVerify(t, cfgPath, connector)
	rep := r.report
	if r.code != 0 || !rep.clean() {
		t.Fatalf("not exactly once: exit %d, %s\nstderr: %s", r.code, rep, r.stderr)
	}
	if rep.Expected != want || rep.Actual != want {
		t.Fatalf("verify covered %d expected / %d actual outputs, want %d (all input drained)", rep.Expected, rep.Actual, want)
	}
	return rep
}

// writeFile writes content to dir/name, tabs turned to spaces (YAML).
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(content, "\t", "  ")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor polls cond every 100ms until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	within = limit(t, within)
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
