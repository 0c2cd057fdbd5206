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
	// members are the other processes of a system under test that runs
	// as several (connectd with Scenario.Processes > 1, one consumer
	// group across them): CPU and peak RSS are summed over all, a member
	// exiting is the system exiting, stop and kill reach every one.
	members []*child
	// admin is connectd's admin API address ("" for other systems).
	admin string
}

// all is c and its members.
func (c *child) all() []*child { return append([]*child{c}, c.members...) }

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
	for _, m := range c.members {
		if m.exited() {
			return true
		}
	}
	return c.selfExited()
}

func (c *child) selfExited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// cpu is the CPU time used so far (from /proc while running, rusage after),
// summed over the members.
func (c *child) cpu() time.Duration {
	d := c.selfCPU()
	for _, m := range c.members {
		d += m.selfCPU()
	}
	return d
}

func (c *child) selfCPU() time.Duration {
	if c.selfExited() {
		return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
	}
	d, err := procCPU(c.pid())
	if err != nil && c.selfExited() {
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
	for _, m := range c.all() {
		if m.selfExited() {
			continue
		}
		if n, err := procPeakRSS(m.pid()); err == nil {
			m.rss = max(m.rss, n)
		}
	}
}

// peakRSS is the largest VmHWM sampled, in bytes; for several processes
// the sum of each one's peak (an upper bound of their peak together).
func (c *child) peakRSS() int64 {
	n := int64(0)
	for _, m := range c.all() {
		n += m.rss
	}
	return n
}

// stop sends SIGTERM (a clean stop: connectd commits or aborts its open
// batch, a JVM runs its shutdown hooks) and waits up to grace, then kills.
func (c *child) stop(grace time.Duration) {
	for _, m := range c.all() {
		if !m.selfExited() {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for _, m := range c.all() {
		select {
		case <-m.done:
		case <-deadline:
			c.kill()
			return
		}
	}
}

// kill sends SIGKILL and waits for the exit, of every member too.
func (c *child) kill() {
	for _, m := range c.all() {
		if !m.selfExited() {
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	for _, m := range c.all() {
		<-m.done
	}
}

// metric sums a connectd metric over the processes' /metrics; ok is false
// when no process answered with it.
func (c *child) metric(name string) (sum float64, ok bool) {
	for _, m := range c.all() {
		if m.admin == "" {
			continue
		}
		text, err := scrape("http://" + m.admin + "/metrics")
		if err != nil {
			continue
		}
		if v, found := sumMetric(text, name); found {
			sum, ok = sum+v, true
		}
	}
	return sum, ok
}

// exitReport names the first process of the system that exited, its
// error and the last n lines of its log.
func (c *child) exitReport(n int) string {
	for _, m := range c.all() {
		if m.selfExited() {
			return fmt.Sprintf("%s exited: %v\n%s", m.name, m.err, m.logTail(n))
		}
	}
	return c.name + " is running"
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
