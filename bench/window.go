package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Issue 15's windowed benchmark: count and sum(amount) per key in 1-minute
// tumbling windows of event time, final results only, exactly-once into
// Kafka, by connectd's window stage and by a Kafka Streams exactly_once_v2
// app (bench/peers/streams-window) on the same input.
//
// Input. Each run pre-loads its own topic (its live phase appends to it, so
// it cannot be shared): Records values of {"ts":<stamp>,"i":i,
// "amount":i%1000,"pad":…} JSON, key "k-<i%10000>" partitioned by the key
// (Kafka's murmur2, so every key lives in one partition, as windows per
// input partition need), record timestamp = event time. The backlog's event
// time advances by one minute every windowBacklogPer records (5 per key),
// so with 1,000,000 records 20 windows close one after the other during the
// drain (each partition's watermark, or Streams' stream time, is its
// highest timestamp). Event times lie an hour and more in the past: within
// the broker's retention, never ahead of its clock.
//
// Close→visible latency. After the drain the harness produces live records
// at -latency-rate, event time advancing so that a window closes every
// -window-close-every (default 1 s: at 5,000 records/s a window then holds
// 5,000 records of as many keys; the drain closes one every 0.3 to 0.6 s at
// 80,000 to 190,000 records/s). A window [s, e) of key k in input partition p
// closes at the first record of p with event time ≥ e (no out-of-orderness,
// no lateness, grace 0: the same rule for both systems). Its latency is the
// time a read_committed consumer of the output fetched the window's result
// minus the wall time at which the harness handed that closing record to
// its producer. Only windows whose closing record came after the warm-up
// count. It includes the producer's send, the system's batch or commit
// interval, its commit and the consumer's fetch, the same for both systems.
//
// Checks. Every result of the run is read back (read_committed) and
// compared with the windows computed here from the input: a result must be
// a closed window's, once, with its exact count and sum; every closed
// window must be there.

// windowStage is the connector's window transform, as the README documents
// it: the record timestamp is the event time, no out-of-orderness, no
// allowed lateness, emit final (the defaults).
const windowStage = `    transforms:
      - type: window
        window: {type: tumbling, size: 1m}
        late: drop
        aggregate:
          n: count()
          total: sum(value.amount)
`

const (
	windowKeys       = 10000
	windowMs         = 60000
	windowBacklogPer = 50000 // backlog records per window: 5 per key
	// stateScrapeEvery is how often a connectd run's state gauges are read
	// during the drain (the drain polls every 20 ms; /metrics is heavier).
	stateScrapeEvery = 500 * time.Millisecond
)

// WindowResult is what a windowed run adds to its Result.
type WindowResult struct {
	// connectd: the peaks of connectd_window_open_windows and
	// connectd_window_state_bytes (status window.open_windows and
	// state_bytes, an estimate of the open windows' memory) sampled during
	// the drain.
	OpenWindowsPeak, StateBytesPeak int64
	// Kafka Streams: bytes of its state.dir (RocksDB window store,
	// checkpoints) at the end of the drain.
	StateDirBytes int64
	// The output check: results read back, wrong ones (a window's count or
	// sum differs, or a window that had not closed), duplicates, and closed
	// windows missing.
	Results, Wrong, Duplicates, Missing int64
	// LatencyUnmatched counts results of the live phase whose closing
	// record the harness could not find (none expected).
	LatencyUnmatched int
	// InputCommitted splits the close→visible latency: from a closing
	// record's send to the first poll (every 5 ms) of the group's committed
	// offsets past it, i.e. read, processed and committed. Both systems
	// commit the input offsets in the transaction that holds the results,
	// so the rest of the close→visible latency is the output's way to the
	// harness's consumer (commit markers, the fetch). One sample per
	// (partition, closed window).
	InputCommitted *LatencySummary `json:",omitempty"`
}

// windowSchedule gives record i its event time (unix ms).
type windowSchedule struct {
	base      int64 // record 0's event time, a window start
	n         int64 // backlog records
	liveStart int64 // the first live record's: the window after the backlog's last
	liveStep  int64 // event-time ms per live record
}

