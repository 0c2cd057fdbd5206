package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// StateStore reads back the state records a Kafka sink committed
// (connector.StateStore): the state of input partition (T, P) in namespace
// ns is the records of partition P mod n of StateTopic(ns) whose key starts
// with "T/P/", as Converter and Partitioner write them.
//
// It is safe for concurrent use; each LoadState reads on its own.
type StateStore struct {
	cl  *kgo.Client
	adm *kadm.Client
	dec kgo.Decompressor
}

var _ connector.StateStore = (*StateStore)(nil)

// Fetch sizes: large, so that a restore of a million keys takes a handful
// of round trips (the broker caps a response at its fetch.max.bytes,
// 55 MiB by default).
const (
	stateFetchMaxBytes = 64 << 20
	stateFetchMaxWait  = 500 * time.Millisecond
	stateRetryBackoff  = 100 * time.Millisecond
	// stateSlabBytes is the size of the chunks restored values are copied
	// into: one allocation per chunk, not per value.
	stateSlabBytes = 1 << 20
)

// NewStateStore returns a store reading with a client of its own; opts
// carry the seed brokers and connection options (TLS, SASL), no consumer
// options: the store fetches with requests of its own.
func NewStateStore(opts []kgo.Opt) (*StateStore, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &StateStore{cl: cl, adm: kadm.NewClient(cl), dec: kgo.DefaultDecompressor()}, nil
}

// Close closes the store's client.
func (s *StateStore) Close() { s.cl.Close() }

// LoadState returns the committed state of input partition tp in
// namespace ns: later records win, a tombstone deletes, records of aborted
// transactions are never seen (read_committed).
//
// It reads from the partition's start to the high watermark it lists when
// it begins, and stops when the fetch position reaches it, not when it
// sees a record at it: a transactional partition ends in a marker, which
// is no record, and compaction may remove the last records themselves.
// A read_committed fetch never passes the last stable offset, so a
// transaction open when LoadState begins (another input partition's, whose
// state shares the partition) must end before it returns: stopping at
// that last stable offset instead would miss state this partition's owner
// committed after the open transaction began. The wait is bounded by the
// open transaction's timeout, and by ctx.
func (s *StateStore) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	r := stateRead{store: s, topic: StateTopic(ns)}
	if err := r.locate(ctx, tp.Partition); err != nil {
		return nil, err
	}
	start, end, err := r.bounds(ctx)
	if err != nil {
		return nil, err
	}
	f := stateFold{prefix: appendStatePrefix(nil, tp.Topic, tp.Partition), state: map[string][]byte{}}
	if err := r.read(ctx, start, end, &f); err != nil {
		return nil, err
	}
	return f.state, nil
}

// stateRead is one LoadState's read of one state partition.
type stateRead struct {
	store     *StateStore
	topic     string
	topicID   [16]byte
	partition int32 // of the state topic
	leader    int32
	lso       int64 // last stable offset of the last fetch, for errors
}

// locate finds the state partition of input partition p and its leader.
func (r *stateRead) locate(ctx context.Context, input int32) error {
	md, err := r.store.adm.Metadata(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("state topic %s: metadata: %w", r.topic, err)
	}
	td, ok := md.Topics[r.topic]
	if !ok {
		return fmt.Errorf("state topic %s: not in metadata", r.topic)
	}
	if td.Err != nil {
		return fmt.Errorf("state topic %s: %w", r.topic, td.Err)
	}
	if len(td.Partitions) == 0 {
		return fmt.Errorf("state topic %s: no partitions", r.topic)
	}
	r.topicID = td.ID
	r.partition = int32(statePartition(input, len(td.Partitions)))
	pd, ok := td.Partitions[r.partition]
	if !ok {
		return fmt.Errorf("state topic %s: partition %d not in metadata", r.topic, r.partition)
	}
	if pd.Err != nil {
		return fmt.Errorf("state topic %s partition %d: %w", r.topic, r.partition, pd.Err)
	}
	r.leader = pd.Leader
	return nil
}

// bounds lists the partition's start offset and high watermark.
func (r *stateRead) bounds(ctx context.Context) (start, end int64, err error) {
	list := func(fn func(context.Context, ...string) (kadm.ListedOffsets, error), what string) (int64, error) {
		los, err := fn(ctx, r.topic)
		if err != nil {
			return 0, fmt.Errorf("state topic %s: list %s offsets: %w", r.topic, what, err)
		}
		lo, ok := los.Lookup(r.topic, r.partition)
		if !ok {
			return 0, fmt.Errorf("state topic %s partition %d: no %s offset listed", r.topic, r.partition, what)
		}
		if lo.Err != nil {
			return 0, fmt.Errorf("state topic %s partition %d: list %s offset: %w", r.topic, r.partition, what, lo.Err)
		}
		return lo.Offset, nil
	}
	if start, err = list(r.store.adm.ListStartOffsets, "start"); err != nil {
		return 0, 0, err
	}
	if end, err = list(r.store.adm.ListEndOffsets, "end"); err != nil {
		return 0, 0, err
	}
	return start, end, nil
}

