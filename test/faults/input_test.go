package faults

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// inputSpec is how a scenario's input is written: a backlog before
// connectd starts, then a live stream while the faults run.
type inputSpec struct {
	// abortEvery: every abortEvery-th input transaction aborts (its events
	// are "ab-<i>"); 0 never.
	abortEvery int
	// poisonEvery: every poisonEvery-th committed event carries a value
	// that is not JSON, which the set transform rejects and errors.tolerance
	// all sends to the dead-letter queue; 0 never.
	poisonEvery int
}

// The input's shape. The backlog (the scenario's events) is written before
// connectd starts, so every connector drains at full speed and a fault
// meets full batches; while the faults run a live producer adds liveRate
// events a second, and tops the input up at once whenever the fastest
// connector gets within lowWater of its end (so the at_least_once
// connectors, which drain fastest, still meet faults with full batches
// after the first ones), as long as the slowest connector is less than
// maxLag behind (so the drain after the faults stays bounded).
const (
	// backlogTxn events per transaction in the backlog: few, large
	// commits (a commit takes hundreds of milliseconds on the three-broker
	// cluster of a loaded 2-core machine, markers replicated to min ISR).
	backlogTxn = 2000
	// liveTxn events per transaction of the live stream.
	liveTxn = 500
	// liveRate is the live stream's pace, events per second.
	liveRate = 2000
)

// producer writes the input through a transactional producer and
// remembers where each committed event landed, so progress can be
// measured in events from a checkpoint.
type producer struct {
	t       *testing.T
	e       *env
	topic   string
	txnID   string
	backlog int
	spec    inputSpec
	// lowWater, maxLag and lag: while the stream runs, the producer
	// writes at once whenever the fastest connector's lag (events committed
	// to the input and not yet by the connector) is below lowWater and
	// the slowest connector's is below maxLag.
	lowWater, maxLag int
	lag              func() (fastest, slowest int)

	mu        sync.Mutex
	offsets   map[int32][]int64           // offsets of committed events, ascending, per partition
	origins   map[string]connector.Origin // where each committed event is in the input
	committed int
	aborted   int
	uncertain int // events of transactions whose commit outcome was not known
	txns      int
	topUps    int // live transactions written at once to keep the backlog
	burstLeft int // events still to write at once for burst, whatever the lag
	err       error
	cancel    context.CancelFunc
	done      chan struct{}
	// go_ opens the live stream after the backlog: the scenario releases
	// it once its connectd instances run.
	go_ chan struct{}
	// enough ends the stream: the fault schedule is over.
	enough chan struct{}
}

