package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	_ "github.com/connectd/connectd/component/all" // every built-in source and sink
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/idempotency"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/source/generator"
	kafkasrc "github.com/connectd/connectd/source/kafka"
	"github.com/connectd/connectd/transform"
	"github.com/connectd/connectd/txn"
	"github.com/connectd/connectd/window"
)

// Env is what a connector needs from the daemon that hosts it.
type Env struct {
	Brokers []string
	// InstanceID makes transactional IDs unique per daemon. Default: host name.
	InstanceID string
	// OffsetsTopic: see config.Config.OffsetsTopic.
	OffsetsTopic string
	// ClientOpts are appended to every Kafka client's options (tests use
	// them for shorter timeouts).
	ClientOpts []kgo.Opt
	// OnFenced is called when a connector's session was fenced by a newer
	// owner; may be nil.
	OnFenced func(connector string)
	// Observer returns the commit observer of a connector (metrics); may
	// be nil, and may return nil.
	Observer func(connector string) connector.Observer
	// Stops, if set, returns a connector's stop offsets for a bounded
	// run (package bounded), or nil: its Kafka sources never read past
	// them.
	Stops  func(connector string) connector.Checkpoint
	Logger *slog.Logger
}

func (e *Env) defaults() {
	if e.InstanceID == "" {
		e.InstanceID, _ = os.Hostname()
		if e.InstanceID == "" {
			e.InstanceID = "connectd"
		}
	}
	if e.OffsetsTopic == "" {
		e.OffsetsTopic = txn.DefaultOffsetsTopic
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
}

// Spec is a connector's decoded components, checked without connecting.
type Spec struct {
	Conf      config.Connector
	Processor *Processor
	// Source is the registered source (package component) and
	// SourceConfig its decoded config.
	Source       component.Source
	SourceConfig component.SourceConfig
	// Sinks are the decoded sinks: the one sink, or a fan-out's (sinks:).
	Sinks []SinkInstance
	// KafkaSrc is SourceConfig when the source is the Kafka consumer
	// group, which the commit protocols own (nil otherwise).
	KafkaSrc *kafkasrc.Config
	// KafkaSink is the Kafka sink's config, whose topic the Kafka
	// protocols produce to (zero without a Kafka sink).
	KafkaSink sinkkafka.Config
	// Generator is SourceConfig when the source is the generator (nil
	// otherwise), for bounded runs, which end at its count. A sink's own
	// config is SinkConfig's to find, for the tests that read its tables
	// or keys; building, verify and the offsets path use the registry.
	Generator *generator.Config
	// TwoPhase marks a spec taken from a fan-out's sink of an exactly_once
	// connector: its checkpoint is the group's, committed in the Kafka
	// transaction that decides (verify reads it there).
	TwoPhase bool
	// Stage is set on the two Specs of a connector that Repartitions
	// (StageRepartition or StageWindow, see Stages); "" otherwise.
	Stage string
}

// SinkInstance is one decoded sink: its registration and its config.
type SinkInstance struct {
	component.Sink
	Config component.Config
}

// SinkConfig returns the config of s's first sink of config type T (a
// pointer, such as *postgres.Config), or the zero T and false.
func SinkConfig[T component.Config](s *Spec) (T, bool) {
	for _, in := range s.Sinks {
		if c, ok := in.Config.(T); ok {
			return c, true
		}
	}
	var zero T
	return zero, false
}

// Fanout reports whether the connector writes to several sinks (sinks:).
func (s *Spec) Fanout() bool { return len(s.Sinks) > 1 }

// Sink returns the spec a single-sink connector writing only to fanout
// sink i would have: for verify, which checks each sink on its own.
func (s *Spec) Sink(i int) *Spec {
	out := *s
	out.TwoPhase = s.Conf.Guarantee == config.ExactlyOnce
	out.Sinks = s.Sinks[i : i+1 : i+1]
	out.views()
	return &out
}

// views fills the typed views (Generator, KafkaSrc, KafkaSink) from
// Source and Sinks.
func (s *Spec) views() {
	s.KafkaSrc, s.Generator = nil, nil
	switch c := s.SourceConfig.(type) {
	case *kafkasrc.Config:
		s.KafkaSrc = c
	case *generator.Config:
		s.Generator = c
	}
	for _, in := range s.Sinks {
		if c, ok := in.Config.(*sinkkafka.Config); ok {
			s.KafkaSink = *c
		}
	}
}

// Decode decodes and checks every component of cc, returning all problems
// at once as config.Errors (file:line:col).
func Decode(cc config.Connector) (*Spec, error) {
	s := &Spec{Conf: cc}
	errs := s.decodeSource(cc)
	if len(cc.Sinks) == 0 {
		sink, serrs := decodeSink(cc, cc.Sink)
		errs = append(errs, serrs...)
		if sink != nil {
			s.Sinks = []SinkInstance{*sink}
			errs = append(errs, checkAlone(cc, *sink)...)
		}
	} else {
		errs = append(errs, s.decodeFanout(cc)...)
	}
	s.views()
	proc, err := NewProcessor(cc)
	if err != nil {
		errs = append(errs, err)
	}
	s.Processor = proc
	if proc != nil && proc.Window() != nil && len(s.Sinks) == 1 && !s.Sinks[0].WindowState {
		errs = append(errs, cc.Sink.FieldErrorf("type", "%s sink: cannot keep a window stage's state; use a kafka, postgres or redis sink for windows", s.Sinks[0].Name))
	}
	errs = append(errs, s.checkBounded()...)
	if len(errs) > 0 {
		return nil, flatten(errs)
	}
	return s, nil
}

// decodeSource decodes cc's source through the registry.
func (s *Spec) decodeSource(cc config.Connector) []error {
	c := cc.Source
	if c.Type == "" {
		return nil // reported by config
	}
	src, ok := component.LookupSource(c.Type)
	if !ok {
		return []error{c.FieldErrorf("type", "unknown source type %q (known: %s)",
			c.Type, strings.Join(component.SourceNames(), ", "))}
	}
	cfg := src.NewConfig()
	s.Source, s.SourceConfig = src, cfg
	if err := c.Decode(cfg); err != nil {
		return []error{err}
	}
	if err := cfg.Validate(cc.Name); err != nil {
		return fieldErrors(c, src.Name+" source", err)
	}
	if src.New != nil {
		// Building checks what Validate cannot (the name).
		if _, err := src.New(cfg, cc.Name); err != nil {
			return []error{c.Errorf("%s source: %v", src.Name, err)}
		}
	}
	return nil
}

// decodeSink decodes one sink component of cc through the registry; nil
// when its type is missing or unknown.
func decodeSink(cc config.Connector, c config.Component) (*SinkInstance, []error) {
	if c.Type == "" {
		return nil, nil // reported by config
	}
	sk, ok := component.LookupSink(c.Type)
	if !ok {
		return nil, []error{c.FieldErrorf("type", "unknown sink type %q (known: %s)",
			c.Type, strings.Join(component.SinkNames(), ", "))}
	}
	var errs []error
	cfg := sk.NewConfig()
	if err := c.Decode(cfg); err != nil {
		errs = append(errs, err)
	} else if err := cfg.Validate(); err != nil {
		errs = append(errs, fieldErrors(c, sk.Name+" sink", err)...)
	}
	// A sink other than Kafka is driven through the consumer group: its
	// checkpoint, or the group's offsets, are per Kafka partition.
	if src, ok := component.LookupSource(cc.Source.Type); ok && !sk.Kafka && !src.ConsumerGroup {
		where := "the consumer group's offsets"
		if sk.Checkpoint != "" {
			where = sk.Checkpoint
		}
		errs = append(errs, c.FieldErrorf("type",
			"%s sink: needs a kafka source (its checkpoint is kept per Kafka partition in %s), not %q", sk.Name, where, cc.Source.Type))
	}
	return &SinkInstance{Sink: sk, Config: cfg}, errs
}

// checkAlone checks that a connector's only sink can commit under its
// guarantee.
func checkAlone(cc config.Connector, sink SinkInstance) []error {
	switch {
	case sink.Kafka:
		return nil
	case cc.Guarantee == config.ExactlyOnce && sink.Store == nil:
		return []error{cc.Sink.FieldErrorf("type", "%s sink: cannot commit exactly_once (it cannot keep a checkpoint with its output); run this connector at_least_once", sink.Name)}
	case cc.Guarantee != config.ExactlyOnce && sink.Writer == nil:
		return []error{cc.Sink.FieldErrorf("type", "%s sink: has no at_least_once writer; run this connector exactly_once", sink.Name)}
	}
	return nil
}

// decodeFanout decodes a connector's sinks: list. With exactly_once the
// batch is committed across them by two-phase commit (see Build): the
// Kafka transaction decides, so the source must be a Kafka consumer group,
// at most one sink may be Kafka, and every other sink must be able to
// prepare a transaction (a registered Participant: PostgreSQL can, Redis
// cannot).
func (s *Spec) decodeFanout(cc config.Connector) []error {
	var errs []error
	if len(cc.Sinks) < 2 {
		errs = append(errs, cc.Sinks[0].Errorf("sinks: lists one sink; write it as sink: instead"))
	}
	if src, ok := component.LookupSource(cc.Source.Type); ok && !src.ConsumerGroup {
		errs = append(errs, cc.Source.FieldErrorf("type",
			"sinks: several sinks need a kafka source (its consumer group offsets commit in the Kafka transaction that decides each batch), not %q", cc.Source.Type))
	}
	kafkaSinks := 0
	for i, c := range cc.Sinks {
		sink, serrs := decodeSink(cc, c)
		errs = append(errs, serrs...)
		if sink == nil {
			continue
		}
		switch {
		case sink.Kafka:
			kafkaSinks++
			if kafkaSinks > 1 {
				errs = append(errs, c.FieldErrorf("type", "sinks[%d]: a connector may have one kafka sink (route records to several topics with the route transform)", i))
			}
		case cc.Guarantee == config.ExactlyOnce && sink.Participant == nil:
			errs = append(errs, c.FieldErrorf("type",
				"sinks[%d]: %s cannot prepare a transaction, so it cannot take part in a two-phase commit; use it alone (sink:) for exactly_once, or run this connector at_least_once", i, sink.Name))
		case cc.Guarantee != config.ExactlyOnce && sink.Writer == nil:
			errs = append(errs, c.FieldErrorf("type", "sinks[%d]: %s has no at_least_once writer", i, sink.Name))
		}
		s.Sinks = append(s.Sinks, *sink)
	}
	return errs
}

// NewProcessor builds the connector's event-ID deriver and transform chain.
func NewProcessor(cc config.Connector) (*Processor, error) {
	var errs []error
	deriver, err := idempotency.NewDeriver(cc.EventID.From, cc.EventID.Header, cc.EventID.Field)
	if err != nil {
		errs = append(errs, &config.Error{Pos: cc.Pos, Msg: "event_id: " + err.Error()})
	}
	chain := make(transform.Chain, 0, len(cc.Transforms))
	var win *window.Spec
	for i, tc := range cc.Transforms {
		if tc.Type == "" {
			continue // reported by config
		}
		if tc.Type == "window" {
			spec, werrs := decodeWindow(cc, i, tc)
			win = spec
			errs = append(errs, werrs...)
			continue
		}
		if _, ok := transform.Lookup(tc.Type); !ok {
			errs = append(errs, tc.FieldErrorf("type", "transforms[%d]: unknown transform type %q (known: %s)",
				i, tc.Type, strings.Join(transform.Names(), ", ")))
			continue
		}
		t, err := transform.Build(tc.Type, tc.Decode)
		var ce config.Errors
		var fe *transform.FieldError
		switch {
		case err == nil:
			chain = append(chain, t)
		case errors.As(err, &ce):
			errs = append(errs, err)
		case errors.As(err, &fe):
			errs = append(errs, tc.FieldErrorf(fe.Field, "transforms[%d] (%s): %s: %v", i, tc.Type, fe.Field, fe.Err))
		default:
			errs = append(errs, tc.Errorf("transforms[%d]: %v", i, err))
		}
	}
	if len(errs) > 0 {
		return nil, flatten(errs)
	}
	p := &Processor{connector: cc.Name, deriver: deriver, chain: chain, window: win}
	if cc.ErrorsTolerance == "all" && cc.DeadLetterQueue != nil {
		p.dlqTopic = cc.DeadLetterQueue.Topic
	}
	if win != nil && win.Late == window.LateDeadLetter {
		p.lateTopic = cc.DeadLetterQueue.Topic // checked by decodeWindow
	}
	return p, nil
}

// Validate decodes every connector of cfg; it is `connectd validate`.
func Validate(cfg *config.Config) error {
	var errs []error
	for _, cc := range cfg.Connectors {
		if _, err := Decode(cc); err != nil {
			errs = append(errs, err)
		}
	}
	return flatten(errs)
}

// Build assembles a runnable connector from its spec: one Connector, or
// with tasks > 1 one per task (see connector.Tasks), task i running as
// instance TaskInstanceID(env.InstanceID, i).
func Build(s *Spec, env Env) connector.Runner {
	env.defaults()
	if s.Repartitions() {
		return buildStages(s, env)
	}
	if s.Conf.Tasks <= 1 {
		return buildTask(s, env)
	}
	if s.KafkaSrc != nil {
		// The tasks share the connector's fetch bound, so two tasks do
		// not buffer twice what one does (kafkasrc.Config.ForTasks).
		shared := *s
		src := s.KafkaSrc.ForTasks(s.Conf.Tasks)
		shared.KafkaSrc = &src
		s = &shared
	}
	tasks := make([]*connector.Connector, s.Conf.Tasks)
	for i := range tasks {
		te := env
		te.InstanceID = TaskInstanceID(env.InstanceID, i)
		te.Logger = env.Logger.With("task", i)
		tasks[i] = buildTask(s, te)
	}
	return connector.NewTasks(tasks)
}

// buildTask assembles one Connector running as env.InstanceID.
func buildTask(s *Spec, env Env) *connector.Connector {
	cc := s.Conf
	log := env.Logger.With("connector", cc.Name)
	opts := connector.Options{
		Name:            cc.Name,
		Guarantee:       string(cc.Guarantee),
		CommitInterval:  cc.CommitInterval.D(),
		MaxBatch:        cc.BatchMaxRecords,
		ShutdownTimeout: cc.ShutdownTimeout.D(),
		CommitTimeout:   cc.TransactionTimeout.D(),
		Logger:          env.Logger,
	}
	if env.Observer != nil {
		opts.Observer = env.Observer(cc.Name)
	}
	if env.Stops != nil && env.Stops(cc.Name) != nil {
		// A bounded run reads transaction markers too, so that the
		// checkpoint of a partition written transactionally can reach
		// its stop, the offset after its last marker.
		env.ClientOpts = append(slices.Clip(env.ClientOpts), kgo.KeepControlRecords())
		opts.Stops = env.Stops(cc.Name)
	}
	base := append([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, sinkkafka.ProducerOptions(cc.CommitInterval.D())...)
	txnOpts := []kgo.Opt{
		kgo.TransactionalID(TransactionalID(cc.Name, env.InstanceID)),
		kgo.TransactionTimeout(cc.TransactionTimeout.D()),
	}
	exactlyOnce := cc.Guarantee == config.ExactlyOnce
	topic := s.KafkaSink.Topic
	onFenced := func() {
		if env.OnFenced != nil {
			env.OnFenced(cc.Name)
		}
	}

	var src connector.Source
	var proto connector.Protocol
	var state connector.StateStore // where a window stage's state commits
	senv := component.SinkEnv{Connector: cc.Name, DLQTopic: s.DLQTopic(), KafkaOpts: concat(base, env.ClientOpts), Log: log}
	switch {
	case len(s.Sinks) > 1:
		src, proto = s.buildFanout(env, senv, base, txnOpts, onFenced, log)
	case s.KafkaSrc != nil && !s.Sinks[0].Kafka:
		// A sink other than Kafka: exactly_once claims partitions in
		// the sink's store and commits output and offsets there as one
		// unit (txn.SinkOffsets); at_least_once writes, then commits the
		// group's offsets (txn.SinkAtLeastOnce).
		sink := s.Sinks[0]
		opts := concat([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, s.KafkaSrc.ClientOptions(GroupInstanceID(cc.Name, env.InstanceID)), env.ClientOpts)
		if exactlyOnce {
			store := sink.Store(sink.Config, senv)
			state, _ = store.(connector.StateStore)
			p := txn.NewSinkOffsets(opts, s.KafkaSrc.Group, s.KafkaSrc.StartAt(), store, log)
			src, proto = kafkasrc.New(p.Client, log), p
		} else {
			w := sink.Writer(sink.Config, senv)
			state, _ = w.(connector.StateStore)
			p := txn.NewSinkAtLeastOnce(opts, w, log)
			src, proto = kafkasrc.New(p.Client, log), p
		}
	case s.KafkaSrc != nil && exactlyOnce:
		opts := concat(base, s.KafkaSrc.ClientOptions(GroupInstanceID(cc.Name, env.InstanceID)), txnOpts, env.ClientOpts)
		p := txn.NewKafkaGroupTxn(opts, topic, log, onFenced)
		src, proto = kafkasrc.New(p.Client, log), p
		state = s.kafkaState(env)
	case s.KafkaSrc != nil:
		opts := concat(base, s.KafkaSrc.ClientOptions(GroupInstanceID(cc.Name, env.InstanceID)), env.ClientOpts)
		p := txn.NewKafkaAtLeastOnce(opts, topic, nil, log)
		src, proto = kafkasrc.New(p.Client, log), p
		state = s.kafkaState(env)
	default:
		// Any other source writes to Kafka (Decode refuses other sinks)
		// with its checkpoint in the offsets topic.
		var err error
		if src, err = s.Source.New(s.SourceConfig, cc.Name); err != nil {
			panic("pipeline: a source Decode accepted fails to build: " + err.Error())
		}
		store := &txn.OffsetsTopic{Topic: env.OffsetsTopic, Connector: cc.Name, Brokers: env.Brokers, Opts: env.ClientOpts}
		if exactlyOnce {
			proto = txn.NewOffsetsTopicTxn(concat(base, txnOpts, env.ClientOpts), topic, store, log)
		} else {
			proto = txn.NewKafkaAtLeastOnce(concat(base, env.ClientOpts), topic, store, log)
		}
	}
	if env.Stops != nil {
		if ks, ok := src.(*kafkasrc.Source); ok {
			if stops := env.Stops(cc.Name); stops != nil {
				ks.SetStops(stops)
			}
		}
	}
	if s.Processor.Window() != nil {
		// Each task has its own window state, kept in the sink beside
		// the output under the group's name.
		w := s.Processor.NewWindowed(s.KafkaSrc.Group, state)
		if env.Stops != nil {
			if stops := env.Stops(cc.Name); stops != nil {
				w.SetStops(stops)
			}
		}
		if exactlyOnce {
			var committed func(context.Context, connector.TopicPartition) (int64, bool, error)
			if ks, ok := state.(*kafkaStateStore); ok {
				committed = ks.Committed
			}
			w.Operator().SetExactlyOnce(committed)
		}
		if ks, ok := state.(*kafkaStateStore); ok {
			w.closeStore = ks.Close
		}
		return connector.New(opts, src, w, proto)
	}
	return connector.New(opts, src, s.Processor, proto)
}

// kafkaState is the window state store of a Kafka-sink connector (nil
// without a window stage): the compacted topic <group>-state, written in
// the batch's transaction by the protocol's producer.
func (s *Spec) kafkaState(env Env) connector.StateStore {
	if s.Processor.Window() == nil {
		return nil
	}
	return &kafkaStateStore{opts: concat([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, env.ClientOpts),
		ns: s.KafkaSrc.Group, inputs: s.KafkaSrc.Topics}
}

// buildFanout builds a connector with several sinks. exactly_once: a
// TwoPhase protocol, the Kafka transaction (output, offsets, decision)
// deciding for the other sinks, each a registered Participant.
// at_least_once: each sink's Writer in turn, then the group's offsets
// committed.
func (s *Spec) buildFanout(env Env, senv component.SinkEnv, base, txnOpts []kgo.Opt, onFenced func(), log *slog.Logger) (connector.Source, connector.Protocol) {
	cc := s.Conf
	if cc.Guarantee == config.ExactlyOnce {
		var parts []txn.Participant
		for _, f := range s.Sinks {
			if !f.Kafka {
				parts = append(parts, f.Participant(f.Config, senv))
			}
		}
		p := txn.NewTwoPhase(txn.TwoPhaseConfig{
			KafkaOpts:    concat(base, s.KafkaSrc.ClientOptions(GroupInstanceID(cc.Name, env.InstanceID)), txnOpts, env.ClientOpts),
			Topic:        s.KafkaSink.Topic,
			Participants: parts,
			Decisions:    &txn.OffsetsTopic{Topic: env.OffsetsTopic, Connector: cc.Name, Brokers: env.Brokers, Opts: env.ClientOpts},
			Connector:    cc.Name,
			Instance:     env.InstanceID,
			Group:        s.KafkaSrc.Group,
			TransactionalID: func(instance string) string {
				return TransactionalID(cc.Name, instance)
			},
			FenceOpts: concat([]kgo.Opt{kgo.SeedBrokers(env.Brokers...), kgo.TransactionTimeout(cc.TransactionTimeout.D())}, env.ClientOpts),
			OnFenced:  onFenced,
			Log:       log,
		})
		return kafkasrc.New(p.Client, log), p
	}
	var writers txn.FanoutWriter
	for _, f := range s.Sinks {
		writers = append(writers, f.Writer(f.Config, senv))
	}
	opts := concat([]kgo.Opt{kgo.SeedBrokers(env.Brokers...)}, s.KafkaSrc.ClientOptions(GroupInstanceID(cc.Name, env.InstanceID)), env.ClientOpts)
	p := txn.NewSinkAtLeastOnce(opts, writers, log)
	return kafkasrc.New(p.Client, log), p
}

// DLQTopic is the connector's dead-letter topic with errors.tolerance all
// or a window stage's late: dead_letter, or "" (neither).
func (s *Spec) DLQTopic() string {
	if s.Conf.DeadLetterQueue == nil {
		return ""
	}
	if s.Conf.ErrorsTolerance == "all" {
		return s.Conf.DeadLetterQueue.Topic
	}
	// A window stage with late: dead_letter sends late records there
	// whatever errors.tolerance says.
	if w := s.Processor.Window(); w != nil && w.Late == window.LateDeadLetter {
		return s.Conf.DeadLetterQueue.Topic
	}
	return ""
}

// TransactionalID is stable per connector and instance, so a restarted
// instance fences its own zombie, and unique across instances, so two
// instances never fence each other.
func TransactionalID(connectorName, instanceID string) string {
	return "connectd-" + connectorName + "-" + instanceID
}

// GroupInstanceID is a task's group.instance.id with static membership:
// stable across restarts of the same instance, so a restart takes the
// task's partitions back at once, and unique per connector and instance,
// so two connectors sharing a group never fence each other.
func GroupInstanceID(connectorName, instanceID string) string {
	return "connectd-" + connectorName + "-" + instanceID
}

func concat(parts ...[]kgo.Opt) []kgo.Opt {
	var out []kgo.Opt
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// fieldError positions a component's validation error at the field its
// message starts with ("topics: ..."), or at the component.
func fieldError(c config.Component, what string, err error) error {
	msg := err.Error()
	if field, rest, ok := strings.Cut(msg, ": "); ok && !strings.ContainsAny(field, " ") {
		return c.FieldErrorf(field, "%s: %s: %s", what, field, rest)
	}
	return c.Errorf("%s: %s", what, msg)
}

// fieldErrors positions each of a component's validation errors (one, or
// several joined) with fieldError.
func fieldErrors(c config.Component, what string, err error) []error {
	var out []error
	for _, e := range unjoin(err) {
		out = append(out, fieldError(c, what, e))
	}
	return out
}

// flatten merges errors into one config.Errors.
func flatten(errs []error) error { return config.Merge(errs...) }
