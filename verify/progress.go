package verify

import (
	"context"
	"sync"

	"github.com/connectd/connectd/connector"
)

// Progress is told how far a check has read: the records (offsets passed,
// transaction markers and records of aborted transactions included) read
// from the Kafka logs it reads — the input below the checkpoint, the
// output, the input partitions without a checkpoint — of the total it
// knows so far. The total grows as the check reaches each log, and read
// reaches it when the check is done reading. A generator's input counts
// its events. Calls come from one goroutine at a time.
type Progress func(read, total int64)

// meter adds up a check's reading for Options.Progress. It travels in the
// context, so every reader of the check (readBelowUntil, the generator's
// recomputation) reports to it without each signature carrying it, and a
// check made of several (a fan-out's sinks) adds up into one.
type meter struct {
	mu          sync.Mutex
	read, total int64
	report      Progress
}

type meterKey struct{}

// withMeter returns ctx carrying a meter reporting to p, unless p is nil
// or ctx carries one already.
func withMeter(ctx context.Context, p Progress) context.Context {
	if p == nil || meterFrom(ctx) != nil {
		return ctx
	}
	return context.WithValue(ctx, meterKey{}, &meter{report: p})
}

// meterFrom is ctx's meter, or nil: a nil meter ignores everything.
func meterFrom(ctx context.Context) *meter {
	m, _ := ctx.Value(meterKey{}).(*meter)
	return m
}

// add counts records more to read (expect) and records read.
func (m *meter) add(expect, read int64) {
	if m == nil || (expect == 0 && read == 0) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total += expect
	m.read += read
	m.report(m.read, m.total)
}

// offsetMeter counts a read of partitions up to bounds in offsets: each
// record moves its partition's count to its offset + 1, which also counts
// offsets the log no longer holds (deleted, compacted) or a read_committed
// reader never sees (markers, aborted records) as read; a partition that
// is done counts as read to its bound.
type offsetMeter struct {
	m      *meter
	bounds connector.Checkpoint
	at     map[connector.TopicPartition]int64
	read   int64 // since the last flush
}

// newOffsetMeter returns nil, which counts nothing, for a nil meter.
func newOffsetMeter(m *meter, bounds connector.Checkpoint) *offsetMeter {
	if m == nil {
		return nil
	}
	om := &offsetMeter{m: m, bounds: bounds.Clone(), at: map[connector.TopicPartition]int64{}}
	var total int64
	for _, end := range bounds {
		total += max(end, 0)
	}
	m.add(total, 0)
	return om
}

// reached notes that tp has been read up to offset next (exclusive).
func (om *offsetMeter) reached(tp connector.TopicPartition, next int64) {
	if om == nil {
		return
	}
	next = min(next, om.bounds[tp])
	if next > om.at[tp] {
		om.read += next - om.at[tp]
		om.at[tp] = next
	}
}

// flush reports what was read since the last flush.
func (om *offsetMeter) flush() {
	if om == nil {
		return
	}
	om.m.add(0, om.read)
	om.read = 0
}