func startProducer(t *testing.T, e *env, topic, txnID string, backlog, lowWater, maxLag int,
	lag func() (fastest, slowest int), spec inputSpec) *producer {
	p := &producer{t: t, e: e, topic: topic, txnID: txnID, backlog: backlog, spec: spec,
		lowWater: lowWater, maxLag: maxLag, lag: lag,
		offsets: map[int32][]int64{}, origins: map[string]connector.Origin{}, done: make(chan struct{}), go_: make(chan struct{}),
		enough: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

func (p *producer) newClient() (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(p.e.brokers...), kgo.TransactionalID(p.txnID),
		kgo.DefaultProduceTopic(p.topic), kgo.UnknownTopicRetries(-1),
		kgo.TransactionTimeout(30*time.Second), kgo.RequestTimeoutOverhead(10*time.Second),
		// A transaction's first produce meets CONCURRENT_TRANSACTIONS while
		// the previous commit's markers are written; franz-go retries it
		// after a metadata refresh, which by default waits up to 5s.
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
}

func (p *producer) run(ctx context.Context) {
	defer close(p.done)
	cl, err := p.newClient()
	if err != nil {
		p.fail(err)
		return
	}
	defer func() { cl.Close() }()
	var liveStart time.Time
	live := 0 // events attempted since the stream opened
	seq := 0
	failures := 0
	for {
		if ctx.Err() != nil {
			return
		}
		size := backlogTxn
		if p.count() >= p.backlog {
			if liveStart.IsZero() {
				select {
				case <-ctx.Done():
					return
				case <-p.go_:
				}
				liveStart = time.Now()
			}
			if closed(p.enough) {
				return
			}
			size = liveTxn
			if p.takeBurst() {
				size = backlogTxn
			} else if fastest, slowest := p.lag(); fastest < p.lowWater && slowest < p.maxLag {
				// Topping up: as fast as the producer goes, in backlog-sized
				// transactions.
				size = backlogTxn
				p.mu.Lock()
				p.topUps++
				p.mu.Unlock()
			} else if wait := time.Until(liveStart.Add(time.Duration(float64(live) / liveRate * float64(time.Second)))); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(wait, 200*time.Millisecond)):
				}
				continue
			}
			live += size
		}
		p.mu.Lock()
		p.txns++
		abort := p.spec.abortEvery > 0 && p.txns%p.spec.abortEvery == 0
		p.mu.Unlock()
		recs := make([]*kgo.Record, size)
		for j := range recs {
			i := seq + j
			id := EventID(i)
			value := fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i%1000)
			if abort {
				id = AbortedID(i)
			} else if p.spec.poisonEvery > 0 && i%p.spec.poisonEvery == 0 {
				value = fmt.Appendf(nil, "%s%d", poisonPrefix, i)
			}
			recs[j] = &kgo.Record{Key: []byte(Key(i)), Value: value,
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}}
		}
		// Every attempt uses fresh sequence numbers: the events of a
		// transaction that failed are aborted (or, if its commit outcome
		// was unknown, perhaps committed) and never reused.
		seq += size
		err := p.transact(ctx, cl, recs, abort)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures > 50 {
			p.fail(fmt.Errorf("input producer: 50 transactions failed in a row, last: %w", err))
			return
		}
		// A fresh client re-initialises the producer ID, which aborts
		// whatever the failed transaction left open.
		cl.Close()
		time.Sleep(200 * time.Millisecond)
		if cl, err = p.newClient(); err != nil {
			p.fail(err)
			return
		}
	}
}

// poisonPrefix starts the value of a poison event (not JSON).
const poisonPrefix = "poison-"

func (p *producer) transact(ctx context.Context, cl *kgo.Client, recs []*kgo.Record, abort bool) error {
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	if err := cl.ProduceSync(tctx, recs...).FirstErr(); err != nil {
		_ = cl.EndTransaction(tctx, kgo.TryAbort)
		return fmt.Errorf("produce: %w", err)
	}
	if abort {
		if err := cl.EndTransaction(tctx, kgo.TryAbort); err != nil {
			return fmt.Errorf("abort: %w", err)
		}
		p.mu.Lock()
		p.aborted += len(recs)
		p.mu.Unlock()
		return nil
	}
	if err := cl.EndTransaction(tctx, kgo.TryCommit); err != nil {
		p.mu.Lock()
		p.uncertain += len(recs)
		p.mu.Unlock()
		return fmt.Errorf("commit: %w", err)
	}
	p.mu.Lock()
	for _, r := range recs {
		p.offsets[r.Partition] = append(p.offsets[r.Partition], r.Offset)
		p.origins[eventID(r)] = connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	}
	p.committed += len(recs)
	p.mu.Unlock()
	return nil
}

func (p *producer) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// count is the number of events known committed.
func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed
}

// below is the number of committed events below cp: a connector's
// progress in events.
func (p *producer) below(cp connector.Checkpoint) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for part, offs := range p.offsets {
		next, ok := cp[connector.TopicPartition{Topic: p.topic, Partition: part}]
		if !ok {
			continue
		}
		n += sort.Search(len(offs), func(i int) bool { return offs[i] >= next })
	}
	return n
}

// originOf is where committed event id is in the input.
func (p *producer) originOf(id string) (connector.Origin, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.origins[id]
	return o, ok
}

// stream opens the live stream.
func (p *producer) stream() { close(p.go_) }

// burst asks the live stream for n more events at once, in backlog-sized
// transactions, whatever the connectors' lag: work a fault is about to
// meet (loadUp).
func (p *producer) burst(n int) {
	p.mu.Lock()
	p.burstLeft += n
	p.mu.Unlock()
}

