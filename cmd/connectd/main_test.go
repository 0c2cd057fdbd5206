package main

import (
	"bytes"
	"context"
	"fmt"
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

// binary is connectd built once for every test, with version and commit
// set as a release build sets them.
var binary string

const (
	testVersion = "v0.0.0-test"
	testCommit  = "0123456789abcdef"
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "connectd-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "connectd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build",
		"-ldflags", "-X main.version="+testVersion+" -X main.commit="+testCommit,
		"-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building connectd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// result is a finished connectd invocation.
type result struct {
	code           int
	stdout, stderr string
}

// connectd runs the binary with args to completion, killing it after
// timeout, with env added to the test's environment.
func connectd(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("connectd %s did not finish within %v\nstderr:\n%s", strings.Join(args, " "), timeout, stderr.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("connectd %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// daemonProc is a `connectd run` child process.
type daemonProc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after done
}

// startRun starts `connectd run -c cfgPath` plus extra flags. The process is killed when the
// test ends if it is still running.
func startRun(t *testing.T, cfgPath string, extra ...string) *daemonProc {
	t.Helper()
	return startRunEnv(t, nil, cfgPath, extra...)
}

// startRunEnv is startRun with env added to the test's environment.
func startRunEnv(t *testing.T, env []string, cfgPath string, extra ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{stderr: &syncBuffer{}, stdout: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, append([]string{"run", "-c", cfgPath}, extra...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Dir = filepath.Dir(cfgPath)
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("connectd run stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

func (p *daemonProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to timeout for the process to exit and returns its code.
func (p *daemonProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("connectd run did not exit within %v", timeout)
	}
	if p.err == nil {
		return 0
	}
	ee, ok := p.err.(*exec.ExitError)
	if !ok {
		t.Fatalf("connectd run: %v", p.err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("connectd run was killed by %v instead of exiting", ws.Signal())
	}
	return ee.ExitCode()
}

var adminAddrRE = regexp.MustCompile(`msg="admin API listening" addr=(\S+)`)

// adminURL waits until the daemon logs its admin address and the API
// answers GET /connectors, and returns the API's base URL.
func (p *daemonProc) adminURL(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("connectd run exited before its admin API answered:\n%s", p.stderr.String())
		default:
		}
		m := adminAddrRE.FindStringSubmatch(p.stderr.String())
		if m == nil {
			continue
		}
		base := "http://" + m[1]
		resp, err := client.Get(base + "/connectors")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return base
		}
	}
	t.Fatalf("admin API did not answer within 30s:\n%s", p.stderr.String())
	return ""
}

// syncBuffer is a bytes.Buffer safe for a child's output copier and the
// test reading it concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeConfig writes yaml (tabs allowed for indentation) to dir/name.
func writeConfig(t *testing.T, dir, name, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "\t", "  ")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
