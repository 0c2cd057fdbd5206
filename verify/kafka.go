package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/source/generator"
	"github.com/connectd/connectd/txn"
)

// Options say which connector to check and where its Kafka is.
type Options struct {
	Spec         *pipeline.Spec
	Brokers      []string
	OffsetsTopic string    // default txn.DefaultOffsetsTopic
	ClientOpts   []kgo.Opt // extra client options
	// Stopped says the pipeline is stopped, or quiet (drained, no batch
	// open): output whose origin lies beyond the checkpoint then counts as
	// unexpected instead of being left out as a later batch's, and an
	// input partition holding records without a checkpoint makes the
	// report unclean instead of being lag. Tests set it after their final
	// drain; on a running pipeline it would report the batches committed
	// since the checkpoint was read.
	Stopped bool
	// Progress, if set, is told how far the check has read (see
	// Progress).
	Progress Progress

	// foreign says an output belongs to the other stage of a
	// repartitioned connector (see runStages), which writes to the same
	// dead-letter topic: it is left out of this stage's check. nil: none.
	foreign func(connector.Origin) bool
}

// Run checks a connector writing to Kafka, live or stopped:
//
//  1. read the connector's committed checkpoint C (its group's offsets, read
//     stable, or its record in the offsets topic);
//  2. recompute the expected outputs from the input below C with the same
//     Processor the connector runs (event IDs, transforms, dead-letter
//     routing), reading a Kafka input with read_committed;
//  3. read every output topic with read_committed to its last stable offset,
//     keeping only records whose origin header lies below C;
//  4. list the input topics' partitions and report those that hold records
//     but are absent from C (Report.UncheckedPartitions): lag on a running
//     pipeline, a failure with Options.Stopped.
//
// Because an exactly-once commit makes output and checkpoint visible
// together, the output of everything below C is visible once C is, and
// output of later batches is recognised by its origin and left out; so the
// answer is exact on a running pipeline too. What step 3 leaves out is
// also where a duplicate with a wrong origin, or output orphaned by a
// checkpoint moved back, would hide: with Options.Stopped, when no later
// batch can exist, it counts as unexpected (Report.BeyondCheckpoint).
//
// A connector with a window stage is checked by the batch oracle instead
// (runWindowed): its output is not a function of each record alone.
func Run(ctx context.Context, o Options) (Report, error) {
	ctx = withMeter(ctx, o.Progress)
	rep, err := run(ctx, o)
	rep.Stopped = o.Stopped
	return rep, err
}

func run(ctx context.Context, o Options) (Report, error) {
	if o.OffsetsTopic == "" {
		o.OffsetsTopic = txn.DefaultOffsetsTopic
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.ClientOpts...)
	if o.Spec.Fanout() {
		return runFanout(ctx, o)
	}
	if o.Spec.Repartitions() {
		return runStages(ctx, o)
	}
	if o.Spec.Processor.Window() != nil {
		return runWindowed(ctx, o, base) // the batch oracle
	}
	if s := o.Spec.Sinks; len(s) == 1 && s[0].Probe != nil {
		return runProbe(ctx, o, base, s[0].Sink, s[0].Config)
	}
	cp, err := checkpoint(ctx, o, base)
	if err != nil {
		return Report{}, err
	}
	spec := o.Spec
	expected, topics, err := expectedOutputs(ctx, o, base, cp, func(r *connector.Record) string {
		if r.Topic != "" {
			return r.Topic
		}
		return spec.KafkaSink.Topic
	})
	if err != nil {
		return Report{}, err
	}
	topics[spec.KafkaSink.Topic] = true
	if dlq := spec.DLQTopic(); dlq != "" {
		topics[dlq] = true
	}
	actual, beyond, err := actualOutputs(ctx, base, topics, cp, o.Stopped, o.foreign)
	if err != nil {
		return Report{}, err
	}
	rep := Compare(expected, actual)
	rep.addBeyond(beyond)
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}

