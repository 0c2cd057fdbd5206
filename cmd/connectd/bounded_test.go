package main

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/test/e2e"
)

// boundedYAML is an exactly_once Kafka → Kafka copy on the test's broker.
const boundedYAML = `
instance_id: bounded-test
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		shutdown_timeout: 5s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		sink: {type: kafka, topic: out}
`

// runBounded runs `connectd run --until end --output json` to completion
// and returns its exit code and summary.
func runBounded(t *testing.T, path string) (int, boundedSummary) {
	t.Helper()
	r := connectd(t, 2*time.Minute, nil, "run", "-c", path, "--until", "end", "--output", "json")
	var sum boundedSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("summary: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return r.code, sum
}

// TestRunBoundedUntilEnd: `connectd run --until end` reads the input up to
// the end offsets it found at start, commits it exactly once, prints a
// summary and exits 0; run again it reads only what came since; an
// interrupted run (SIGINT while records are in flight) exits 3, and the
// same command then finishes the job with nothing duplicated.
func TestRunBoundedUntilEnd(t *testing.T) {
	c := newCluster(t)
	e2e.Produce(t, c, "in", 0, 3000)
	path := writeConfig(t, t.TempDir(), "bounded.yaml", strings.ReplaceAll(boundedYAML, "BROKERS", strings.Join(c.ListenAddrs(), ",")))

	check := func(what string, code int, sum boundedSummary, wantIn uint64, total int) {
		t.Helper()
		if code != 0 || sum.Outcome != "finished" || len(sum.Connectors) != 1 || sum.Connectors[0].RecordsIn != wantIn {
			t.Fatalf("%s: exit %d, summary %+v; want 0, finished, %d records in", what, code, sum, wantIn)
		}
		rep := verifyClean(t, path, "copy", "--stopped")
		if rep.Expected != total || rep.Actual != total {
			t.Fatalf("%s: verify %s, want %d expected and actual", what, rep, total)
		}
		t.Logf("%s: %.1fs, %d records in; verify %s", what, sum.Seconds, sum.Connectors[0].RecordsIn, rep)
	}
	code, sum := runBounded(t, path)
	check("first run", code, sum, 3000, 3000)
	e2e.Produce(t, c, "in", 3000, 4000)
	code, sum = runBounded(t, path)
	check("second run", code, sum, 1000, 4000)
	code, sum = runBounded(t, path)
	check("nothing new", code, sum, 0, 4000)

	// Interrupted with records in flight, then finished.
	const total = 150_000
	e2e.Produce(t, c, "in", 4000, total)
	// The signal must land with records in flight however fast the run
	// is (it read all 146,000 within the status poll's 100 ms on a quiet
	// machine): after the run's first fetch, every fetch is held until
	// the signal was sent.
	held, release := holdFetchesAfterFirst(c)
	p := startRun(t, path, "--until", "end", "--output", "json")
	waitRecordsIn(t, p.adminURL(t), "copy", 1)
	p.signal(t, syscall.SIGINT)
	if held() == 0 {
		t.Fatal("no fetch was held: the run may have read everything before the signal")
	}
	release()
	if code := p.wait(t, time.Minute); code != exitInterrupted {
		t.Fatalf("interrupted run: exit %d, want %d", code, exitInterrupted)
	}
	var cut boundedSummary
	if err := json.Unmarshal([]byte(p.stdout.String()), &cut); err != nil || cut.Outcome != "interrupted" {
		t.Fatalf("interrupted run: summary %q (%v)", p.stdout.String(), err)
	}
	if in := cut.Connectors[0].RecordsIn; in == 0 || in >= total-4000 {
		t.Fatalf("interrupted run read %d of %d records: the signal did not land mid-run", in, total-4000)
	}
	code, sum = runBounded(t, path)
	check("after the interruption", code, sum, total-4000-cut.Connectors[0].RecordsIn, total)

	// Input keeps arriving during a bounded run: it stops at the end
	// offsets it found at start, although it fetches records past them
	// (they are not committed as read: the next run reads them, and
	// verify finds none missing).
	var produced atomic.Int64
	produced.Store(total)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := int(produced.Load())
			e2e.Produce(t, c, "in", n, n+500)
			produced.Store(int64(n + 500))
		}
	}()
	waitProduced := func(n int64) {
		for produced.Load() < n {
			time.Sleep(time.Millisecond)
		}
	}
	waitProduced(total + 2000)
	code, sum = runBounded(t, path)
	atEnd := produced.Load()
	close(stop)
	wg.Wait()
	if code != 0 || sum.Outcome != "finished" || sum.Connectors[0].RecordsIn == 0 || int64(total)+int64(sum.Connectors[0].RecordsIn) >= atEnd {
		t.Fatalf("during input: exit %d, %+v; want finished before the %d records produced by its end", code, sum, atEnd)
	}
	first := sum.Connectors[0].RecordsIn
	final := int(produced.Load())
	code, sum = runBounded(t, path)
	check("catching up after input stopped", code, sum, uint64(final-total)-first, final)
}

