// Package component is connectd's registry of sources and sinks. Each
// source and sink package registers itself in an init function, as the
// transforms do (package transform): its type name, a summary, its config
// fields (documented, with defaults), how to decode and check its config,
// and what it can do under each delivery guarantee. The pipeline builds
// connectors, the offsets API finds checkpoints, `connectd list`, the admin
// API's GET /connector-plugins and docs/components.md describe the
// components, all from this registry alone; adding a sink is one package
// plus one import line in package component/all.
//
// The exactly-once contract a sink signs by registering a Store is
// connector.SinkStore's: claims with epochs, and a batch's output committed with
// its checkpoint in one atomic unit, compare-and-set on the claim epochs.
// Package sink/sinktest is the conformance suite that holds a store to it.
package component

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// Field documents one config field of a component.
// Its JSON form is what GET /connector-plugins/{plugin}/config answers,
// after Kafka Connect's ConfigKeyInfo.
type Field struct {
	// Name is the YAML key.
	Name string `json:"name"`
	// Type is the YAML value's type as users write it: string, int,
	// float, bool, duration, list of strings, map of strings, object.
	Type string `json:"type"`
	// Default is the value used when the field is absent ("" for none).
	Default string `json:"default_value"`
	// Description says what the field does, in one or two sentences.
	Description string `json:"documentation"`
	// Required fields must be set.
	Required bool `json:"required"`
	// Secret fields are masked wherever a config is shown.
	Secret bool `json:"secret"`
}

// Config is a sink's decoded config. Validate applies defaults and checks
// it without connecting; an error starting with a field name ("table: ...")
// is positioned at that field in the YAML file.
type Config interface {
	Validate() error
}

// SinkEnv is what a sink's constructors get from the connector that runs
// them.
type SinkEnv struct {
	// Connector is the connector's name (tables and keys are shared by
	// connectors, so rows and checkpoints are kept per connector).
	Connector string
	// DLQTopic is the connector's dead-letter topic, or "": records
	// carrying the dead-letter headers (connector.HeaderDLQStage...)
	// are dead letters, to be written where the sink keeps them.
	DLQTopic string
	// KafkaOpts are a Kafka producer's options (seed brokers, batching,
	// the daemon's client options), for sinks that write to Kafka.
	KafkaOpts []kgo.Opt
	Log       *slog.Logger
}

// Sink describes a registered sink.
//
// Constructors must not connect: they run when a connector is built, and a
// server that is down then must be a retried, abortable failure of the
// first commit (as it is of any later one), not a failure to start.
type Sink struct {
	// Name is the `type:` that selects the sink.
	Name string
	// Summary is one line for listings.
	Summary string
	// Fields document the config; a test checks them against the
	// config struct's yaml tags.
	Fields []Field
	// NewConfig returns a new zero config (a pointer) to decode into.
	NewConfig func() Config
	// Kafka marks the Kafka sink, whose output the Kafka commit
	// protocols of package txn produce themselves (in the consumer's
	// transaction); it has no Store.
	Kafka bool
	// Checkpoint says where Store keeps the checkpoint, for messages
	// ("the offsets table"); "" with no Store.
	Checkpoint string
	// Store returns the exactly-once store: output and checkpoint per
	// Kafka partition committed together (txn.SinkOffsets drives it).
	// nil: the sink cannot commit exactly once on its own. A store
	// that also implements connector.StateStore keeps a window stage's
	// state in the same commits (set WindowState).
	Store func(cfg Config, env SinkEnv) connector.SinkStore
	// Writer returns the at-least-once writer (txn.SinkAtLeastOnce,
	// or one leg of an at-least-once fan-out). nil: none.
	Writer func(cfg Config, env SinkEnv) connector.SinkWriter
	// Participant returns the sink as a two-phase commit participant
	// (a leg of an exactly-once fan-out). nil: it cannot prepare.
	Participant func(cfg Config, env SinkEnv) connector.Participant
	// Checkpoints opens the checkpoint Store keeps, for the offsets API
	// (it may connect). nil with no Store.
	Checkpoints func(ctx context.Context, cfg Config, env SinkEnv) (CheckpointStore, error)
	// WindowState: the values Store and Writer return implement
	// connector.StateStore, so a window stage can run before the sink.
	WindowState bool
	// Probe opens the sink's output for the exactly-once checker
	// (package verify), which reads what the sink holds through it and
	// compares it with what the input says it must hold. nil: verify
	// cannot check the sink.
	Probe func(cfg Config, env SinkEnv) (Probe, error)
	// Replay makes the sink's output versionable for a Kappa replay
	// (package kappa). nil: a connector writing to it cannot be replayed
	// beside itself.
	Replay *Replay
}