// read fetches [start, end) into f.
func (r *stateRead) read(ctx context.Context, start, end int64, f *stateFold) error {
	pos := start
	stopped := func() error {
		return fmt.Errorf("state topic %s partition %d: stopped at offset %d of %d (last stable offset %d; below the end, it is held by a transaction still open): %w",
			r.topic, r.partition, pos, end, r.lso, ctx.Err())
	}
	for pos < end {
		next, err := r.fetch(ctx, pos, f)
		switch {
		case err == nil:
			pos = next
			continue
		case ctx.Err() != nil:
			return stopped()
		case !kerr.IsRetriable(err) && !errors.Is(err, errRefetch):
			return fmt.Errorf("state topic %s partition %d: fetch at offset %d: %w", r.topic, r.partition, pos, err)
		}
		// A moved leader, a broker restarting: look the leader up again.
		select {
		case <-ctx.Done():
			return stopped()
		case <-time.After(stateRetryBackoff):
		}
		r.locateAgain(ctx)
	}
	return nil
}

// errRefetch marks a failed request that a new leader lookup may cure.
var errRefetch = errors.New("request failed")

// locateAgain looks up the partition's leader again after a failed fetch;
// if that fails too, the next fetch tries the old leader and fails again.
func (r *stateRead) locateAgain(ctx context.Context) {
	md, err := r.store.adm.Metadata(ctx, r.topic)
	if err != nil {
		return
	}
	if td, ok := md.Topics[r.topic]; ok && td.Err == nil {
		if pd, ok := td.Partitions[r.partition]; ok && pd.Err == nil {
			r.leader, r.topicID = pd.Leader, td.ID
		}
	}
}

// fetch reads from pos once and returns the position after what the
// response held: past every batch it processed, the records returned,
// the aborted ones it dropped and the transaction markers alike.
func (r *stateRead) fetch(ctx context.Context, pos int64, f *stateFold) (int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = int32(stateFetchMaxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = stateFetchMaxBytes
	req.IsolationLevel = 1 // read_committed
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = r.topic, r.topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = r.partition
	rp.FetchOffset = pos
	rp.PartitionMaxBytes = stateFetchMaxBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	kresp, err := r.store.cl.Broker(int(r.leader)).Request(ctx, req)
	if err != nil {
		return pos, fmt.Errorf("%w: %w", errRefetch, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return pos, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return pos, fmt.Errorf("%w: fetch response has %d topics, want 1 with 1 partition", errRefetch, len(resp.Topics))
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         pos,
		IsolationLevel: kgo.ReadCommitted(),
		Topic:          r.topic,
		Partition:      r.partition,
	}, &resp.Topics[0].Partitions[0], r.store.dec, nil)
	r.lso = fp.LastStableOffset
	for _, rec := range fp.Records {
		f.apply(rec.Key, rec.Value)
	}
	if fp.Err != nil && next == pos {
		return pos, fp.Err
	}
	return next, nil
}

// stateFold folds state records into the state of one input partition.
type stateFold struct {
	prefix []byte // "T/P/"
	state  map[string][]byte
	slab   []byte // values are copied here: the fetch buffers can go
}

// apply folds one record: another input partition's records are skipped,
// a nil value deletes.
func (f *stateFold) apply(key, value []byte) {
	if !bytes.HasPrefix(key, f.prefix) {
		return
	}
	k := key[len(f.prefix):]
	if value == nil {
		delete(f.state, string(k))
		return
	}
	f.state[string(k)] = f.copy(value)
}

// copy returns v copied into the slab, capped so that appending to it
// cannot reach the next value. Large values get their own array.
func (f *stateFold) copy(v []byte) []byte {
	if len(v) > stateSlabBytes/8 {
		return append(make([]byte, 0, len(v)), v...)
	}
	if f.slab == nil || cap(f.slab)-len(f.slab) < len(v) {
		f.slab = make([]byte, 0, stateSlabBytes)
	}
	n := len(f.slab)
	f.slab = append(f.slab, v...)
	return f.slab[n:len(f.slab):len(f.slab)]
}