// A bounded run refuses what it cannot bound, naming the connector, and a
// bad --until or --output is a usage error.
func TestRunBoundedRefusals(t *testing.T) {
	c := newCluster(t)
	path := writeConfig(t, t.TempDir(), "gen.yaml", `
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [`+strings.Join(c.ListenAddrs(), ",")+`]
connectors:
	- name: gen
		source: {type: generator}
		sink: {type: kafka, topic: raw}
`)
	r := connectd(t, time.Minute, nil, "run", "-c", path, "--until", "end")
	if r.code != exitFail || !strings.Contains(r.stderr, "connector gen: --until: a bounded run needs a source that ends: a generator without a count never ends") {
		t.Fatalf("unbounded generator: exit %d, stderr %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"--until", "yesterday"}, {"--until", "end", "--output", "yaml"}} {
		r := connectd(t, time.Minute, nil, append([]string{"run", "-c", path}, args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, args[len(args)-1]) {
			t.Fatalf("%v: exit %d, stderr %s; want a usage error naming it", args, r.code, r.stderr)
		}
	}
}

// A generator with a count is a bounded job of count events: the run ends
// when its checkpoint reaches the count, and a second run has nothing to do.
func TestRunBoundedGenerator(t *testing.T) {
	c := newCluster(t)
	path := writeConfig(t, t.TempDir(), "gen.yaml", `
instance_id: bounded-gen
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [`+strings.Join(c.ListenAddrs(), ",")+`]
connectors:
	- name: gen
		source: {type: generator, count: 5000, key_cardinality: 20}
		sink: {type: kafka, topic: raw}
`)
	for i, want := range []uint64{5000, 0} {
		code, sum := runBounded(t, path)
		if code != 0 || sum.Outcome != "finished" || sum.Connectors[0].RecordsIn != want {
			t.Fatalf("run %d: exit %d, %+v; want finished with %d records in", i+1, code, sum, want)
		}
		rep := verifyClean(t, path, "gen", "--stopped")
		if rep.Expected != 5000 || rep.Actual != 5000 {
			t.Fatalf("run %d: verify %s, want 5000", i+1, rep)
		}
		t.Logf("run %d: %.1fs, %d events; verify %s", i+1, sum.Seconds, sum.Connectors[0].RecordsIn, rep)
	}
}

// A windowed connector as a bounded job: at the end of its input every
// window it holds open is emitted (its watermark raised just enough, and
// logged for verify), so the output holds every window of the input; the
// next run's input opens new windows.
func TestRunBoundedWindows(t *testing.T) {
	c := newCluster(t)
	e2e.Produce(t, c, "in", 0, 3000)
	yaml := strings.Replace(boundedYAML, "		sink: {type: kafka, topic: out}", `		transforms:
			- type: window
				time: value.i * 10
				window: {type: tumbling, size: 1s}
				watermark: {max_out_of_orderness: 5s}
				late: drop
				aggregate: {n: count(), total: sum(value.amount)}
		sink: {type: kafka, topic: out}`, 1)
	path := writeConfig(t, t.TempDir(), "bounded.yaml", strings.ReplaceAll(yaml, "BROKERS", strings.Join(c.ListenAddrs(), ",")))
	windows := func(n int) int { // distinct (key, window) of records 0..n-1
		seen := map[[2]int]bool{}
		for i := range n {
			seen[[2]int{i % 97, i * 10 / 1000}] = true
		}
		return len(seen)
	}
	for _, upTo := range []int{3000, 4500} {
		if upTo > 3000 {
			e2e.Produce(t, c, "in", 3000, upTo)
		}
		code, sum := runBounded(t, path)
		if code != 0 || sum.Outcome != "finished" {
			t.Fatalf("input up to %d: exit %d, %+v", upTo, code, sum)
		}
		rep := verifyClean(t, path, "copy", "--stopped")
		if rep.Windows != windows(upTo) || rep.Late != 0 {
			t.Fatalf("input up to %d: verify %s, want all %d windows emitted, none late", upTo, rep, windows(upTo))
		}
		t.Logf("input up to %d: %d records in; verify %s", upTo, sum.Connectors[0].RecordsIn, rep)
	}
}

// holdFetchesAfterFirst makes c answer the first Fetch request from now on
// and hold every later one until release is called. held counts the
// requests that were held. Other requests are answered meanwhile: franz-go
// fetches on connections of their own, and kfake's SleepControl yields to
// other connections.
func holdFetchesAfterFirst(c *kfake.Cluster) (held func() int32, release func()) {
	var seen, holds atomic.Int32
	var releasing atomic.Bool
	gate := make(chan struct{})
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if seen.Add(1) > 1 && !releasing.Load() {
			holds.Add(1)
			c.SleepControl(func() { <-gate })
		}
		return nil, nil, false
	})
	var once sync.Once
	return holds.Load, func() {
		once.Do(func() {
			releasing.Store(true)
			close(gate)
		})
	}
}