func newWindowSchedule(now time.Time, n int64, liveRate int, liveDur, closeEvery time.Duration) windowSchedule {
	windows := (n + windowBacklogPer - 1) / windowBacklogPer
	step := max(int64(float64(windowMs)/(float64(liveRate)*closeEvery.Seconds())), 1)
	span := windows*windowMs + int64(float64(liveRate)*(latencyWarmUp+liveDur).Seconds())*step
	base := now.UnixMilli() - span - time.Hour.Milliseconds()
	base -= base % windowMs
	return windowSchedule{base: base, n: n, liveStart: base + windows*windowMs, liveStep: step}
}

func (w windowSchedule) at(i int64) int64 {
	if i < w.n {
		return w.base + i*windowMs/windowBacklogPer
	}
	return w.liveStart + (i-w.n)*w.liveStep
}

func windowKey(i int64) int { return int(i % windowKeys) }

func windowKeyBytes(k int) []byte { return []byte("k-" + strconv.Itoa(k)) }

func windowAmount(i int64) int64 { return i % 1000 }

// appendWindowPayload appends record i's value: the payload layout of
// appendPayload (stamp first) with the amount, padded to size bytes.
func appendWindowPayload(dst []byte, i int64, size int, ts time.Time) []byte {
	start := len(dst)
	dst = append(dst, tsPrefix...)
	dst = appendPadded(dst, ts.UnixMicro(), tsDigits)
	dst = append(dst, `,"i":`...)
	dst = strconv.AppendInt(dst, i, 10)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, windowAmount(i), 10)
	dst = append(dst, `,"pad":"`...)
	for len(dst)-start < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// windowID is one (key, window) of the workload.
type windowID struct {
	key   int
	start int64
}

type windowSum struct {
	n     int64
	total float64
}

// liveRecord is a live record as acknowledged: where it landed, its event
// time and when the harness handed it to the producer.
type liveRecord struct {
	offset int64
	ts     int64
	stamp  time.Time
}

// windowInput is one run's input and the windows it must produce.
type windowInput struct {
	sched  windowSchedule
	expect map[windowID]*windowSum // written by the producing goroutine only

	mu       sync.Mutex
	keyPart  []int32         // partition of each key, -1 before its first ack
	maxTs    map[int32]int64 // highest acknowledged event time per partition
	live     map[int32][]liveRecord
	firstErr error
}

func newWindowInput(sched windowSchedule) *windowInput {
	wi := &windowInput{sched: sched, expect: map[windowID]*windowSum{}, keyPart: make([]int32, windowKeys),
		maxTs: map[int32]int64{}, live: map[int32][]liveRecord{}}
	for k := range wi.keyPart {
		wi.keyPart[k] = -1
	}
	return wi
}

// produce hands record i to cl; live records are remembered with their
// stamp for the latency phase.
func (wi *windowInput) produce(ctx context.Context, cl *kgo.Client, topic string, i int64, size int, buf []byte, live bool) []byte {
	ts := wi.sched.at(i)
	k := windowKey(i)
	id := windowID{key: k, start: ts - ts%windowMs}
	e := wi.expect[id]
	if e == nil {
		e = &windowSum{}
		wi.expect[id] = e
	}
	e.n++
	e.total += float64(windowAmount(i))
	stamp := time.Now()
	buf = appendWindowPayload(buf[:0], i, size, stamp)
	r := &kgo.Record{Topic: topic, Key: windowKeyBytes(k), Value: append([]byte(nil), buf...), Timestamp: time.UnixMilli(ts)}
	cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		wi.mu.Lock()
		defer wi.mu.Unlock()
		switch {
		case err != nil:
			if wi.firstErr == nil {
				wi.firstErr = err
			}
			return
		case wi.keyPart[k] >= 0 && wi.keyPart[k] != r.Partition:
			if wi.firstErr == nil {
				wi.firstErr = fmt.Errorf("key %d went to partitions %d and %d", k, wi.keyPart[k], r.Partition)
			}
		}
		wi.keyPart[k] = r.Partition
		if m, ok := wi.maxTs[r.Partition]; !ok || ts > m {
			wi.maxTs[r.Partition] = ts
		}
		if live {
			wi.live[r.Partition] = append(wi.live[r.Partition], liveRecord{offset: r.Offset, ts: ts, stamp: stamp})
		}
	})
	return buf
}

