package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is one process under test: connectd, a bare baseline, or a JVM
// peer. Its output goes to a log file; CPU comes from /proc while it runs
// and from its rusage once it has exited, peak RSS from /proc samples.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
	rss     int64 // peak RSS sampled so far
	// started is just before the process was started, exitedAt just
	// after Wait returned: a bounded run's wall time is between them.
	started, exitedAt time.Time
}

// startChild starts argv with its output appended to logPath.
func startChild(name, logPath string, env []string, argv ...string) (*child, error) {
	return startChildOut(name, logPath, "", env, argv...)
}

// startChildOut is startChild with the child's stdout going to outPath
// instead (a bounded run's JSON summary), unless outPath is empty.
func startChildOut(name, logPath, outPath string, env []string, argv ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "===== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if outPath != "" {
		out, err := os.Create(outPath)
		if err != nil {
			f.Close()
			return nil, err
		}
		defer out.Close() // the child has its own descriptor once started
		cmd.Stdout = out
	}
	started := time.Now()
	// Its own process group: a Ctrl-C of the harness is the harness's to
	// handle (it stops its children), not delivered to them twice.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	f.Close()
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), started: started}
	go func() {
		c.err = cmd.Wait()
		c.exitedAt = time.Now()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// cpu is the CPU time used so far (from /proc while running, rusage after).
func (c *child) cpu() time.Duration {
	if c.exited() {
		return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
	}
	d, err := procCPU(c.pid())
	if err != nil && c.exited() {
		return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
	}
	return d
}

// sampleRSS records the process's peak resident set size (VmHWM) so far;
// call it while the process runs (it is a no-op once it has exited).
// rusage's maxrss is no substitute: Linux carries the forking parent's
// high-water mark into the child across exec, so every child would report
// at least the harness's own peak.
func (c *child) sampleRSS() {
	if c.exited() {
		return
	}
	if n, err := procPeakRSS(c.pid()); err == nil {
		c.rss = max(c.rss, n)
	}
}

// peakRSS is the largest VmHWM sampled, in bytes.
func (c *child) peakRSS() int64 { return c.rss }

// stop sends SIGTERM (a clean stop: connectd commits or aborts its open
// batch, a JVM runs its shutdown hooks) and waits up to grace, then kills.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		c.kill()
	}
}

// kill sends SIGKILL and waits for the exit.
func (c *child) kill() {
	if !c.exited() {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-c.done
}

// logTail returns the last n lines of the child's log, for error reports.
func (c *child) logTail(n int) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePort returns a loopback port free at the moment of asking.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP waits until url answers 200 or ctx ends, failing early if the
// child exits.
func waitHTTP(ctx context.Context, c *child, url string) error {
	client := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		if c.exited() {
			return fmt.Errorf("%s exited before its admin API answered: %v\n%s", c.name, c.err, c.logTail(20))
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}

// scrape fetches a Prometheus text exposition.
func scrape(url string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// sumMetric adds up every sample of metric name (all label sets) in a
// Prometheus text exposition; ok is false if there is none.
func sumMetric(text, name string) (sum float64, ok bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer name with this prefix
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	return sum, ok
}
