package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/idempotency"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/transform"
	"github.com/connectd/connectd/window"
)

// Automatic repartitioning. A window stage computes each input partition's
// windows alone, so every key must live in one partition. When the grouping
// key is an expression the input is not known to be partitioned by (key:
// without key_partitioned: true, window.Spec.Repartition), the connector
// runs as two stages in one Runner, as Kafka Streams does with its
// repartition topics:
//
//  1. repartition: the connector's source and group, its event IDs and
//     stateless transforms, then the record key set to the grouping key's
//     value; the record (value, timestamp, headers, event ID) is written to
//     the internal topic <group>-repartition in a Kafka transaction with
//     the input offsets (exactly once whatever the connector's guarantee),
//     partitioned by the producer's key hash. A record whose event time,
//     key or aggregated values cannot be evaluated fails here, as a record
//     error under errors.tolerance, naming its real input.
//  2. window: the group <group>-window reads <group>-repartition with
//     read_committed and runs the window stage grouping by the record key,
//     into the connector's sink with its protocol and state store, exactly
//     as an unrepartitioned windowed connector does.
//
// Determinism: stage 2's watermarks are per repartition partition, so a
// record's lateness is decided against the log of its repartition
// partition, which interleaves the upstream partitions in the order their
// transactions committed. The results are a function of that log, fixed
// once committed: replays, crashes and verify's batch oracle (which reads
// the repartition topic as the stage's input) agree; a second run over the
// same upstream input may interleave it differently.

// RepartitionTopic is the internal topic of a connector whose consumer
// group is group.
func RepartitionTopic(group string) string { return group + "-repartition" }

// WindowGroup is the consumer group of a repartitioned connector's window
// stage.
func WindowGroup(group string) string { return group + "-window" }

// repartitionInstance names the repartition stage's transactional ID and
// group instance (the window stage keeps the instance's own). An '_'
// cannot be in a host name or a pod name, the usual instance IDs, so the
// name meets no other instance's; and it is one of the characters Kafka
// allows in a group.instance.id ('/' is not).
func repartitionInstance(instanceID string) string { return instanceID + "_repartition" }

// Stage names of a repartitioned connector's Specs.
const (
	StageRepartition = "repartition"
	StageWindow      = "window"
)

// kafkaSink is a Kafka sink writing to topic, as if decoded.
func kafkaSink(topic string) SinkInstance {
	sk, ok := component.LookupSink("kafka")
	if !ok {
		panic("pipeline: the kafka sink is not registered")
	}
	return SinkInstance{Sink: sk, Config: &sinkkafka.Config{Topic: topic}}
}

// Repartitions reports whether the connector runs as two stages (see
// Stages): it has a window stage whose grouping key needs repartitioning.
func (s *Spec) Repartitions() bool {
	w := s.Processor.Window()
	return s.Stage == "" && w != nil && w.Repartition && s.KafkaSrc != nil
}

// Stages returns the two stages of a connector that Repartitions, each a
// Spec that builds and is checked as a connector of its own: repartition
// (the connector's source into the Kafka topic RepartitionTopic) and
// window (that topic into the connector's sink, grouping by the record
// key).
func (s *Spec) Stages() (repartition, windowed *Spec) {
	return s.stages(s.Processor.Window().ByRecordKey())
}

// CheckStages is Stages for verify: its window stage groups by the key
// expression, read from the repartitioned record's value as stage 1 read
// it, rather than by the record key. Both agree when stage 1 keyed every
// record right; a wrong key in the repartition topic then shows as a
// result that differs from the oracle's.
func (s *Spec) CheckStages() (repartition, windowed *Spec) {
	return s.stages(s.Processor.Window())
}