// takeBurst reports whether the next transaction belongs to a burst, and
// counts it as one.
func (p *producer) takeBurst() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.burstLeft <= 0 {
		return false
	}
	p.burstLeft -= backlogTxn
	p.topUps++
	return true
}

// finish ends the live stream.
func (p *producer) finish() { close(p.enough) }

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// wait waits for the producer to finish and fails on its error.
func (p *producer) wait(within time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("input producer: not done after %v (%d events committed)", within, p.count())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		p.t.Fatal(p.err)
	}
}

// inputBounds reads the finished input with read_committed and returns,
// per partition, where a checkpoint must be at quiesce (Bound), the number
// of committed events and the IDs of the committed poison events.
//
// The end offsets are read first (the high watermarks, once every
// partition's last stable offset has caught up with them), then the input
// is read up to them. Should the read find records at or past those ends,
// the input grew after they were read: CI saw it once after a rolling
// broker restart, every partition stopped one short of a record the
// reader could not see (the data of a transaction that was open but did
// not hold the last stable offset back) until the coordinator's timeout
// abort appended its marker. The ends are then read again and the whole
// input re-read, so the bounds describe the input as it finally is.
func inputBounds(t *testing.T, e *env, topic string) (map[connector.TopicPartition]Bound, int, []string, eventTimes) {
	t.Helper()
	var ends, missing, beyond map[int32]int64
	for attempt := 1; attempt <= 4; attempt++ {
		ends = stableEnds(t, e, topic)
		// One fresh client per attempt: the test reaches the brokers
		// through the fault proxies, and a read that stalls (seen once
		// after scenario 6's partitions) gets new connections and
		// metadata on the next try.
		read := readInput(t, e, topic, ends, 90*time.Second)
		missing, beyond = read.left, read.beyond
		if len(read.beyond) > 0 {
			t.Logf("reading the input to its end, attempt %d: the input grew after its end offsets %v were read (partition: offset found at or past the end) %v; reading it again", attempt, ends, read.beyond)
			continue
		}
		if len(read.left) == 0 {
			return read.bounds, read.events, read.poison, read.seqs
		}
		t.Logf("reading the input to its end, attempt %d: partitions not read to their end (partition: last offset read) %v; end offsets %v", attempt, read.left, ends)
	}
	t.Fatalf("reading the input to its end: after 4 attempts, partitions not read to their end (partition: last offset read) %v, partitions read past it (partition: offset) %v; end offsets %v", missing, beyond, ends)
	return nil, 0, nil, nil
}

// stableEnds waits until no input transaction is open (every partition's
// last stable offset equals its high watermark) and returns the high
// watermarks.
func stableEnds(t *testing.T, e *env, topic string) map[int32]int64 {
	t.Helper()
	var ends map[int32]int64
	waitFor(t, 2*time.Minute, "the input's end offsets", func() bool {
		lctx, lcancel := ctxFor(10 * time.Second)
		defer lcancel()
		hw, err := e.adm.ListEndOffsets(lctx, topic)
		if err != nil {
			return false
		}
		lso, err := e.adm.ListCommittedOffsets(lctx, topic)
		if err != nil {
			return false
		}
		ends = map[int32]int64{}
		stable := true
		hw.Each(func(o kadm.ListedOffset) {
			ends[o.Partition] = o.Offset
			if l, ok := lso.Lookup(topic, o.Partition); !ok || l.Offset < o.Offset {
				stable = false // an input transaction is still open
			}
		})
		return stable && len(ends) > 0
	})
	return ends
}

// inputRead is what one read of the input found.
type inputRead struct {
	bounds map[connector.TopicPartition]Bound
	events int             // committed events read
	poison []string        // IDs of the committed poison events
	seqs   eventTimes      // sequence numbers of the committed JSON events, per partition
	left   map[int32]int64 // partitions not read to their end: last offset read, -1 for none
	beyond map[int32]int64 // partitions with a record at or past their end: its offset
}