func checkpoint(ctx context.Context, o Options, base []kgo.Opt) (connector.Checkpoint, error) {
	if o.Spec.KafkaSrc == nil {
		store := &txn.OffsetsTopic{Topic: o.OffsetsTopic, Connector: o.Spec.Conf.Name, Brokers: o.Brokers, Opts: o.ClientOpts}
		return store.Load(ctx)
	}
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		// RequireStable: offsets of a transaction still open are not
		// returned as if committed; the broker answers
		// UNSTABLE_OFFSET_COMMIT until it ends, and we ask again.
		resp, err := adm.FetchOffsets(kadm.RequireStable(ctx), o.Spec.KafkaSrc.Group)
		if err == nil {
			err = resp.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			return connector.Checkpoint{}, nil // the group never committed
		}
		if errors.Is(err, kerr.UnstableOffsetCommit) {
			if !sleepCtx(ctx, 50*time.Millisecond) {
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("group %s offsets: %w", o.Spec.KafkaSrc.Group, err)
		}
		cp := connector.Checkpoint{}
		resp.Each(func(r kadm.OffsetResponse) {
			if r.At >= 0 {
				cp[connector.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.At
			}
		})
		return cp, nil
	}
}

// expectedOutputs returns the expected output IDs, each qualified with its
// destination (a topic, a table) as dest names it, and the set of
// destinations.
func expectedOutputs(ctx context.Context, o Options, base []kgo.Opt, cp connector.Checkpoint, dest func(*connector.Record) string) ([]string, map[string]bool, error) {
	spec := o.Spec
	topics := map[string]bool{}
	var expected []string
	add := func(in []*connector.Record) error {
		out, err := spec.Processor.Process(in)
		if err != nil {
			return fmt.Errorf("recomputing the connector's output: %w", err)
		}
		for _, r := range out {
			t := dest(r)
			topics[t] = true
			expected = append(expected, qualify(t, r.EventID))
		}
		return nil
	}
	if spec.Generator != nil {
		tp := connector.TopicPartition{Topic: "generator:" + spec.Conf.Name}
		const chunk = 4096
		m := meterFrom(ctx)
		m.add(cp[tp], 0)
		for seq := int64(0); seq < cp[tp]; {
			n := min(chunk, cp[tp]-seq)
			in := make([]*connector.Record, n)
			for i := range in {
				in[i] = generator.Event(spec.Conf.Name, *spec.Generator, seq+int64(i))
			}
			if err := add(in); err != nil {
				return nil, nil, err
			}
			seq += n
			m.add(0, n)
		}
		return expected, topics, nil
	}
	var procErr error
	err := readBelow(ctx, base, cp, func(r *kgo.Record) {
		if procErr == nil {
			procErr = add([]*connector.Record{kafkaRecord(r)})
		}
	})
	if procErr != nil {
		return nil, nil, procErr
	}
	return expected, topics, err
}

func kafkaRecord(r *kgo.Record) *connector.Record {
	rec := &connector.Record{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
		Origin: connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, connector.Header{Key: h.Key, Value: h.Value})
	}
	return rec
}

// stableBound returns, per partition of topics, a last stable offset that
// covers every record written before the call. It notes the high watermarks
// first, then waits until the last stable offsets reach them: a transaction
// still open then (the pipeline's own next batch, or a zombie's hanging one)
// hides everything committed after its first record from read_committed
// readers until it ends, at the latest at its transaction.timeout. Without
// the wait, output committed together with the checkpoint we read could be
// invisible yet, and be reported missing.
func stableBound(ctx context.Context, base []kgo.Opt, topics []string) (connector.Checkpoint, error) {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	highs, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("output high watermarks: %w", err)
	}
	for {
		stable, err := adm.ListCommittedOffsets(ctx, topics...)
		if err != nil {
			return nil, fmt.Errorf("output last stable offsets: %w", err)
		}
		bound := connector.Checkpoint{}
		caughtUp := true
		stable.Each(func(lo kadm.ListedOffset) {
			if lo.Err != nil {
				return // a topic not created yet holds nothing
			}
			if hw, ok := highs.Lookup(lo.Topic, lo.Partition); ok && hw.Err == nil && lo.Offset < hw.Offset {
				caughtUp = false
			}
			if lo.Offset > 0 {
				bound[connector.TopicPartition{Topic: lo.Topic, Partition: lo.Partition}] = lo.Offset
			}
		})
		if caughtUp {
			return bound, nil
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return nil, fmt.Errorf("waiting for open transactions on the output to end: %w", ctx.Err())
		}
	}
}