func (s *Spec) stages(win *window.Spec) (repartition, windowed *Spec) {
	p := s.Processor
	group := s.KafkaSrc.Group
	topic := RepartitionTopic(group)

	rep := *s
	rep.Stage = StageRepartition
	rep.Conf.Guarantee = config.ExactlyOnce
	rep.Sinks = []SinkInstance{kafkaSink(topic)}
	rep.views()
	chain := append(slices.Clip(p.chain), repartitionKey{spec: p.Window()})
	rep.Processor = &Processor{connector: p.connector, deriver: p.deriver, chain: chain, dlqTopic: p.dlqTopic}

	win2 := *s
	win2.Stage = StageWindow
	src := *s.KafkaSrc
	src.Topics = []string{topic}
	src.Group = WindowGroup(group)
	src.StartOffset = "earliest" // the whole internal topic is the stage's input
	win2.SourceConfig = &src
	win2.views()
	// The event ID travels in the header the Kafka sink writes.
	deriver, err := idempotency.NewDeriver(string(idempotency.ModeHeader), sinkkafka.HeaderEventID, "")
	if err != nil {
		panic(err) // constant arguments
	}
	win2.Processor = &Processor{connector: p.connector, deriver: deriver, window: win,
		dlqTopic: p.dlqTopic, lateTopic: p.lateTopic}
	return &rep, &win2
}

// repartitionKey is stage 1's last transform: it sets the record key to
// the grouping key. It evaluates the whole window stage's reading of the
// record (event time and aggregated values too), so a record stage 2
// could not read fails here, where its origin is the real input.
type repartitionKey struct{ spec *window.Spec }

var _ transform.Named = repartitionKey{}

func (repartitionKey) Name() string { return "window" }

func (k repartitionKey) Apply(in *connector.Record) ([]*connector.Record, error) {
	_, key, _, err := k.spec.Eval(in)
	if err != nil {
		return nil, err
	}
	out := *in
	out.Key = []byte(key)
	return []*connector.Record{&out}, nil
}

// buildStages builds a connector that Repartitions: each stage is built as
// a connector of its own (with tasks > 1, each has that many tasks), run
// together by one Runner.
func buildStages(s *Spec, env Env) connector.Runner {
	rep, win := s.Stages()
	repEnv := env
	repEnv.InstanceID = repartitionInstance(env.InstanceID)
	repEnv.Logger = env.Logger.With("stage", StageRepartition)
	// Commit metrics are the window stage's alone: its records carry the
	// input's timestamps, so its latencies are the connector's end to
	// end, and stage 1's commits would count every record twice.
	repEnv.Observer = nil
	winEnv := env
	winEnv.Logger = env.Logger.With("stage", StageWindow)
	return &Staged{
		name:   s.Conf.Name,
		topic:  rep.KafkaSink.Topic,
		inputs: s.KafkaSrc.Topics,
		opts:   concat([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, env.ClientOpts),
		log:    env.Logger.With("connector", s.Conf.Name),
		rep:    Build(rep, repEnv),
		win:    Build(win, winEnv),
	}
}

// Staged runs a repartitioned connector's two stages as one connector:
// started, paused, resumed and stopped together, one merged status.
type Staged struct {
	name   string
	topic  string   // the repartition topic
	inputs []string // the connector's input topics
	opts   []kgo.Opt
	log    *slog.Logger
	rep    connector.Runner
	win    connector.Runner
}

var _ connector.Runner = (*Staged)(nil)

// Stages returns the two stages' runners (tests).
func (g *Staged) Stages() (repartition, windowed connector.Runner) { return g.rep, g.win }

// Name is the connector's name.
func (g *Staged) Name() string { return g.name }

// Run creates the repartition topic if it is missing, then runs both
// stages until ctx ends, returning their failures.
func (g *Staged) Run(ctx context.Context) error {
	if !g.ensureTopic(ctx) {
		return nil // stopped before the topic existed
	}
	var repErr, winErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.rep.Run(ctx); err != nil {
			repErr = fmt.Errorf("%s stage: %w", StageRepartition, err)
		}
	})
	wg.Go(func() {
		if err := g.win.Run(ctx); err != nil {
			winErr = fmt.Errorf("%s stage: %w", StageWindow, err)
		}
	})
	wg.Wait()
	return errors.Join(repErr, winErr)
}

