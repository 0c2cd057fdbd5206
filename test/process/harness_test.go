package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// instanceIDEnv carries each child's instance_id: the configs say
// instance_id: ${CONNECTD_INSTANCE_ID:verify}, so one file serves every
// instance and `connectd verify` (which needs no instance) alike.
const instanceIDEnv = "CONNECTD_INSTANCE_ID"

// instance is one `connectd run` child process with a stable instance_id,
// restartable after it exits. Its stdout and stderr go to a log file in
// t.TempDir(), one file across restarts, whose tail is printed if the test
// fails. It is killed (SIGKILL) when the test ends.
type instance struct {
	t       *testing.T
	id      string
	cfgPath string
	logPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has exited
	state    *os.ProcessState
	starts   int
	logStart int64  // where the current process's log begins
	admin    string // admin API base URL of the current process
	// env is added to the environment of the next starts (fail points).
	env []string
}

// startInstance runs `connectd run -c cfgPath` as instance id and waits
// until its admin API answers.
func startInstance(t *testing.T, cfgPath, id string) *instance {
	t.Helper()
	in := &instance{
		t:       t,
		id:      id,
		cfgPath: cfgPath,
		logPath: filepath.Join(t.TempDir(), "connectd-"+id+".log"),
	}
	t.Cleanup(in.cleanup)
	in.start()
	return in
}

func (in *instance) start() {
	in.t.Helper()
	in.launch()
	in.waitAdmin(time.Minute, false)
}

// startMayDie starts the process like start, but a process that exits
// before its admin API answers (a fail point reached during start-up) is
// expected: it reports whether the admin API answered.
func (in *instance) startMayDie() bool {
	in.t.Helper()
	in.launch()
	return in.waitAdmin(time.Minute, true)
}

// launch starts the process without waiting for it.
func (in *instance) launch() {
	in.t.Helper()
	in.mu.Lock()
	if in.cmd != nil && !in.exited() {
		in.mu.Unlock()
		in.t.Fatalf("instance %s: start while process %d is still running", in.id, in.cmd.Process.Pid)
	}
	f, err := os.OpenFile(in.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.mu.Unlock()
		in.t.Fatal(err)
	}
	in.starts++
	fmt.Fprintf(f, "===== %s: connectd run #%d (instance %s)\n", time.Now().Format(time.RFC3339Nano), in.starts, in.id)
	off, _ := f.Seek(0, io.SeekEnd)
	cmd := exec.Command(connectdBinary(in.t), "run", "-c", in.cfgPath)
	cmd.Env = append(append(os.Environ(), instanceIDEnv+"="+in.id), in.env...)
	cmd.Dir = filepath.Dir(in.cfgPath)
	cmd.Stdout, cmd.Stderr = f, f // the child writes the file itself: a stopped child blocks nobody
	if err := cmd.Start(); err != nil {
		f.Close()
		in.mu.Unlock()
		in.t.Fatalf("instance %s: %v", in.id, err)
	}
	f.Close()
	done := make(chan struct{})
	in.cmd, in.done, in.state, in.logStart, in.admin = cmd, done, nil, off, ""
	in.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		in.mu.Lock()
		in.state = cmd.ProcessState
		in.mu.Unlock()
		close(done)
	}()
}

// exited reports whether the current process has exited; in.mu is held.
func (in *instance) exited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

func (in *instance) pid() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cmd.Process.Pid
}

var adminAddrRE = regexp.MustCompile(`msg="admin API listening" addr=(\S+)`)

// waitAdmin waits until the current process logs its admin address (the
// configs listen on 127.0.0.1:0) and GET /connectors answers 200. A process
// that exits first fails the test, or returns false with mayExit.
func (in *instance) waitAdmin(within time.Duration, mayExit bool) bool {
	in.t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		in.mu.Lock()
		done, off := in.done, in.logStart
		in.mu.Unlock()
		select {
		case <-done:
			if mayExit {
				return false
			}
			in.t.Fatalf("instance %s exited (%v) before its admin API answered\n%s", in.id, in.exitState(), in.logTail(40))
		default:
		}
		m := adminAddrRE.FindSubmatch(in.logFrom(off))
		if m == nil {
			continue
		}
		base := "http://" + string(m[1])
		resp, err := client.Get(base + "/connectors")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			in.mu.Lock()
			in.admin = base
			in.mu.Unlock()
			return true
		}
	}
	in.t.Fatalf("instance %s: admin API did not answer within %v\n%s", in.id, within, in.logTail(40))
	return false
}