// actualOutputs reads every output topic to its last stable offset and
// returns the topic-qualified IDs of records whose origin is below cp.
// A record without a parsable origin counts: it cannot be attributed, so it
// shows up as unexpected. Records whose origin cp does not contain are
// left out, or with stopped returned apart (beyond); so are those whose
// origin foreign (if not nil) says belong to another stage.
func actualOutputs(ctx context.Context, base []kgo.Opt, topics map[string]bool, cp connector.Checkpoint, stopped bool, foreign func(connector.Origin) bool) (actual, beyond []string, err error) {
	bound, err := stableBound(ctx, base, keys(topics))
	if err != nil {
		return nil, nil, err
	}
	err = readBelow(ctx, base, bound, func(r *kgo.Record) {
		var id, origin string
		for _, h := range r.Headers {
			switch h.Key {
			case sinkkafka.HeaderEventID:
				id = string(h.Value)
			case sinkkafka.HeaderOrigin:
				origin = string(h.Value)
			}
		}
		o, err := sinkkafka.OriginOf(id, origin)
		if err == nil && foreign != nil && foreign(o) {
			return
		}
		if err == nil && !cp.Contains(o) {
			if stopped {
				beyond = append(beyond, qualify(r.Topic, id))
			}
			return // running: output of a batch committed after cp was read
		}
		actual = append(actual, qualify(r.Topic, id))
	})
	return actual, beyond, err
}

// readBelow reads, with read_committed, every partition of bound from its
// start up to (not including) bound's offset, calling fn for each data
// record. Control records are fetched too, so reading knows it reached the
// bound even when the last offsets below it are transaction markers.
func readBelow(ctx context.Context, base []kgo.Opt, bound connector.Checkpoint, fn func(*kgo.Record)) error {
	return readBelowUntil(ctx, base, bound, func(r *kgo.Record) bool { fn(r); return false })
}

// readBelowUntil is readBelow where fn returning true finishes the record's
// partition early.
func readBelowUntil(ctx context.Context, base []kgo.Opt, bound connector.Checkpoint, fn func(*kgo.Record) (done bool)) error {
	parts := map[string]map[int32]kgo.Offset{}
	remaining := map[connector.TopicPartition]int64{}
	for tp, end := range bound {
		if end <= 0 {
			continue
		}
		if parts[tp.Topic] == nil {
			parts[tp.Topic] = map[int32]kgo.Offset{}
		}
		parts[tp.Topic][tp.Partition] = kgo.NewOffset().AtStart()
		remaining[tp] = end
	}
	if len(remaining) == 0 {
		return nil
	}
	om := newOffsetMeter(meterFrom(ctx), remaining)
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			var last error
			for _, fe := range fetches.Errors() {
				last = fmt.Errorf("%s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
			return fmt.Errorf("reading %d partitions to their bound: %w (last fetch error: %v)", len(remaining), err, last)
		}
		// A fetch error (a broker answering UNKNOWN_SERVER_ERROR, a
		// leader moving) is retried by polling again, as any consumer
		// would, until ctx says stop; only a closed client ends reading.
		if fetches.IsClientClosed() {
			return kgo.ErrClientClosed
		}
		fetches.EachRecord(func(r *kgo.Record) {
			tp := connector.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			end, ok := remaining[tp]
			if !ok {
				return
			}
			// Reaching end-1, or passing it (the records just below the
			// bound may be of aborted transactions, never returned),
			// finishes the partition.
			if r.Offset >= end-1 {
				delete(remaining, tp)
			}
			if r.Offset < end && !r.Attrs.IsControl() && fn(r) {
				delete(remaining, tp)
			}
			om.reached(tp, r.Offset+1)
			if _, left := remaining[tp]; !left {
				om.reached(tp, end)
			}
		})
		om.flush()
	}
	return nil
}

// qualify names an output by destination and event ID; Kafka topic names
// cannot contain ':' (nor can the table names of a PostgreSQL sink, unless
// quoted), so the pair is unambiguous.
func qualify(topic, id string) string { return topic + ":" + id }

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