// closedBy reports whether window id is closed by the event times in
// maxTs (a partition's watermark is its highest event time).
func (wi *windowInput) closedBy(id windowID, maxTs map[int32]int64) bool {
	p := wi.keyPart[id.key]
	m, ok := maxTs[p]
	return p >= 0 && ok && m >= id.start+windowMs
}

func (wi *windowInput) snapshotMaxTs() map[int32]int64 {
	wi.mu.Lock()
	defer wi.mu.Unlock()
	out := make(map[int32]int64, len(wi.maxTs))
	for p, m := range wi.maxTs {
		out[p] = m
	}
	return out
}

// closedCount is how many windows the input has closed by now.
func (wi *windowInput) closedCount() int64 {
	maxTs := wi.snapshotMaxTs()
	var n int64
	for id := range wi.expect {
		if wi.closedBy(id, maxTs) {
			n++
		}
	}
	return n
}

// keyedClient is a producer partitioning by key with Kafka's murmur2
// (franz-go's default partitioner), unlike the harness's round-robin one.
func (k *kafkaEnv) keyedClient() (*kgo.Client, error) {
	k.keyedOnce.Do(func() {
		k.keyed, k.keyedErr = kgo.NewClient(append(slices.Clip(k.conn),
			kgo.ProducerLinger(5*time.Millisecond),
			kgo.ProducerBatchMaxBytes(1<<20),
			kgo.MaxBufferedRecords(50000),
		)...)
	})
	return k.keyed, k.keyedErr
}