// signal sends sig to the current process.
func (in *instance) signal(sig syscall.Signal) {
	in.t.Helper()
	pid := in.pid()
	if err := syscall.Kill(pid, sig); err != nil {
		in.t.Fatalf("instance %s: kill -%v %d: %v", in.id, sig, pid, err)
	}
}

// kill sends sig (SIGKILL, SIGTERM, SIGSTOP, SIGCONT); after SIGKILL it
// also waits for the process to be gone, so a restart cannot overlap it.
func (in *instance) kill(sig syscall.Signal) {
	in.t.Helper()
	in.signal(sig)
	if sig == syscall.SIGKILL {
		in.waitExit(30 * time.Second)
	}
}

// waitExit waits up to within for the current process to exit and returns
// its exit code, or -1 when a signal ended it.
func (in *instance) waitExit(within time.Duration) int {
	in.t.Helper()
	in.mu.Lock()
	done := in.done
	in.mu.Unlock()
	select {
	case <-done:
	case <-time.After(within):
		in.t.Fatalf("instance %s did not exit within %v\n%s", in.id, within, in.logTail(40))
	}
	return in.exitState().ExitCode()
}

// exitState is the current process's exit state, nil while it runs.
func (in *instance) exitState() *os.ProcessState {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// alive fails the test if the current process has exited.
func (in *instance) alive() {
	in.t.Helper()
	if st := in.exitState(); st != nil {
		in.t.Fatalf("instance %s exited unexpectedly (%v)\n%s", in.id, st, in.logTail(60))
	}
}

// restart starts the instance again (same config, same instance_id) after
// its process has exited.
func (in *instance) restart() {
	in.t.Helper()
	if in.exitState() == nil {
		in.t.Fatalf("instance %s: restart while its process runs", in.id)
	}
	in.start()
}

// cleanup kills the process if it still runs (SIGKILL ends a stopped
// process too) and prints the log's tail if the test failed.
func (in *instance) cleanup() {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.mu.Unlock()
	if cmd != nil {
		select {
		case <-done:
		default:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				in.t.Errorf("instance %s: pid %d survived SIGKILL for 30s", in.id, cmd.Process.Pid)
			}
		}
	}
	if in.t.Failed() {
		in.t.Logf("instance %s: last lines of %s:\n%s", in.id, in.logPath, in.logTail(80))
	}
}

func (in *instance) logFrom(off int64) []byte {
	b, err := os.ReadFile(in.logPath)
	if err != nil || off > int64(len(b)) {
		return nil
	}
	return b[off:]
}

// logSize is the current length of the instance's log, a mark for logSince.
func (in *instance) logSize() int64 {
	fi, err := os.Stat(in.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is what the instance logged after mark at level WARN or above.
func (in *instance) logSince(mark int64) string {
	var out []string
	for _, l := range strings.Split(string(in.logFrom(mark)), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// logTail is the last n lines of the instance's log (every run of it).
func (in *instance) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(string(in.logFrom(0)), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
	Aborts     map[string]uint64 `json:"aborts"`
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
	in.mu.Lock()
	base := in.admin
	in.mu.Unlock()
	if base == "" {
		return status{}, errors.New("no admin API (process not started)")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/connectors/" + connector + "/status")
	if err != nil {
		return status{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return status{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return status{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil {
		return status{}, fmt.Errorf("%w: %s", err, body)
	}
	st.raw = string(bytes.TrimSpace(body))
	return st, nil
}

// mustStatus is status failing the test on error.
func (in *instance) mustStatus(connector string) status {
	in.t.Helper()
	st, err := in.status(connector)
	if err != nil {
		in.t.Fatalf("instance %s: status of %s: %v\n%s", in.id, connector, err, in.logTail(40))
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

// runVerify runs `connectd verify` on connector of cfgPath. A run that
// cannot answer (exit 2, or no JSON line) fails the test; exit 0 and 1 are
// returned with the report.
func runVerify(t *testing.T, cfgPath, connector string) verifyResult {
	t.Helper()
	within := limit(t, 4*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, connectdBinary(t), "verify", "-c", cfgPath, "--connector", connector,
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
