package pipeline

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	sinkpg "github.com/connectd/connectd/sink/postgres"
	sinkredis "github.com/connectd/connectd/sink/redis"
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

// Offsets returns where s's checkpoint lives.
func Offsets(s *Spec, env Env) OffsetStore {
	env.defaults()
	base := append([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, env.ClientOpts...)
	switch {
	case s.Postgres != nil:
		return &sinkOffsets{group: s.KafkaSrc.Group, open: func(context.Context) (sinkCheckpoints, error) {
			return sinkpg.New(*s.Postgres, sinkpg.Options{Connector: s.Conf.Name, DLQTopic: s.DLQTopic(), ExactlyOnce: true}), nil
		}}
	case s.Redis != nil:
		return &sinkOffsets{group: s.KafkaSrc.Group, open: func(ctx context.Context) (sinkCheckpoints, error) {
			return sinkredis.NewStore(ctx, *s.Redis, s.DLQTopic())
		}}
	}
	if s.KafkaSrc != nil {
		return &groupOffsets{group: s.KafkaSrc.Group, opts: base}
	}
	return &topicOffsets{store: &txn.OffsetsTopic{Topic: env.OffsetsTopic, Connector: s.Conf.Name, Brokers: env.Brokers, Opts: env.ClientOpts}, opts: base}
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
		return fmt.Errorf("group %s: %w", g.group, err)
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
		return fmt.Errorf("group %s: %w", g.group, err)
	}
	return nil
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

// sinkCheckpoints is a sink store that keeps checkpoints (PostgreSQL, Redis).
type sinkCheckpoints interface {
	txn.CheckpointAdmin
	Close()
}

// sinkOffsets: the checkpoint lives in the sink, the truth the connector
// claims from on assignment; the consumer group's offsets are only for lag
// display, so changing them would change nothing.
type sinkOffsets struct {
	group string
	open  func(context.Context) (sinkCheckpoints, error)
}

func (o *sinkOffsets) with(ctx context.Context, fn func(sinkCheckpoints) error) error {
	store, err := o.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

func (o *sinkOffsets) Get(ctx context.Context) (cp connector.Checkpoint, err error) {
	err = o.with(ctx, func(s sinkCheckpoints) error {
		cp, err = s.Checkpoints(ctx, o.group)
		return err
	})
	return cp, err
}

func (o *sinkOffsets) Alter(ctx context.Context, cp connector.Checkpoint) error {
	return o.with(ctx, func(s sinkCheckpoints) error { return s.SetCheckpoints(ctx, o.group, cp) })
}

func (o *sinkOffsets) Reset(ctx context.Context) error {
	return o.with(ctx, func(s sinkCheckpoints) error { return s.ResetCheckpoints(ctx, o.group) })
}