// Replay is how a Kappa replay versions a sink's outputs, so that the
// shadow connector writes beside the live one, and how a promote moves the
// readers to the shadow's.
type Replay struct {
	// Outputs are the config fields naming the sink's outputs.
	Outputs []VersionedField
	// Cutover moves readers to the outputs cfg names (the shadow's), in
	// one atomic step where the sink has a reader-facing alias, and is
	// idempotent (a promote interrupted by a crash is done again).
	Cutover func(ctx context.Context, cfg Config) (Switch, error)
}

// VersionedField is one config field naming an output: version v of
// value x is x+Sep+v (a table "orders" becomes "orders_v2"), or with Sep
// "v" a key prefix ("orders:" becomes "orders:v2:").
type VersionedField struct {
	Field string
	Sep   string
	// Always versions the field when absent or empty too (a Redis key
	// prefix "" becomes "v2:"); otherwise an empty field is left alone.
	Always bool
}

// Switch is what a promote did for the readers of one sink.
type Switch struct {
	Sink string `json:"sink"` // the sink's type name
	// Readers is what readers use: a PostgreSQL view, a Redis prefix
	// key; empty for a Kafka topic (Kafka has no aliases).
	Readers string `json:"readers,omitempty"`
	// From is what Readers named before (the live connector's output),
	// To what it names now (the shadow's).
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	// Switched says whether readers were moved; when false, Note says
	// what the operator has to do.
	Switched bool   `json:"switched"`
	Note     string `json:"note,omitempty"`
}

// Probe is the checker's view of a sink's output.
type Probe interface {
	// Snapshot reads the output and, withCheckpoint, the checkpoint the
	// sink keeps for group, in one consistent view (what a commit made
	// visible, together). IDs are the output's identities, one per copy
	// (a duplicate appears twice), each qualified by where it is
	// ("<file or table>:<event id>") as Route qualifies them. A non-nil
	// below keeps only output whose origin it contains (an
	// at_least_once sink's later batches); with stopped the others are
	// returned in Beyond instead of dropped.
	Snapshot(ctx context.Context, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool) (ProbeSnapshot, error)
	// Route is the location where the sink puts r (dead letters,
	// records of dlqTopic, go where the sink keeps them), as Snapshot's
	// IDs name it.
	Route(r *connector.Record, dlqTopic string) string
	Close()
}

// ApplyCounter is a Probe that counts, with the test apply counters its
// sink keeps, how many expected outputs (qualified as Snapshot's IDs) were
// not applied exactly once; verify asks it after Snapshot.
type ApplyCounter interface {
	ApplyCountViolations(ctx context.Context, expected []string) (int, error)
}

// ProbeSnapshot is what a Probe read.
type ProbeSnapshot struct {
	Checkpoint connector.Checkpoint
	IDs        []string
	Beyond     []string
	// ApplyCountViolations counts outputs applied more than once where
	// the sink can tell (a test apply counter).
	ApplyCountViolations int
}

// CheckpointStore reads and changes the checkpoints a sink keeps.
type CheckpointStore interface {
	connector.CheckpointAdmin
	Close()
}

