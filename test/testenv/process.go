package testenv

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstanceIDEnv carries a child's instance_id: the suites' configs say
// instance_id: ${CONNECTD_INSTANCE_ID:...}, so one file serves every
// instance of a connector.
const InstanceIDEnv = "CONNECTD_INSTANCE_ID"

// Process is one `connectd run` child process with a stable instance ID
// (so a restart fences its own predecessor's transactions), restartable
// after it exits. Its stdout and stderr go to one log file across
// restarts, whose tail is printed if the test fails; it is SIGKILLed when
// the test ends. The process-level suites (test/process, test/faults)
// build their instances on it.
type Process struct {
	t       *testing.T
	id      string
	binary  string
	cfgPath string
	logPath string
	opts    ProcessOptions

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has exited
	state    *os.ProcessState
	starts   int
	logStart int64    // where the current process's log begins
	admin    string   // admin API base URL of the current process
	env      []string // added to the environment of the next starts
}

// ProcessOptions are a Process's optional settings.
type ProcessOptions struct {
	// Dir is the working directory; empty inherits the test's.
	Dir string
	// OnStart is called with each new process's PID right after it
	// started, before it can dial anything; OnExit once it has exited.
	OnStart, OnExit func(pid int)
}

// NewProcess prepares `binary run -c cfgPath` as instance id, logging to
// logPath. It does not start it.
func NewProcess(t *testing.T, binary, cfgPath, logPath, id string, opts ProcessOptions) *Process {
	p := &Process{t: t, id: id, binary: binary, cfgPath: cfgPath, logPath: logPath, opts: opts}
	t.Cleanup(p.cleanup)
	return p
}

// ID is the instance ID the process runs as.
func (p *Process) ID() string { return p.id }

// LogPath is the process's log file.
func (p *Process) LogPath() string { return p.logPath }

// SetEnv sets what is added to the environment of the next starts (fail
// points); nothing, without arguments.
func (p *Process) SetEnv(env ...string) {
	p.mu.Lock()
	p.env = env
	p.mu.Unlock()
}

// Start launches the process and waits up to a minute for its admin API.
func (p *Process) Start() {
	p.t.Helper()
	p.Launch()
	p.WaitAdmin(time.Minute, false)
}

// Launch starts the process without waiting for it. Starting while the
// previous process still runs fails the test.
func (p *Process) Launch() {
	p.t.Helper()
	p.mu.Lock()
	if p.cmd != nil && !p.exited() {
		p.mu.Unlock()
		p.t.Fatalf("instance %s: start while process %d is still running", p.id, p.cmd.Process.Pid)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		p.t.Fatal(err)
	}
	p.starts++
	fmt.Fprintf(f, "===== %s: connectd run #%d (instance %s)\n", time.Now().Format(time.RFC3339Nano), p.starts, p.id)
	off, _ := f.Seek(0, io.SeekEnd)
	cmd := exec.Command(p.binary, "run", "-c", p.cfgPath)
	cmd.Env = append(append(os.Environ(), InstanceIDEnv+"="+p.id), p.env...)
	cmd.Dir = p.opts.Dir
	cmd.Stdout, cmd.Stderr = f, f // the child writes the file itself: a stopped child blocks nobody
	if err := cmd.Start(); err != nil {
		f.Close()
		p.mu.Unlock()
		p.t.Fatalf("instance %s: %v", p.id, err)
	}
	f.Close()
	pid := cmd.Process.Pid
	if p.opts.OnStart != nil {
		p.opts.OnStart(pid)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.state, p.logStart, p.admin = cmd, done, nil, off, ""
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		if p.opts.OnExit != nil {
			p.opts.OnExit(pid)
		}
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
}

// exited reports whether the current process has exited; p.mu is held.
func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether a process was started and has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.exited()
}

// Pid is the current process's PID.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Admin is the current process's admin API base URL, "" until it answered.
func (p *Process) Admin() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admin
}

var adminAddrRE = regexp.MustCompile(`msg="admin API listening" addr=(\S+)`)

// WaitAdmin waits until the current process logs its admin address (the
// configs listen on 127.0.0.1:0) and GET /connectors answers 200. A process
// that exits first fails the test, or returns false with mayExit.
func (p *Process) WaitAdmin(within time.Duration, mayExit bool) bool {
	p.t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p.mu.Lock()
		done, off := p.done, p.logStart
		p.mu.Unlock()
		select {
		case <-done:
			if mayExit {
				return false
			}
			p.t.Fatalf("instance %s exited (%v) before its admin API answered\n%s", p.id, p.ExitState(), p.LogTail(40))
		default:
		}
		m := adminAddrRE.FindSubmatch(p.LogFrom(off))
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
			p.mu.Lock()
			p.admin = base
			p.mu.Unlock()
			return true
		}
	}
	p.t.Fatalf("instance %s: admin API did not answer within %v\n%s", p.id, within, p.LogTail(40))
	return false
}

// Signal sends sig to the current process.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	pid := p.Pid()
	if err := syscall.Kill(pid, sig); err != nil {
		p.t.Fatalf("instance %s: kill -%v %d: %v", p.id, sig, pid, err)
	}
}

// WaitExit waits up to within for the current process to exit and returns
// its exit code, or -1 when a signal ended it.
func (p *Process) WaitExit(within time.Duration) int {
	p.t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	case <-time.After(within):
		p.t.Fatalf("instance %s did not exit within %v\n%s", p.id, within, p.LogTail(40))
	}
	return p.ExitState().ExitCode()
}

// ExitState is the current process's exit state, nil while it runs (or
// before it was started).
func (p *Process) ExitState() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Alive fails the test if the current process has exited.
func (p *Process) Alive() {
	p.t.Helper()
	if st := p.ExitState(); st != nil {
		p.t.Fatalf("instance %s exited unexpectedly (%v)\n%s", p.id, st, p.LogTail(60))
	}
}

// cleanup kills the process if it still runs (SIGKILL ends a stopped
// process too) and prints the log's tail if the test failed.
func (p *Process) cleanup() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd != nil {
		select {
		case <-done:
		default:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				p.t.Errorf("instance %s: pid %d survived SIGKILL for 30s", p.id, cmd.Process.Pid)
			}
		}
	}
	if p.t.Failed() {
		// Progress lines (one per connector every few seconds) would
		// fill the tail and hide what went wrong: they are left out.
		p.t.Logf("instance %s: last lines of %s, progress lines left out:\n%s", p.id, p.logPath, p.LogTailWithout(80, "msg=progress"))
	}
}

// LogFrom is the log from byte off on.
func (p *Process) LogFrom(off int64) []byte {
	b, err := os.ReadFile(p.logPath)
	if err != nil || off > int64(len(b)) {
		return nil
	}
	return b[off:]
}

// LogSize is the current length of the log, a mark for LogFrom.
func (p *Process) LogSize() int64 {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogTail is the last n lines of the log (every run of the instance).
func (p *Process) LogTail(n int) string {
	return p.LogTailWithout(n, "")
}

// LogTailWithout is the last n lines of the log that do not contain skip
// (every line if skip is "").
func (p *Process) LogTailWithout(n int, skip string) string {
	lines := strings.Split(strings.TrimRight(string(p.LogFrom(0)), "\n"), "\n")
	if skip != "" {
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, skip) })
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