// preloadWindowed writes the backlog of a windowed run.
func (r *Runner) preloadWindowed(ctx context.Context, topic string, s Scenario) (*windowInput, error) {
	cl, err := r.kafka.keyedClient()
	if err != nil {
		return nil, err
	}
	wi := newWindowInput(newWindowSchedule(time.Now(), r.o.Records, r.o.LatencyRate, r.o.LatencyDuration, r.o.WindowCloseEvery))
	var buf []byte
	for i := range r.o.Records {
		buf = wi.produce(ctx, cl, topic, i, s.RecordSize, buf, false)
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	wi.mu.Lock()
	defer wi.mu.Unlock()
	return wi, wi.firstErr
}

func (r *Runner) streamsStateDir(n names) string {
	return filepath.Join(r.o.WorkDir, n.id+".streams-state")
}

// runWindowed is runOne for a windowed scenario: its own input topic,
// pre-loaded before the system starts; the drain; the close→visible
// latency phase; the output check.
func (r *Runner) runWindowed(ctx context.Context, run Run, withLatency, profile bool) (res Result) {
	s := run.Scenario
	res = Result{Run: run, Records: r.o.Records, Commits: math.NaN(), Aborts: math.NaN(), CommitShare: math.NaN(), Window: &WindowResult{}}
	fail := func(err error) Result { res.Err = err.Error(); return res }
	n := r.names(s.slug() + "-" + run.label())
	defer r.cleanupWindowed(n)
	if s.Sink != SinkKafka || s.Guarantee != ExactlyOnce || (s.System != Connectd && s.System != Streams) {
		return fail(fmt.Errorf("windowed runs are connectd or Kafka Streams, exactly_once into Kafka"))
	}
	for _, t := range []string{n.in, n.out} {
		if err := r.kafka.createTopic(ctx, t, s.Partitions); err != nil {
			return fail(err)
		}
	}
	start := time.Now()
	wi, err := r.preloadWindowed(ctx, n.in, s)
	if err != nil {
		return fail(fmt.Errorf("pre-loading %s: %w", n.in, err))
	}
	r.logf("pre-loaded %s: %d records, %d windows, in %s", n.in, r.o.Records, len(wi.expect), time.Since(start).Round(time.Millisecond))

	var admin string
	if profile {
		res.Profile = filepath.Join(r.o.WorkDir, n.id+".cpu.pprof")
	}
	c, err := r.start(ctx, s, n, n.in, &admin, res.Profile)
	if err != nil {
		return fail(err)
	}
	defer c.kill()

	var lastScrape time.Time
	onPoll := func() {
		if s.System != Connectd || time.Since(lastScrape) < stateScrapeEvery {
			return
		}
		lastScrape = time.Now()
		r.scrapeWindowState(admin, res.Window)
	}
	samples, err := r.drain(ctx, s, c, r.frontier(s, n), n.in, onPoll)
	if err != nil {
		return fail(err)
	}
	if s.System == Connectd {
		r.scrapeWindowState(admin, res.Window)
		if text, err := scrape("http://" + admin + "/metrics"); err == nil {
			if v, ok := sumMetric(text, "connectd_commit_duration_seconds_sum"); ok {
				res.CommitShare = v
			}
		}
	} else {
		res.Window.StateDirBytes = dirSize(r.streamsStateDir(n))
	}
	rate, elapsed, ok := DrainRate(samples, r.o.Records)
	if !ok {
		return fail(errors.New("drain too fast to measure: progress seen only once; use more -records"))
	}
	res.RecordsPerSec, res.Drain = rate, elapsed
	res.MBPerSec = rate * float64(s.RecordSize) / 1e6
	res.CPUDrain = CPUBetween(samples, r.o.Records)
	if !math.IsNaN(res.CommitShare) {
		res.CommitShare = min(res.CommitShare/elapsed.Seconds(), 1)
	}

	if withLatency {
		lat, committed, unmatched, err := r.windowLatencyPhase(ctx, n, wi, s.RecordSize)
		if err != nil {
			return fail(fmt.Errorf("latency phase: %w", err))
		}
		res.Latency, res.Window.InputCommitted, res.Window.LatencyUnmatched = lat, committed, unmatched
	}
	if s.System == Connectd {
		if text, err := scrape("http://" + admin + "/metrics"); err == nil {
			if v, ok := sumMetric(text, "connectd_batches_committed_total"); ok {
				res.Commits = v
			}
			if v, ok := sumMetric(text, "connectd_batches_aborted_total"); ok {
				res.Aborts = v
			}
		}
	}
	res.Expected = wi.closedCount()
	if err := checkWindowOutput(ctx, r.conn, n.out, wi, res.Expected, 5*time.Second, res.Window); err != nil {
		return fail(fmt.Errorf("reading the output: %w", err))
	}
	res.Output = res.Expected - res.Window.Missing
	c.sampleRSS()
	c.stop(30 * time.Second)
	res.CPUTotal = c.cpu()
	res.PeakRSS = c.peakRSS()
	return res
}

// scrapeWindowState keeps the peaks of connectd's window gauges.
func (r *Runner) scrapeWindowState(admin string, w *WindowResult) {
	text, err := scrape("http://" + admin + "/metrics")
	if err != nil {
		return
	}
	if v, ok := sumMetric(text, "connectd_window_open_windows"); ok {
		w.OpenWindowsPeak = max(w.OpenWindowsPeak, int64(v))
	}
	if v, ok := sumMetric(text, "connectd_window_state_bytes"); ok {
		w.StateBytesPeak = max(w.StateBytesPeak, int64(v))
	}
}

// cleanupWindowed deletes a windowed run's topics (its input and output,
// connectd's <group>-state, Streams' <application.id>-…-changelog), its
// group and the Streams state directory.
func (r *Runner) cleanupWindowed(n names) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	del := []string{n.in, n.out}
	if topics, err := r.kafka.adm.ListTopics(ctx); err == nil {
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, n.group+"-") {
				del = append(del, t)
			}
		}
	}
	_ = r.kafka.deleteTopics(ctx, del...)
	r.kafka.deleteGroup(ctx, n.group)
	_ = os.RemoveAll(r.streamsStateDir(n))
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// windowOutput is one result record as both systems write it.
type windowOutput struct {
	Key         string  `json:"key"`
	WindowStart string  `json:"window_start"`
	WindowEnd   string  `json:"window_end"`
	N           float64 `json:"n"`
	Total       float64 `json:"total"`
}

