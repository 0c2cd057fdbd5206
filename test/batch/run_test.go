package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/testenv"
)

// progress is how far a side's connectors have committed, read from
// where each keeps its checkpoint (the group's offsets for the Kafka
// sinks, the sink for PostgreSQL and Redis), as `connectd verify` and a
// bounded run's own wait read it.
type progress struct {
	done, total int64
	cps         map[string]connector.Checkpoint // by connector
	unfinished  []string                        // connectors below a stop
}

func (p progress) String() string {
	return fmt.Sprintf("%d of %d records committed (%.0f%%), unfinished: %s",
		p.done, p.total, 100*float64(p.done)/float64(max(p.total, 1)), strings.Join(p.unfinished, ", "))
}

// perConnector is each connector's committed records, for logs.
func (p progress) perConnector(stops connector.Checkpoint) string {
	var total int64
	for _, stop := range stops {
		total += stop
	}
	var parts []string
	for _, c := range connectors {
		var n int64
		for tp, stop := range stops {
			n += min(max(p.cps[c.name()][tp], 0), stop)
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", c.name(), n, total))
	}
	return strings.Join(parts, ", ")
}

// readProgress reads every connector's committed checkpoint; a store
// that cannot answer yet (a group or an offsets table that does not exist
// before the first commit) counts as nothing committed.
func (s *side) readProgress(brokers []string, stops connector.Checkpoint) progress {
	p := progress{cps: map[string]connector.Checkpoint{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range connectors {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cp, err := pipeline.Offsets(s.specs[name], pipeline.Env{Brokers: brokers, InstanceID: s.instance}).Get(ctx)
			if err != nil {
				cp = nil
			}
			mu.Lock()
			p.cps[name] = cp
			mu.Unlock()
		}(c.name())
	}
	wg.Wait()
	for _, c := range connectors {
		n := c.name()
		below := false
		for tp, stop := range stops {
			at := min(max(p.cps[n][tp], 0), stop)
			p.done += at
			p.total += stop
			below = below || at < stop
		}
		if below {
			p.unfinished = append(p.unfinished, n)
		}
	}
	return p
}

// waitProgress polls the side's progress until cond holds, failing the
// test after within or if alive reports the process gone.
func (s *side) waitProgress(t *testing.T, brokers []string, stops connector.Checkpoint, within time.Duration, what string,
	alive func() error, cond func(progress) bool) progress {
	t.Helper()
	within = limit(t, within)
	deadline := time.Now().Add(within)
	for {
		p := s.readProgress(brokers, stops)
		if cond(p) {
			return p
		}
		if err := alive(); err != nil {
			t.Fatalf("%s: waiting for %s: %v (%s)", s.label, what, err, p)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out after %v waiting for %s: %s", s.label, within, what, p)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// groupsDone reads the side's consumer groups' committed offsets in one
// request and returns how many records they cover. It only times the
// kills: it is cheap enough to poll every few milliseconds, and it never
// runs ahead of the checkpoints, which readProgress reads. The groups of
// the PostgreSQL and Redis sinks hold copies of the sinks' checkpoints,
// committed after each sink commit (for lag display).
func (s *side) groupsDone(ctx context.Context, adm *kadm.Client, stops connector.Checkpoint) (done int64) {
	var groups []string
	for _, g := range s.groups {
		groups = append(groups, g)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, r := range adm.FetchManyOffsets(ctx, groups...) {
		r.Fetched.Each(func(o kadm.OffsetResponse) {
			if stop, ok := stops[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}]; ok && o.Err == nil {
				done += min(max(o.At, 0), stop)
			}
		})
	}
	return done
}

// limit caps a wait at what is left of the test's -timeout, less a margin
// for cleanup and logs, so a stuck wait fails naming what it waited for.
func limit(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		d = min(d, time.Until(dl)-45*time.Second)
	}
	return max(d, time.Second)
}

// boundedRun is one `connectd run -c F --until end --output json` process.
// testenv.Process runs `connectd run -c F` alone; a bounded run needs its
// flags, its summary on stdout and its exit code.
type boundedRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan struct{}
	code   int
}

// summary is the part of a bounded run's JSON summary the test reads.
type summary struct {
	Outcome    string  `json:"outcome"`
	Seconds    float64 `json:"seconds"`
	Connectors []struct {
		Name      string `json:"name"`
		RecordsIn uint64 `json:"records_in"`
	} `json:"connectors"`
}

// startBounded starts a bounded run of s's config as s's instance, its
// stderr appended to logPath; it is SIGKILLed when the test ends.
func startBounded(t *testing.T, s *side, logPath string, n int) *boundedRun {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "===== %s: connectd run --until end #%d (instance %s)\n", time.Now().Format(time.RFC3339Nano), n, s.instance)
	r := &boundedRun{t: t, done: make(chan struct{})}
	r.cmd = exec.Command(connectd.Path(t), "run", "-c", s.cfgPath, "--until", "end", "--output", "json")
	r.cmd.Env = append(os.Environ(), testenv.InstanceIDEnv+"="+s.instance)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, f
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start bounded run: %v", err)
	}
	go func() {
		_ = r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// exited reports an error once the process has exited.
func (r *boundedRun) exited() error {
	select {
	case <-r.done:
		return fmt.Errorf("the bounded run exited (code %d) before it was killed; stdout: %s", r.code, r.stdout.String())
	default:
		return nil
	}
}

// kill SIGKILLs the process and waits until it is gone, so nothing of it
// commits afterwards.
func (r *boundedRun) kill() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("pid %d survived SIGKILL for 30s", r.cmd.Process.Pid)
	}
}

// wait waits up to within for the process to exit and returns its code
// and summary.
func (r *boundedRun) wait(within time.Duration, logPath string) (int, summary) {
	r.t.Helper()
	within = limit(r.t, within)
	select {
	case <-r.done:
	case <-time.After(within):
		r.t.Fatalf("the bounded run did not exit within %v\n%s", within, logTail(logPath, 40))
	}
	var sum summary
	if err := json.Unmarshal(r.stdout.Bytes(), &sum); err != nil {
		r.t.Fatalf("bounded run (exit %d): summary %q: %v\n%s", r.code, r.stdout.String(), err, logTail(logPath, 40))
	}
	return r.code, sum
}

// logTail is the last n lines of the log at path.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
