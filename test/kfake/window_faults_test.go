package kfake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/test/e2e"
)

// The windowed connector of these tests: tumbling windows of winSize ms
// over event time value.i*winTick (so a window holds winSize/winTick
// consecutive input indexes), count and sum of value.amount per record
// key, into the Kafka topic out; its state lives in the compacted topic
// winGroup-state, written in the batch's transaction.
const (
	winTick  = 10
	winSize  = 1000
	winGroup = "win-group"
)

const windowYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: win
		guarantee: exactly_once
		commit.interval: 50ms
		batch.max.records: 400
		transaction.timeout: 10s
		source: {type: kafka, topics: [in], group: win-group, session_timeout: 6s}
		transforms:
GATE
			- type: window
				time: value.i * 10
				window: {type: tumbling, size: 1000ms}
				late: drop
				aggregate:
					n: count()
					total: sum(value.amount)
		sink: {type: kafka, topic: out}
`

// windowConfig is windowYAML; gate, if not empty, names a test_gate put
// before the window stage.
func windowConfig(gate string) string {
	stage := ""
	if gate != "" {
		stage = "\t\t\t- type: test_gate\n\t\t\t\tname: " + gate
	}
	return strings.Replace(windowYAML, "GATE\n", stage+"\n", 1)
}

// windowFaults is faultSet plus the state topic's own: its produces
// rejected, or applied and answered REQUEST_TIMED_OUT (the outcome of the
// state write unknown), and its fetches failing while a restore reads it.
var windowFaults = append(append([]kfake.Fault{}, faultSet...),
	kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.StateTopic(winGroup), Err: kerr.UnknownServerError},
	kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.StateTopic(winGroup), Err: kerr.RequestTimedOut},
	kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: kafka.StateTopic(winGroup), Err: kerr.UnknownServerError},
)

// TestWindowedExactlyOnceUnderFaults: the fault schedule of
// TestExactlyOnceUnderFaults with a windowed connector: produce,
// offset-commit and end-transaction faults (timeouts after the broker
// applied the request included), faults on the state topic's produces
// and restore fetches, a restart mid-stream, and a second instance
// joining and leaving. Batches are aborted with window state in them and
// state is restored after each abort, restart and move. In the end every
// window the input closed is in the output once, with the count and sum
// computed here from the input, and no window still open is.
//
// The input is fed (e2e.Feeder), not pre-loaded: the feeder keeps the
// backlog several batches long whatever the machine's speed, and stops
// only after the schedule, so each step (the restart, b's join, b's
// commits and state restores, b's leaving) happens while input is in
// flight, and the steps are keyed on the committed input, not on time.
// With a pre-loaded backlog a fast a could drain it before b, slowed by
// the same faults, committed anything (CI run 57). That b restored state
// and committed while input was in flight is the bite, asserted.
//
// The batches are the copy schedule's (400 records, 50ms): with the
// backlog most end at their record limit after one poll, so many meet a
// fault. TestWindowedRebalanceBetweenPolls covers long batches.
func TestWindowedExactlyOnceUnderFaults(t *testing.T) {
	const n = 20000 // the schedule's steps come at fractions of n committed input records
	c := newCluster(t)
	cfg := parse(t, c, windowConfig(""))
	adm := newAdmin(t, c)

	// produced: every input record below it is in the topic (the feeder
	// produces its chunks in order and asks for the next one only after
	// the last one was written).
	var produced atomic.Int64
	feed := e2e.Feed(t, c, "in", 0, func(from, to int) []*kgo.Record {
		produced.Store(int64(from))
		return e2e.InputRecords(from, to)
	}, committedEvery(adm, 50*time.Millisecond))
	// inFlight returns the committed input records and fails the test
	// unless some input produced is not yet committed: what, happening
	// now, meets work in flight.
	inFlight := func(what string) int {
		t.Helper()
		got := waitCommittedInput(t, adm, 0, 30*time.Second) // 0: the count, once read
		if p := int(produced.Load()); got >= p {
			t.Fatalf("%s: the input was drained (%d committed, %d produced): nothing in flight", what, got, p)
		}
		return got
	}

	faults := e2e.Inject(c, windowFaults, 42, 0.05)
	var daemons []*daemon.Daemon
	start := func(id string) *daemon.Daemon {
		d := startDaemon(t, cfg, id)
		daemons = append(daemons, d)
		return d
	}
	step := func(what string, at int) {
		t.Helper()
		waitCommittedInput(t, adm, at, 2*time.Minute)
		t.Logf("%s at %d input records committed, %d produced", what, inFlight(what), produced.Load())
	}
	a := start("a")
	step("restart of a", n/4)
	a.Stop() // graceful: commits or aborts its open batch
	a = start("a")
	step("b joins", n/2)
	b := start("b") // joins: cooperative rebalance moves partitions to it
	// b leaves once it has restored state and committed: with faults
	// aborting some of its batches and a loaded machine, that is not at a
	// fixed point of the input; the feeder keeps input coming meanwhile.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, _ := b.Status("win")
		// The bite: b restored window state and committed, under the
		// faults, and the input is not drained (checked at each look):
		// the rebalance moved work with window state in it.
		got := inFlight("b's state restore and commit")
		if st.Commits > 0 && st.Window != nil && st.Window.Restores > 0 {
			t.Logf("b restored %d partition states and committed %d batches (aborts %v) by %d input records committed, %d produced",
				st.Window.Restores, st.Commits, st.Aborts, got, produced.Load())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b committed nothing or restored no state within 2m (%+v)", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	step("b leaves", 0)
	b.Stop() // leaves: its partitions move back
	step("faults stop", 9*n/10)
	hits, summary := faults.Stop()
	t.Logf("faults: %s", summary)
	total := feed.Stop(t)
	waitCommittedInput(t, adm, total, 2*time.Minute)

	aborts, restores := map[string]int{}, uint64(0)
	for _, d := range daemons {
		st, _ := d.Status("win")
		for k, v := range st.Aborts {
			aborts[k] += int(v)
		}
		if st.Window != nil {
			restores += st.Window.Restores
		}
	}
	a.Stop()
	t.Logf("%d input records; %d requests faulted, batches aborted %v, %d partition states restored across instances", total, hits, aborts, restores)
	// A rebalance aborts batches too (abortable); a REQUEST_TIMED_OUT on
	// TxnOffsetCommit or EndTxn, which the faults answer at least once
	// for sure, leaves the batch's outcome unknown.
	if aborts[connector.CommitUnknown.String()] == 0 {
		t.Fatalf("no batch ended with its commit outcome unknown (aborts %v): the faults did not bite", aborts)
	}
	for i, f := range windowFaults {
		if f.Keys[0] != kmsg.OffsetCommit && !faults.Fired(i) {
			t.Errorf("fault %s %s (topic %q) never fired", f.Keys[0].Name(), f.Err.Message, f.Topic)
		}
	}
	checkOutputWindows(t, c, adm)
}

// committedEvery is committedInput for a Feeder, asked at most every
// period (the feeder polls it every few milliseconds while the backlog is
// long), from one goroutine; on an error it returns the last count it got.
func committedEvery(adm *kadm.Client, period time.Duration) func() int {
	var last int
	var at time.Time
	return func() int {
		if time.Since(at) < period {
			return last
		}
		if got, err := committedInput(adm); err == nil {
			last = got
		}
		at = time.Now()
		return last
	}
}

// TestWindowedZombieNeverCommits: a windowed instance frozen in the middle
// of a batch (its windows changed in memory, its transaction open) is
// replaced by a newer owner, which drains the input; when the zombie wakes
// up, its batch (results and state records) must not commit. A third
// instance then restores the state from the state topic and more input
// flows: its windows come out right only if the zombie wrote nothing there.
func TestWindowedZombieNeverCommits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		newInstance string
	}{
		{"same transactional id", "z"},
		{"group generation", "y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			adm := newAdmin(t, c)
			produceInputRange(t, c, "in", 0, 1000)

			zombieGate := e2e.NewGate(t.Name()+"/zombie", 1000)
			e2e.NewGate(t.Name()+"/heir", 1<<62) // never blocks
			defer zombieGate.Release()
			// Long batches: the zombie's first batch holds every
			// record before the gate.
			long := func(yaml string) string {
				return strings.NewReplacer("commit.interval: 50ms", "commit.interval: 10s",
					"batch.max.records: 400", "batch.max.records: 100000",
					"transaction.timeout: 10s", "transaction.timeout: 30s").Replace(yaml)
			}
			cfgZombie := parse(t, c, long(windowConfig(t.Name()+"/zombie")))
			cfgHeir := parse(t, c, windowConfig(t.Name()+"/heir"))

			opts := []kgo.Opt{kgo.RebalanceTimeout(3 * time.Second)}
			zombie := startDaemonOpts(t, cfgZombie, "z", opts)
			e2e.WaitClosed(t, zombieGate.Started(), "zombie started")
			// Records 0..999 are now in the zombie's windows; 1000..
			// make it freeze inside the same batch.
			produceInputRange(t, c, "in", 1000, 3000)
			e2e.WaitClosed(t, zombieGate.Reached(), "zombie frozen")
			if st, _ := zombie.Status("win"); st.Window == nil || st.Window.OpenWindows == 0 {
				t.Fatalf("the zombie froze with no window open: %+v", st)
			}

			heir := startDaemonOpts(t, cfgHeir, tc.newInstance, opts)
			waitCommittedInput(t, adm, 3000, 2*time.Minute)

			zombieGate.Release() // the zombie wakes up and tries to finish its batch
			waitWindowAborted(t, zombie, 30*time.Second)
			st, _ := zombie.Status("win")
			if st.Commits != 0 {
				t.Fatalf("the zombie committed %d batches", st.Commits)
			}
			if st.Window == nil || st.Window.Emitted == 0 {
				t.Fatalf("the zombie's batch flushed no window result: it had nothing to commit (%+v)", st.Window)
			}
			t.Logf("zombie: aborts %v, %d results flushed into its fenced batch", st.Aborts, st.Window.Emitted)
			zombie.Stop()
			heir.Stop()

			// A new owner restores the state the heir committed (and
			// nothing of the zombie's) and carries on.
			next := startDaemon(t, cfgHeir, "x")
			produceInputRange(t, c, "in", 3000, 5000)
			waitCommittedInput(t, adm, 5000, 2*time.Minute)
			if st, _ := next.Status("win"); st.Window == nil || st.Window.Restores == 0 {
				t.Fatalf("the new owner restored no state: %+v", st.Window)
			}
			next.Stop()
			checkOutputWindows(t, c, adm)
		})
	}
}

// waitWindowAborted waits until d's win connector has aborted a batch.
func waitWindowAborted(t *testing.T, d *daemon.Daemon, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, _ := d.Status("win")
		for _, v := range st.Aborts {
			if v > 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the zombie's batch neither committed nor aborted")
}

func newAdmin(t *testing.T, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// committedInput is how many input records winGroup has committed: the
// input is not transactional, so offsets count records.
func committedInput(adm *kadm.Client) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, winGroup)
	if err != nil {
		return 0, err
	}
	if err := offs.Error(); err != nil {
		return 0, err
	}
	total := int64(0)
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == "in" {
			total += max(o.At, 0)
		}
	})
	return int(total), nil
}

// waitCommittedInput waits until at least n input records are committed
// and returns how many are.
func waitCommittedInput(t *testing.T, adm *kadm.Client, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := committedInput(adm)
		if err == nil && got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d input records committed after %v (%v)", got, n, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// window is one window's aggregates: count and sum of amounts.
type window struct{ n, total float64 }

// checkOutputWindows compares the committed output with the windows
// computed from the input topic, once every input record is committed and
// no instance runs: per input partition p, W_p is the latest event time
// in p (out-of-orderness 0), and the windows of p that end at or before
// it are closed. Each closed window must be in the output once with its
// count and sum, and no other window may be.
func checkOutputWindows(t *testing.T, c *kfake.Cluster, adm *kadm.Client) {
	t.Helper()
	want := map[string]window{}
	wp := map[int32]int64{}
	ends := map[string]int64{}
	parts := map[string]int32{}
	readAll(t, c, "in", func(r *kgo.Record) {
		var v struct{ I, Amount int64 }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("input %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		ts := v.I * winTick
		start := ts - ts%winSize
		id := fmt.Sprintf("win/%s/%d", r.Key, start)
		w := want[id]
		want[id] = window{w.n + 1, w.total + float64(v.Amount)}
		ends[id], parts[id] = start+winSize, r.Partition
		wp[r.Partition] = max(wp[r.Partition], ts)
	})
	for id := range want {
		if ends[id] > wp[parts[id]] {
			delete(want, id) // still open
		}
	}
	got := map[string]window{}
	twice := 0
	readAll(t, c, "out", func(r *kgo.Record) {
		id := headers(r)[kafka.HeaderEventID]
		var v struct{ N, Total float64 }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("output %s: %v", id, err)
		}
		if _, ok := got[id]; ok {
			twice++
			if twice <= 10 {
				t.Errorf("window %s emitted twice", id)
			}
		}
		got[id] = window{v.N, v.Total}
	})
	bad := 0
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			if bad++; bad <= 20 {
				t.Errorf("window %s: got %v (present %v), want %v", id, g, ok, w)
			}
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			if bad++; bad <= 20 {
				t.Errorf("window %s emitted but the input has not closed it", id)
			}
		}
	}
	if bad > 0 || twice > 0 {
		t.Fatalf("%d windows wrong, missing or unexpected, %d emitted more than once, of %d closed", bad, twice, len(want))
	}
	t.Logf("%d closed windows in the output once each, value for value", len(want))
}

// readAll reads topic from the start with read_committed, calling fn for
// each data record, until every partition is read to the end offset
// listed first (nothing writes to topic any more). Control records are
// kept so that a partition ending in a transaction marker is seen to end.
func readAll(t *testing.T, c *kfake.Cluster, topic string, fn func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: partitions (with their end offsets) %v not read to the end", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
}

// TestWindowedRebalanceBetweenPolls: a rebalance that completes between
// two polls of one batch. A member keeps polling while it rejoins its
// group (BlockRebalanceOnPoll holds back only the revocation), so its
// generation can change in the middle of a batch, after records of the
// batch went into its windows. Those records are in the batch's
// checkpoint: their window state must be in its commit too, whatever the
// assignment change does to the state of the partitions involved.
//
// a runs with long batches (2s) while input streams in; b joins. Every
// SyncGroup of a is held by the broker until a has processed records of
// its current batch since the SyncGroup came (asserted, that is the
// fault), so each new generation arrives in the middle of a batch with
// window state in it. Then b leaves, the input drains, and every window
// the input closed must be in the output once, value for value.
func TestWindowedRebalanceBetweenPolls(t *testing.T) {
	c := newCluster(t)
	adm := newAdmin(t, c)
	produceInputRange(t, c, "in", 0, 2000)
	cfg := parse(t, c, strings.NewReplacer("commit.interval: 50ms", "commit.interval: 2s",
		"batch.max.records: 400", "batch.max.records: 100000").Replace(windowConfig("")))
	feed := streamInput(t, c, 2000)
	a := startDaemon(t, cfg, "a")
	waitCommittedInput(t, adm, 2000, time.Minute)

	var (
		mu   sync.Mutex
		held []string // what each held SyncGroup of a found
		bit  int      // held SyncGroups during which a's batch took records
	)
	aID := pipeline.GroupInstanceID("win", "a")
	c.ControlKey(int16(kmsg.SyncGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if r := req.(*kmsg.SyncGroupRequest); r.InstanceID == nil || *r.InstanceID != aID {
			return nil, nil, false
		}
		c.SleepControl(func() {
			// Records a's open batch took since the SyncGroup came: the
			// window stage counts records it processed, committed or
			// not; a commit starts a new batch (and a new count).
			st, _ := a.Status("win")
			commits, from := st.Commits, st.Window.Aggregated
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				st, _ = a.Status("win")
				if st.Commits != commits {
					commits, from = st.Commits, st.Window.Aggregated
					continue
				}
				if st.Window.Aggregated > from {
					mu.Lock()
					bit++
					held = append(held, fmt.Sprintf("batch took %d records before the sync", st.Window.Aggregated-from))
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			held = append(held, "no records")
			mu.Unlock()
		})
		return nil, nil, false // then answered as usual
	})

	b := startDaemon(t, cfg, "b")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("b to hold partitions and commit", func() bool {
		st, _ := b.Status("win")
		return len(st.Partitions) > 0 && st.Commits > 0
	})
	b.Stop()
	waitFor("a to hold every partition and commit", func() bool {
		st, _ := a.Status("win")
		return len(st.Partitions) == 4 && st.Commits > 0
	})
	total := feed.stop(t)
	waitCommittedInput(t, adm, total, time.Minute)
	st, _ := a.Status("win")
	a.Stop()
	mu.Lock()
	t.Logf("a's SyncGroups held: %v; a's aborts %v, window %+v", held, st.Aborts, *st.Window)
	if bit == 0 {
		mu.Unlock()
		t.Fatal("no SyncGroup of a completed while its batch held records: the rebalance never landed between two polls")
	}
	mu.Unlock()
	checkOutputWindows(t, c, adm)
}

// inputStream produces input records at a steady pace until stopped.
type inputStream struct {
	next   atomic.Int64 // records produced, plus the count it started from
	cancel context.CancelFunc
	done   chan error
}

// streamInput produces records from.. (shaped like produceInput's), 50
// every 10ms, until stopped (when the test ends at the latest).
func streamInput(t *testing.T, c *kfake.Cluster, from int) *inputStream {
	return streamRecords(t, c, from, []kgo.Opt{kgo.DefaultProduceTopic("in")}, func(i int) []*kgo.Record {
		var recs []*kgo.Record
		for j := i; j < i+50; j++ {
			recs = append(recs, &kgo.Record{
				Key:     fmt.Appendf(nil, "k-%d", j%97),
				Value:   fmt.Appendf(nil, `{"i":%d,"amount":%d}`, j, j%1000),
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", j)}},
			})
		}
		return recs
	})
}

// streamRecords produces next(n)'s records every 10ms (n: the count so
// far, starting at from) through a client made of opts, until stopped.
func streamRecords(t *testing.T, c *kfake.Cluster, from int, opts []kgo.Opt, next func(n int) []*kgo.Record) *inputStream {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &inputStream{cancel: cancel, done: make(chan error, 1)}
	s.next.Store(int64(from))
	go func() {
		defer cl.Close()
		for ctx.Err() == nil {
			n := int(s.next.Load())
			recs := next(n)
			pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := cl.ProduceSync(pctx, recs...).FirstErr()
			pcancel()
			if err != nil {
				s.done <- err
				return
			}
			s.next.Store(int64(n + len(recs)))
			time.Sleep(10 * time.Millisecond)
		}
		s.done <- nil
	}()
	t.Cleanup(func() { s.cancel() })
	return s
}

// stop ends the stream and returns the count: from plus the records
// produced.
func (s *inputStream) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatalf("input stream: %v", err)
	}
	return int(s.next.Load())
}