// parseWindowOutput reads a result's window and aggregates.
func parseWindowOutput(v []byte) (windowID, windowSum, error) {
	var o windowOutput
	if err := json.Unmarshal(v, &o); err != nil {
		return windowID{}, windowSum{}, err
	}
	k, ok := strings.CutPrefix(o.Key, "k-")
	key, err := strconv.Atoi(k)
	if !ok || err != nil || key < 0 || key >= windowKeys {
		return windowID{}, windowSum{}, fmt.Errorf("result key %q", o.Key)
	}
	start, err := time.Parse(time.RFC3339Nano, o.WindowStart)
	if err != nil {
		return windowID{}, windowSum{}, fmt.Errorf("window_start: %w", err)
	}
	end, err := time.Parse(time.RFC3339Nano, o.WindowEnd)
	if err != nil || end.Sub(start) != time.Minute {
		return windowID{}, windowSum{}, fmt.Errorf("window [%s, %s) is not a minute", o.WindowStart, o.WindowEnd)
	}
	return windowID{key: key, start: start.UnixMilli()}, windowSum{n: int64(o.N), total: o.Total}, nil
}

// checkWindowOutput reads topic from the start (read_committed) until want
// results or nothing new for idle, and compares them with wi's windows.
func checkWindowOutput(ctx context.Context, conn []kgo.Opt, topic string, wi *windowInput, want int64, idle time.Duration, w *WindowResult) error {
	cl, err := kgo.NewClient(append(slices.Clip(conn),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	maxTs := wi.snapshotMaxTs()
	seen := map[windowID]bool{}
	last := time.Now()
	var bad error
	for int64(len(seen)) < want && time.Since(last) < idle && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(rec *kgo.Record) {
			last = time.Now()
			w.Results++
			id, got, err := parseWindowOutput(rec.Value)
			e := wi.expect[id]
			switch {
			case err != nil || e == nil || !wi.closedBy(id, maxTs) || got != *e:
				w.Wrong++
				if bad == nil {
					bad = fmt.Errorf("result %s (err %v, want %+v)", rec.Value, err, e)
				}
			case seen[id]:
				w.Duplicates++
			default:
				seen[id] = true
			}
		})
	}
	w.Missing = want - int64(len(seen))
	if bad != nil {
		return fmt.Errorf("%d wrong results, the first: %w", w.Wrong, bad)
	}
	return nil
}

// seenResult is a result the latency watcher fetched.
type seenResult struct {
	id windowID
	at time.Time
}

// windowWatcher consumes the output with read_committed from given offsets
// and notes when each result was fetched.
type windowWatcher struct {
	cl     *kgo.Client
	done   chan struct{}
	cancel context.CancelFunc

	mu   sync.Mutex
	seen []seenResult
	bad  int
}

func watchWindows(conn []kgo.Opt, topic string, from map[int32]int64) (*windowWatcher, error) {
	offs := map[int32]kgo.Offset{}
	for p, o := range from {
		offs[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(append(slices.Clip(conn),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &windowWatcher{cl: cl, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			w.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if id, _, err := parseWindowOutput(r.Value); err == nil {
					w.seen = append(w.seen, seenResult{id: id, at: now})
				} else {
					w.bad++
				}
			})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *windowWatcher) count() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.seen))
}

func (w *windowWatcher) stop() []seenResult {
	w.cancel()
	<-w.done
	w.cl.Close()
	return w.seen
}

