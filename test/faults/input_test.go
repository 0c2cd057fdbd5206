package faults

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// inputSpec is how a scenario's input is written.
type inputSpec struct {
	// abortEvery: every abortEvery-th input transaction aborts (its events
	// are "ab-<i>"); 0 never.
	abortEvery int
	// poisonEvery: every poisonEvery-th committed event carries a value
	// that is not JSON, which the set transform rejects and errors.tolerance
	// all sends to the dead-letter queue; 0 never.
	poisonEvery int
	// preload is the fraction of the events written before connectd
	// starts; the rest is streamed over stream.
	preload float64
	stream  time.Duration
}

// txnSize is the number of events per input transaction. A commit takes
// hundreds of milliseconds on the three-broker cluster of a loaded 2-core
// machine (markers replicated to min ISR), so transactions are large.
const txnSize = 500

// producer writes the input through a transactional producer, streaming
// it while the faults run, and remembers where each committed event landed
// so progress can be measured in events from a checkpoint.
type producer struct {
	t     *testing.T
	e     *env
	topic string
	txnID string
	want  int
	spec  inputSpec

	mu        sync.Mutex
	offsets   map[int32][]int64 // offsets of committed events, ascending, per partition
	committed int
	aborted   int
	uncertain int // events of transactions whose commit outcome was not known
	txns      int
	err       error
	cancel    context.CancelFunc
	done      chan struct{}
	// go_ opens the stream after the preload: the scenario releases it
	// once its connectd instances run, so the stream's pace, not their
	// start-up, decides when the faults meet work in flight.
	go_ chan struct{}
	// enough ends the stream once want events are committed; until it is
	// closed the stream goes on at the same pace past want, so a fault
	// schedule that outlasts the planned input still meets work in flight.
	enough chan struct{}
}

func startProducer(t *testing.T, e *env, topic, txnID string, want int, spec inputSpec) *producer {
	p := &producer{t: t, e: e, topic: topic, txnID: txnID, want: want, spec: spec,
		offsets: map[int32][]int64{}, done: make(chan struct{}), go_: make(chan struct{}),
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
	preload := int(float64(p.want) * p.spec.preload)
	rate := float64(p.want-preload) / max(p.spec.stream.Seconds(), 0.1)
	var start time.Time
	seq := 0
	failures := 0
	for p.count() < p.want || !closed(p.enough) {
		if ctx.Err() != nil {
			return
		}
		n := p.count()
		if n >= preload {
			if start.IsZero() {
				select {
				case <-ctx.Done():
					return
				case <-p.go_:
				}
				start = time.Now()
			}
			// Pace the stream: event n is due at start + (n-preload)/rate.
			due := start.Add(time.Duration(float64(n-preload) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		p.mu.Lock()
		p.txns++
		abort := p.spec.abortEvery > 0 && p.txns%p.spec.abortEvery == 0
		p.mu.Unlock()
		recs := make([]*kgo.Record, txnSize)
		for j := range recs {
			i := seq + j
			id := EventID(i)
			value := fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i%1000)
			if abort {
				id = AbortedID(i)
			} else if p.spec.poisonEvery > 0 && i%p.spec.poisonEvery == 0 {
				value = fmt.Appendf(nil, "poison-%d", i)
			}
			recs[j] = &kgo.Record{Key: []byte(Key(i)), Value: value,
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}}
		}
		// Every attempt uses fresh sequence numbers: the events of a
		// transaction that failed are aborted (or, if its commit outcome
		// was unknown, perhaps committed) and never reused.
		seq += txnSize
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

// stream lets the producer write the rest of the input.
func (p *producer) stream() { close(p.go_) }

// finish lets the stream end once want events are committed.
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
		p.t.Fatalf("input producer: %d of %d events committed after %v", p.count(), p.want, within)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		p.t.Fatal(p.err)
	}
}

// inputBounds reads the finished input with read_committed and returns,
// per partition, where a checkpoint must be at quiesce (Bound), and the
// number of committed events.
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
func inputBounds(t *testing.T, e *env, topic string) (map[connector.TopicPartition]Bound, int) {
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
			return read.bounds, read.events
		}
		t.Logf("reading the input to its end, attempt %d: partitions not read to their end (partition: last offset read) %v; end offsets %v", attempt, read.left, ends)
	}
	t.Fatalf("reading the input to its end: after 4 attempts, partitions not read to their end (partition: last offset read) %v, partitions read past it (partition: offset) %v; end offsets %v", missing, beyond, ends)
	return nil, 0
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
	left   map[int32]int64 // partitions not read to their end: last offset read, -1 for none
	beyond map[int32]int64 // partitions with a record at or past their end: its offset
}

// readInput reads topic with read_committed from its start to ends within
// timeout.
func readInput(t *testing.T, e *env, topic string, ends map[int32]int64, timeout time.Duration) inputRead {
	t.Helper()
	ctx, cancel := ctxFor(timeout)
	defer cancel()
	read := inputRead{bounds: map[connector.TopicPartition]Bound{}, left: map[int32]int64{}, beyond: map[int32]int64{}}
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
