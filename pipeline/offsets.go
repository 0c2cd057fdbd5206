package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// OffsetStore reads and changes a stopped connector's checkpoint where it
// lives (Kafka Connect's KIP-875 offsets API). Altering the checkpoint of a
// running connector would race its commits, so callers only do it while the
// connector is STOPPED.
type OffsetStore interface {
	Get(ctx context.Context) (connector.Checkpoint, error)
	// Alter sets the given partitions' checkpoints (others are kept).
	Alter(ctx context.Context, cp connector.Checkpoint) error
	// Reset forgets every checkpoint: the connector starts over from its
	// source's start (a Kappa-style replay).
	Reset(ctx context.Context) error
}

// Offsets returns where s's checkpoint lives: where its commit protocol
// resumes from (Build), so that GET shows the position a resumed connector
// starts at, and a change or reset is what it reads next.
//
//   - exactly_once into PostgreSQL or Redis alone (txn.SinkOffsets): the
//     sink's offsets table or hash, which the connector claims from on
//     assignment. The consumer group's offsets are only a copy there, for
//     lag display; a change is made to them too, first.
//   - every other connector with a Kafka source: the consumer group's
//     committed offsets. at_least_once commits them after each write
//     (txn.SinkAtLeastOnce, txn.KafkaAtLeastOnce), whatever the sink; a Kafka
//     sink's transaction commits them with the output (txn.KafkaGroupTxn);
//     a two-phase fan-out's decides with them (txn.TwoPhase).
//   - a generator source: its records in the offsets topic.
func Offsets(s *Spec, env Env) OffsetStore {
	env.defaults()
	if s.Repartitions() {
		// The connector's input checkpoint is its repartition stage's:
		// the group's offsets, committed with the repartitioned records.
		s, _ = s.Stages()
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, env.ClientOpts...)
	if s.KafkaSrc == nil {
		return &topicOffsets{store: &txn.OffsetsTopic{Topic: env.OffsetsTopic, Connector: s.Conf.Name, Brokers: env.Brokers, Opts: env.ClientOpts}, opts: base}
	}
	group := &groupOffsets{group: s.KafkaSrc.Group, opts: base}
	if !SinkKeepsCheckpoint(s) {
		return group
	}
	sink := s.Sinks[0]
	open := func(ctx context.Context) (component.CheckpointStore, error) {
		return sink.Checkpoints(ctx, sink.Config, component.SinkEnv{Connector: s.Conf.Name, DLQTopic: s.DLQTopic(), Log: env.Logger})
	}
	return &sinkOffsets{group: s.KafkaSrc.Group, open: open, lag: group}
}

// SinkKeepsCheckpoint reports whether s's checkpoint lives in its sink: an
// exactly_once connector writing alone to a sink with a Store (PostgreSQL,
// Redis). Its
// at_least_once form resumes from the consumer group, and a two-phase
// commit's PostgreSQL participant keeps no checkpoint (the Kafka
// transaction that decides carries it).
func SinkKeepsCheckpoint(s *Spec) bool {
	return s.Conf.Guarantee == config.ExactlyOnce && !s.TwoPhase && len(s.Sinks) == 1 &&
		s.Sinks[0].Store != nil
}

// groupOffsets: the checkpoint is the consumer group's committed offsets.
type groupOffsets struct {
	group string
	opts  []kgo.Opt
}