// readInput reads topic with read_committed from its start to ends within
// timeout.
func readInput(t *testing.T, e *env, topic string, ends map[int32]int64, timeout time.Duration) inputRead {
	t.Helper()
	ctx, cancel := ctxFor(timeout)
	defer cancel()
	read := inputRead{bounds: map[connector.TopicPartition]Bound{}, left: map[int32]int64{}, beyond: map[int32]int64{},
		seqs: eventTimes{}}
	parts := map[int32]kgo.Offset{}
	for part, end := range ends {
		read.bounds[connector.TopicPartition{Topic: topic, Partition: part}] = Bound{End: end}
		if end > 0 {
			parts[part] = kgo.NewOffset().AtStart()
			read.left[part] = -1
		}
	}
	cl := testenv.KafkaClient(t, e.brokers, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	defer cl.Close()
	for len(read.left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return read
		}
		fs.EachRecord(func(r *kgo.Record) {
			tp := connector.TopicPartition{Topic: topic, Partition: r.Partition}
			b := read.bounds[tp]
			if r.Offset >= b.End {
				if _, seen := read.beyond[r.Partition]; !seen {
					read.beyond[r.Partition] = r.Offset
				}
				delete(read.left, r.Partition)
				return
			}
			if !r.Attrs.IsControl() {
				read.events++
				if bytes.HasPrefix(r.Value, []byte(poisonPrefix)) {
					read.poison = append(read.poison, eventID(r))
				} else if i := seq(eventID(r)); i >= 0 {
					read.seqs[r.Partition] = append(read.seqs[r.Partition], i)
				}
				b.Low = r.Offset + 1
				read.bounds[tp] = b
			}
			if _, open := read.left[r.Partition]; open {
				read.left[r.Partition] = r.Offset
			}
			if r.Offset == b.End-1 {
				delete(read.left, r.Partition)
			}
		})
	}
	return read
}

// eventID is a record's event-id header.
func eventID(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "event-id" {
			return string(h.Value)
		}
	}
	return ""
}

// eventTimes are the sequence numbers i of the committed JSON input events
// (value.i), per input partition, in offset order: what a windowed
// connector aggregates (poison events never reach its window stage).
type eventTimes map[int32][]int

// closedWindows counts the (key, window) pairs the input closes for the
// windowed connectors (windowConfig), computed here from the input alone
// rather than by the verify oracle: per partition the watermark is the
// highest event time i*windowTick less windowOOO, and a tumbling window
// [s, s+windowSize) of a key closes once its end is at or below it. Every
// key lives in one partition (the producer partitions by key), so the
// pairs of different partitions never coincide.
func (ts eventTimes) closedWindows() int {
	n := 0
	for p := range ts {
		n += len(ts.closed(p))
	}
	return n
}

// closed returns the (key index, window start) pairs partition p closes.
func (ts eventTimes) closed(p int32) map[[2]int64]bool {
	is := ts[p]
	seen := map[[2]int64]bool{}
	if len(is) == 0 {
		return seen
	}
	wm := int64(slices.Max(is))*windowTick - windowOOO
	for _, i := range is {
		start := int64(i) * windowTick / windowSize * windowSize
		if start+windowSize <= wm {
			seen[[2]int64{int64(i % Keys), start}] = true
		}
	}
	return seen
}

// missingWindows describes, per input partition, the closed windows whose
// result IDs (<connector>/k-<key>/<start>) are not among ids: where a
// failing windowed cell lost results, for the post-mortem.
func (ts eventTimes) missingWindows(connector string, ids []string) string {
	have := map[string]bool{}
	for _, id := range ids {
		have[id] = true
	}
	parts := slices.Sorted(maps.Keys(ts))
	var out []string
	for _, p := range parts {
		n, lo, hi := 0, int64(-1), int64(-1)
		for w := range ts.closed(p) {
			if have[fmt.Sprintf("%s/k-%d/%d", connector, w[0], w[1])] {
				continue
			}
			n++
			if lo < 0 || w[1] < lo {
				lo = w[1]
			}
			hi = max(hi, w[1])
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("input partition %d: %d of %d windows missing, starts %d..%d ms", p, n, len(ts.closed(p)), lo, hi))
		}
	}
	return strings.Join(out, "; ")
}