// ensureTopic creates the repartition topic with the widest input topic's
// partition count, so each key's share of the work spreads as the input's
// did, and retention.ms -1: a record committed there is stage 2's input
// until stage 2 has read it, however long that takes. An existing topic is
// used as it is. It retries until it succeeds (the input topics may not
// exist yet) or ctx ends, and reports which.
func (g *Staged) ensureTopic(ctx context.Context) bool {
	wait := 200 * time.Millisecond
	for {
		err := g.createTopic(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		g.log.Warn("repartition topic not ready; retrying", "topic", g.topic, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (g *Staged) createTopic(ctx context.Context) error {
	cl, err := kgo.NewClient(g.opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, append([]string{g.topic}, g.inputs...)...)
	if err != nil {
		return err
	}
	if d, ok := details[g.topic]; ok && d.Err == nil {
		return nil
	}
	var partitions int32
	for _, t := range g.inputs {
		if d, ok := details[t]; ok && d.Err == nil {
			partitions = max(partitions, int32(len(d.Partitions)))
		}
	}
	if partitions == 0 {
		return fmt.Errorf("none of the input topics %v exists yet", g.inputs)
	}
	retention := "-1"
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"retention.ms": &retention}, g.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", g.topic, err)
	}
	g.log.Info("repartition topic created", "topic", g.topic, "partitions", partitions)
	return nil
}

// Pause pauses both stages.
func (g *Staged) Pause() { g.rep.Pause(); g.win.Pause() }

// Resume resumes both stages.
func (g *Staged) Resume() { g.rep.Resume(); g.win.Resume() }

// MarkFailed marks both stages FAILED.
func (g *Staged) MarkFailed(err error) { g.rep.MarkFailed(err); g.win.MarkFailed(err) }

// Status merges the stages' statuses: records_in is what stage 1 read
// from the connector's input, records_out and the window section are stage
// 2's (what reached the sink); commits, aborts and dead letters add up;
// partitions list both the input's (stage 1) and the repartition topic's
// (stage 2). The state is FAILED if either stage failed, naming it, else
// stage 1's (the stages are paused, resumed and stopped together). With
// tasks, stage 1's tasks are listed first, then stage 2's, numbered on.
func (g *Staged) Status() connector.Status {
	a, b := g.rep.Status(), g.win.Status()
	st := b
	st.Name, st.State, st.Error = g.name, a.State, ""
	switch {
	case a.State == connector.Failed:
		st.State, st.Error = connector.Failed, StageRepartition+" stage: "+a.Error
	case b.State == connector.Failed:
		st.State, st.Error = connector.Failed, StageWindow+" stage: "+b.Error
	}
	st.RecordsIn = a.RecordsIn
	st.Commits = a.Commits + b.Commits
	st.DeadLettered = a.DeadLettered + b.DeadLettered
	if a.LastCommit.After(st.LastCommit) {
		st.LastCommit = a.LastCommit
	}
	st.Aborts = map[string]uint64{}
	for _, m := range []map[string]uint64{a.Aborts, b.Aborts} {
		for k, n := range m {
			st.Aborts[k] += n
		}
	}
	st.LastAbort = nil
	for _, s := range []struct {
		name string
		abs  *connector.AbortInfo
	}{{StageRepartition, a.LastAbort}, {StageWindow, b.LastAbort}} {
		if s.abs != nil && (st.LastAbort == nil || s.abs.At.After(st.LastAbort.At)) {
			ab := *s.abs
			ab.Error = s.name + " stage: " + ab.Error
			st.LastAbort = &ab
		}
	}
	st.Partitions = append(slices.Clone(a.Partitions), b.Partitions...)
	slices.SortFunc(st.Partitions, func(x, y connector.PartitionStatus) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	st.Tasks = slices.Clone(a.Tasks)
	for _, t := range b.Tasks {
		t.ID += len(a.Tasks)
		st.Tasks = append(st.Tasks, t)
	}
	return st
}