func (g *groupOffsets) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(g.opts...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func (g *groupOffsets) Get(ctx context.Context) (connector.Checkpoint, error) {
	adm, done, err := g.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	resp, err := adm.FetchOffsets(ctx, g.group)
	if err == nil {
		err = resp.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		// A group that never committed has no checkpoint (Kafka
		// answers with no offsets; kfake and some versions with
		// this error).
		return connector.Checkpoint{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", g.group, err)
	}
	cp := connector.Checkpoint{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.At >= 0 {
			cp[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.At
		}
	})
	return cp, nil
}

func (g *groupOffsets) Alter(ctx context.Context, cp connector.Checkpoint) error {
	adm, done, err := g.admin()
	if err != nil {
		return err
	}
	defer done()
	offsets := kadm.Offsets{}
	for tp, next := range cp {
		offsets.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: next, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(ctx, g.group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return groupError(g.group, err)
	}
	return nil
}

func (g *groupOffsets) Reset(ctx context.Context) error {
	cp, err := g.Get(ctx)
	if err != nil || len(cp) == 0 {
		return err
	}
	adm, done, err := g.admin()
	if err != nil {
		return err
	}
	defer done()
	set := kadm.TopicsSet{}
	for tp := range cp {
		set.Add(tp.Topic, tp.Partition)
	}
	resp, err := adm.DeleteOffsets(ctx, g.group, set)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return groupError(g.group, err)
	}
	return nil
}

// groupError names the group of a failed offsets request and, when the
// broker refused because the group has members, says what to do: the
// coordinator takes offsets from outside the group only while it is empty,
// and a member means the connector still runs somewhere (another process
// sharing the group, or one that died as a static member and whose session
// has not expired yet).
func groupError(group string, err error) error {
	for _, busy := range []error{kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.GroupSubscribedToTopic,
		kerr.NonEmptyGroup, kerr.RebalanceInProgress} {
		if errors.Is(err, busy) {
			return fmt.Errorf("consumer group %s has members, so its offsets cannot be changed: stop the connector in every process sharing the group, "+
				"or wait for the session timeout of one that died: %w", group, err)
		}
	}
	return fmt.Errorf("group %s: %w", group, err)
}

// topicOffsets: the checkpoint is this connector's records in the offsets
// topic; a reset writes tombstones, which Load treats as "no checkpoint".
type topicOffsets struct {
	store *txn.OffsetsTopic
	opts  []kgo.Opt
}

func (t *topicOffsets) Get(ctx context.Context) (connector.Checkpoint, error) {
	return t.store.Load(ctx)
}

func (t *topicOffsets) Alter(ctx context.Context, cp connector.Checkpoint) error {
	return t.produce(ctx, t.store.Records(cp))
}

func (t *topicOffsets) Reset(ctx context.Context) error {
	cp, err := t.store.Load(ctx)
	if err != nil || len(cp) == 0 {
		return err
	}
	recs := t.store.Records(cp)
	for _, r := range recs {
		r.Value = nil // tombstone
	}
	return t.produce(ctx, recs)
}

func (t *topicOffsets) produce(ctx context.Context, recs []*kgo.Record) error {
	if err := t.store.Ensure(ctx); err != nil {
		return err
	}
	cl, err := kgo.NewClient(t.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// sinkOffsets: the checkpoint lives in the sink, the truth the connector
// claims from on assignment. The consumer group's offsets are a copy for
// lag display that nothing reads back; a change is made to the copy first,
// then to the sink, so a change that fails leaves the checkpoint as it was
// (only the copy may have moved), and a change the group refuses (it still
// has members: the connector runs somewhere else) is not made at all.
type sinkOffsets struct {
	group string
	open  func(context.Context) (component.CheckpointStore, error)
	lag   *groupOffsets
}

func (o *sinkOffsets) with(ctx context.Context, fn func(component.CheckpointStore) error) error {
	store, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

func (o *sinkOffsets) Get(ctx context.Context) (cp connector.Checkpoint, err error) {
	err = o.with(ctx, func(s component.CheckpointStore) error {
		cp, err = s.Checkpoints(ctx, o.group)
		return err
	})
	return cp, err
}

func (o *sinkOffsets) Alter(ctx context.Context, cp connector.Checkpoint) error {
	if err := o.lag.Alter(ctx, cp); err != nil {
		return fmt.Errorf("the copy of the checkpoint kept for lag display: %w", err)
	}
	return o.with(ctx, func(s component.CheckpointStore) error { return s.SetCheckpoints(ctx, o.group, cp) })
}

func (o *sinkOffsets) Reset(ctx context.Context) error {
	if err := o.lag.Reset(ctx); err != nil {
		return fmt.Errorf("the copy of the checkpoint kept for lag display: %w", err)
	}
	return o.with(ctx, func(s component.CheckpointStore) error { return s.ResetCheckpoints(ctx, o.group) })
}