// SourceConfig is a source's decoded config; Validate gets the connector's
// name (defaults such as the consumer group derive from it).
type SourceConfig interface {
	Validate(connector string) error
}

// Source describes a registered source.
type Source struct {
	Name    string
	Summary string
	Fields  []Field
	// NewConfig returns a new zero config (a pointer) to decode into.
	NewConfig func() SourceConfig
	// ConsumerGroup marks the Kafka source: read through a consumer
	// group whose client the commit protocols own (offsets commit in
	// the Kafka transaction, or are kept per partition in the sink).
	// Such a source can be split into tasks.
	ConsumerGroup bool
	// New builds any other source; its checkpoint is kept in the
	// daemon's offsets topic, written in the batch's transaction.
	New func(cfg SourceConfig, connector string) (connector.Source, error)
	// End, for a source that can be finite, returns the checkpoint at
	// which all its records are read (a bounded run stops there and
	// starts every partition it names at 0), or an error saying why this
	// config never ends. nil: the source is not finite by itself (the
	// Kafka source is bounded by its topics' offsets instead).
	End func(cfg SourceConfig, connector string) (connector.Checkpoint, error)
}

var (
	mu      sync.RWMutex
	sinks   = map[string]Sink{}
	sources = map[string]Source{}
)

// RegisterSink adds s; it panics on a duplicate or incomplete registration
// (a programming error, caught by any test that links the package).
func RegisterSink(s Sink) {
	switch {
	case s.Name == "" || s.NewConfig == nil:
		panic("component: a sink needs a name and NewConfig")
	case !s.Kafka && s.Store == nil && s.Writer == nil:
		panic(fmt.Sprintf("component: sink %q has neither a Store nor a Writer", s.Name))
	case s.Store != nil && (s.Checkpoint == "" || s.Checkpoints == nil):
		panic(fmt.Sprintf("component: sink %q has a Store but no Checkpoint/Checkpoints", s.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := sinks[s.Name]; dup {
		panic(fmt.Sprintf("component: sink %q registered twice", s.Name))
	}
	sinks[s.Name] = s
}

// RegisterSource adds s; it panics on a duplicate or incomplete one.
func RegisterSource(s Source) {
	if s.Name == "" || s.NewConfig == nil || (!s.ConsumerGroup && s.New == nil) {
		panic(fmt.Sprintf("component: source %q needs a name, NewConfig, and New unless it is a consumer group", s.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := sources[s.Name]; dup {
		panic(fmt.Sprintf("component: source %q registered twice", s.Name))
	}
	sources[s.Name] = s
}

// LookupSink returns the sink registered as name.
func LookupSink(name string) (Sink, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := sinks[name]
	return s, ok
}

// LookupSource returns the source registered as name.
func LookupSource(name string) (Source, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := sources[name]
	return s, ok
}

// Sinks returns every registered sink, by name.
func Sinks() []Sink {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Sink, 0, len(sinks))
	for _, s := range sinks {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Sources returns every registered source, by name.
func Sources() []Source {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Source, 0, len(sources))
	for _, s := range sources {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SinkNames and SourceNames are the registered type names, sorted.
func SinkNames() []string {
	var names []string
	for _, s := range Sinks() {
		names = append(names, s.Name)
	}
	return names
}

// SourceNames: see SinkNames.
func SourceNames() []string {
	var names []string
	for _, s := range Sources() {
		names = append(names, s.Name)
	}
	return names
}

// Guarantees lists what a sink can do, for listings: "exactly_once" (a
// Store, or the Kafka sink's transactions), "two_phase" (a Participant),
// "at_least_once".
func (s Sink) Guarantees() []string {
	var g []string
	if s.Store != nil || s.Kafka {
		g = append(g, "exactly_once")
	}
	if s.Participant != nil {
		g = append(g, "two_phase")
	}
	if s.Writer != nil || s.Kafka {
		g = append(g, "at_least_once")
	}
	return g
}