// windowLatencyPhase produces live records at LatencyRate for the warm-up
// plus LatencyDuration, with event time advancing so a window closes every
// WindowCloseEvery, and times each window closed after the warm-up
// from its closing record's send to its result's fetch. It returns the
// summary and how many results had no closing record (none should).
func (r *Runner) windowLatencyPhase(ctx context.Context, n names, wi *windowInput, size int) (closeToVisible, inputCommitted *LatencySummary, unmatchedResults int, err error) {
	cl, err := r.kafka.keyedClient()
	if err != nil {
		return nil, nil, 0, err
	}
	from, err := r.kafka.endOffsets(ctx, n.out)
	if err != nil {
		return nil, nil, 0, err
	}
	watcher, err := watchWindows(r.conn, n.out, from)
	if err != nil {
		return nil, nil, 0, err
	}
	before := wi.snapshotMaxTs()
	since := time.Now().Add(latencyWarmUp)
	var (
		pollMu sync.Mutex
		polls  []snapshot
		stop   = make(chan struct{})
		polled = make(chan struct{})
	)
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if f, err := r.kafka.groupFrontier(ctx, n.group, n.in); err == nil {
				pollMu.Lock()
				polls = append(polls, snapshot{at: time.Now(), frontier: f})
				pollMu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Paced like produceAt: a late tick sends a bigger burst.
	const tick = 10 * time.Millisecond
	rate := r.o.LatencyRate
	total := int64(float64(rate) * (latencyWarmUp + r.o.LatencyDuration).Seconds())
	t := time.NewTicker(tick)
	begin := time.Now()
	var buf []byte
	for i := int64(0); i < total && ctx.Err() == nil; {
		due := min(int64(time.Since(begin).Seconds()*float64(rate))+1, total)
		for ; i < due; i++ {
			buf = wi.produce(ctx, cl, n.in, wi.sched.n+i, size, buf, true)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	t.Stop()
	if err := cl.Flush(ctx); err != nil {
		watcher.stop()
		return nil, nil, 0, err
	}
	wi.mu.Lock()
	perr := wi.firstErr
	wi.mu.Unlock()
	if perr != nil {
		watcher.stop()
		return nil, nil, 0, fmt.Errorf("live records: %w", perr)
	}

	// The windows the live records closed, and when each closed: at the
	// send of the first record of its key's partition at or past its end.
	after := wi.snapshotMaxTs()
	for _, recs := range wi.live {
		sort.Slice(recs, func(i, j int) bool { return recs[i].offset < recs[j].offset })
	}
	closing := func(id windowID) (liveRecord, bool) {
		recs := wi.live[wi.keyPart[id.key]]
		end := id.start + windowMs
		j := sort.Search(len(recs), func(j int) bool { return recs[j].ts >= end })
		if j == len(recs) {
			return liveRecord{}, false
		}
		return recs[j], true
	}
	want := map[windowID]bool{}
	for id := range wi.expect {
		if !wi.closedBy(id, before) && wi.closedBy(id, after) {
			want[id] = true
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil && watcher.count() < int64(len(want)) {
		time.Sleep(50 * time.Millisecond)
	}
	seen := watcher.stop()
	close(stop)
	<-polled

	var lat []time.Duration
	unmatched := 0
	got := map[windowID]bool{}
	closers := map[int32][]produced{} // one per (partition, window end)
	closerSeen := map[liveRecord]bool{}
	for _, s := range seen {
		if got[s.id] || !want[s.id] {
			continue // a duplicate or a stray: checkWindowOutput counts it
		}
		got[s.id] = true
		c, ok := closing(s.id)
		switch {
		case !ok:
			unmatched++
		case !c.stamp.Before(since):
			lat = append(lat, s.at.Sub(c.stamp))
			if !closerSeen[c] {
				closerSeen[c] = true
				p := wi.keyPart[s.id.key]
				closers[p] = append(closers[p], produced{partition: p, offset: c.offset, ts: c.stamp})
			}
		}
	}
	for _, rs := range closers {
		sort.Slice(rs, func(i, j int) bool { return rs[i].offset < rs[j].offset })
	}
	committed, _ := frontierLatencies(closers, polls)
	cs := Summarize(committed)
	cs.PollResolution = 5 * time.Millisecond
	dropped := 0
	for id := range want {
		if c, ok := closing(id); ok && !c.stamp.Before(since) && !got[id] {
			dropped++
		}
	}
	sm := Summarize(lat)
	sm.Dropped = dropped
	sm.MeasuredAtRecordsSec = float64(rate)
	return &sm, &cs, unmatched, nil
}
