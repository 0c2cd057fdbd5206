package faults

import (
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

// instance is one `connectd run` OS process with a stable instance_id
// (so a restart fences its own predecessor's transactions), restartable
// after it exits. It logs to one file across restarts, whose tail is
// printed when the scenario fails, and is SIGKILLed when the scenario ends.
type instance struct {
	t       *testing.T
	e       *env
	id      string
	cfgPath string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	state  *os.ProcessState
	starts int
	admin  string
	// env is added to the next start's environment (a failure point).
	env []string
}

func startInstance(t *testing.T, e *env, cfgPath, id string) *instance {
	t.Helper()
	in := &instance{t: t, e: e, id: id, cfgPath: cfgPath,
		logPath: filepath.Join(filepath.Dir(cfgPath), "connectd-"+id+".log")}
	t.Cleanup(in.cleanup)
	in.start()
	return in
}

func (in *instance) running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return false
	}
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// start runs the process and waits for its admin API.
func (in *instance) start() {
	in.t.Helper()
	if in.running() {
		in.t.Fatalf("instance %s: start while running", in.id)
	}
	f, err := os.OpenFile(in.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.t.Fatal(err)
	}
	in.mu.Lock()
	in.starts++
	fmt.Fprintf(f, "===== %s: connectd run #%d (instance %s)\n", time.Now().Format(time.RFC3339Nano), in.starts, in.id)
	off, _ := f.Seek(0, io.SeekEnd)
	cmd := exec.Command(connectdBinary(in.t), "run", "-c", in.cfgPath)
	cmd.Env = append(append(os.Environ(), "CONNECTD_INSTANCE_ID="+in.id), in.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		in.mu.Unlock()
		f.Close()
		in.t.Fatalf("instance %s: %v", in.id, err)
	}
	f.Close()
	pid := cmd.Process.Pid
	// Registered before it can dial anything: the proxies attribute its
	// connections from the first one on.
	in.e.addPID(pid, in.id)
	done := make(chan struct{})
	in.cmd, in.done, in.state, in.admin = cmd, done, nil, ""
	in.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		in.e.removePID(pid)
		in.mu.Lock()
		in.state = cmd.ProcessState
		in.mu.Unlock()
		close(done)
	}()
	in.waitAdmin(off, time.Minute)
}

var adminAddrRE = regexp.MustCompile(`msg="admin API listening" addr=(\S+)`)

func (in *instance) waitAdmin(off int64, within time.Duration) {
	in.t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	ok := poll(within, 50*time.Millisecond, func() bool {
		if !in.running() {
			in.t.Fatalf("instance %s exited (%v) before its admin API answered\n%s", in.id, in.exitState(), in.logTail(40))
		}
		b, _ := os.ReadFile(in.logPath)
		if int64(len(b)) < off {
			return false
		}
		m := adminAddrRE.FindSubmatch(b[off:])
		if m == nil {
			return false
		}
		base := "http://" + string(m[1])
		resp, err := hc.Get(base + "/connectors")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		in.mu.Lock()
		in.admin = base
		in.mu.Unlock()
		return true
	})
	if !ok {
		in.t.Fatalf("instance %s: admin API did not answer within %v\n%s", in.id, within, in.logTail(40))
	}
}

func (in *instance) pid() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cmd.Process.Pid
}

// signal sends sig to the running process.
func (in *instance) signal(sig syscall.Signal) {
	in.t.Helper()
	if err := syscall.Kill(in.pid(), sig); err != nil {
		in.t.Fatalf("instance %s: kill -%v: %v", in.id, sig, err)
	}
}

// waitExit waits for the process to exit and returns its exit code (-1
// when a signal ended it); not exiting within is a failure.
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

func (in *instance) exitState() *os.ProcessState {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state
}

// kill SIGKILLs the process and waits until it is gone.
func (in *instance) kill() {
	in.t.Helper()
	in.signal(syscall.SIGKILL)
	in.waitExit(30 * time.Second)
}

// stop sends SIGTERM and requires a clean exit (code 0) within the
// connector's shutdown_timeout plus a margin for leaving the group.
func (in *instance) stop(shutdown time.Duration) {
	in.t.Helper()
	in.signal(syscall.SIGTERM)
	if code := in.waitExit(shutdown + 30*time.Second); code != 0 {
		in.t.Fatalf("instance %s: SIGTERM exit code %d, want 0\n%s", in.id, code, in.logTail(40))
	}
}

// alive fails the scenario if the process died on its own.
func (in *instance) alive() {
	in.t.Helper()
	in.mu.Lock()
	started, st := in.cmd != nil, in.state
	in.mu.Unlock()
	if started && st != nil {
		in.t.Fatalf("instance %s exited unexpectedly (%v)\n%s", in.id, st, in.logTail(60))
	}
}

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

// logTail is the last n lines of the log (every run).
func (in *instance) logTail(n int) string {
	b, _ := os.ReadFile(in.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// warnings counts WARN and ERROR lines in the log, for the scenario log.
func (in *instance) warnings() int {
	b, _ := os.ReadFile(in.logPath)
	return strings.Count(string(b), "level=WARN") + strings.Count(string(b), "level=ERROR")
}
