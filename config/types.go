// Package config loads connectd's YAML configuration: strict decoding (unknown
// keys are errors), ${VAR} and ${VAR:default} expansion in string values, and
// every problem reported at once as FILE:LINE:COL: message.
package config

import "time"

// Config is a whole connectd configuration file.
type Config struct {
	Admin      Admin       `yaml:"admin"`
	Kafka      Kafka       `yaml:"kafka"`
	Connectors []Connector `yaml:"connectors"`
	// InstanceID names this daemon among the instances running the same
	// connectors; it makes each instance's Kafka transactional IDs stable
	// across its restarts and unique across instances. Default: the host
	// name.
	InstanceID string `yaml:"instance_id"`
	// OffsetsTopic is the compacted topic where connectors whose source is
	// not a Kafka consumer group keep their checkpoints. Default
	// "_connectd-offsets".
	OffsetsTopic string `yaml:"offsets_topic"`
	// Cluster, when set, makes this daemon a member of a connectd cluster
	// coordinated through Kafka (package cluster). Nil: a standalone
	// daemon.
	Cluster *Cluster `yaml:"cluster"`
	// Path is the file this config was loaded from (not a YAML field).
	Path string `yaml:"-"`
}

// Admin configures the HTTP admin API.
type Admin struct {
	// Listen is the admin API address. Default 127.0.0.1:8083 (Kafka
	// Connect's port, loopback only).
	Listen string `yaml:"listen"`
	// StateFile keeps what the admin API changed (connectors created,
	// reconfigured, stopped or deleted) across restarts. Empty: such
	// changes last until the daemon stops.
	StateFile string `yaml:"state_file"`
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every route but the probes /health and /ready. Write it as ${VAR}
	// so it stays out of the file.
	Token string `yaml:"token"`
	// Auth says which routes need the token: "all" (default) or
	// "writes" (GET and HEAD open, every write needs it).
	Auth string `yaml:"auth"`
	// TLS serves the admin API over HTTPS (and, with a client CA, mutual
	// TLS). Nil: plain HTTP.
	TLS *AdminTLS `yaml:"tls"`
}

// Kafka says which Kafka cluster connectors talk to: external brokers, or the
// embedded in-process broker (franz-go's kfake).
type Kafka struct {
	Brokers  []string  `yaml:"brokers"`
	Embedded *Embedded `yaml:"embedded"`
	// TLS and SASL secure every client connectd opens to the brokers
	// (pipelines, verify, the admin API's offsets and transactions
	// routes); the embedded broker speaks plaintext only.
	TLS  *TLS  `yaml:"tls"`
	SASL *SASL `yaml:"sasl"`
}

// Embedded configures the in-process broker started with the daemon.
type Embedded struct {
	// Listen is the broker address. Default 127.0.0.1:9092.
	Listen string `yaml:"listen"`
	// DataDir persists the broker's log across restarts. Empty keeps
	// everything in memory.
	DataDir string `yaml:"data_dir"`
	// Partitions is the default partition count of auto-created topics.
	// Default 3.
	Partitions int32 `yaml:"partitions"`
}

// Guarantee is the delivery guarantee of a connector.
type Guarantee string

const (
	ExactlyOnce Guarantee = "exactly_once"
	AtLeastOnce Guarantee = "at_least_once"
)

// Connector is one named pipeline: source → transforms → sink (or sinks).
type Connector struct {
	Name      string    `yaml:"name"`
	Guarantee Guarantee `yaml:"guarantee"` // default exactly_once
	// CommitInterval is the commit cadence: a batch closes one interval
	// after the previous one closed (and stays open at least half an
	// interval). Default 100ms.
	CommitInterval Duration `yaml:"commit.interval"`
	// BatchMaxRecords bounds the input records in one batch. Default 10000.
	BatchMaxRecords int `yaml:"batch.max.records"`
	// Tasks is how many members of the source's consumer group this
	// process runs for the connector (Kafka Connect's tasks.max), each on
	// its own share of the partitions with its own transactional ID, so
	// that one task's commit overlaps the others' reading and producing.
	// Default 1; more needs a Kafka source.
	Tasks int `yaml:"tasks"`
	// TransactionTimeout is the Kafka transaction.timeout.ms of the
	// connector's transactional producer. Default 60s; must exceed
	// commit.interval plus the worst-case commit time.
	TransactionTimeout Duration `yaml:"transaction.timeout"`
	// ShutdownTimeout bounds how long a stop waits for the open batch to
	// commit or abort. Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	EventID         EventID  `yaml:"event_id"`
	// ErrorsTolerance is Kafka Connect's errors.tolerance: "none" (a record
	// that fails a transform fails the connector) or "all" (it goes to the
	// dead-letter queue). Default none.
	ErrorsTolerance string           `yaml:"errors.tolerance"`
	DeadLetterQueue *DeadLetterQueue `yaml:"dead_letter_queue"`
	Source          Component        `yaml:"source"`
	Transforms      []Component      `yaml:"transforms"`
	Sink            Component        `yaml:"sink"`
	// Sinks, instead of Sink, fans every record out to several sinks. With
	// exactly_once a batch lands in all of them or in none, by two-phase
	// commit (see package txn); with at_least_once each is written in turn,
	// then the offsets are committed.
	Sinks []Component `yaml:"sinks"`
	// Bounded, if set, makes the connector a bounded job each time it
	// starts (see Bounded).
	Bounded *Bounded `yaml:"bounded,omitempty"`

	// Pos is where the connector is defined (not a YAML field).
	Pos Position `yaml:"-"`
	// Written is the connector's definition as the config file has it,
	// as JSON with ${VAR} and ${file:} references unexpanded (not a YAML
	// field; set by Parse, nil for a definition given through the API).
	Written []byte `yaml:"-" json:"-"`
	// Explicit says which keys with a bounded-run default the config set
	// itself (not a YAML field): a bounded run gives the others
	// BoundedDefaults, an explicit value always wins.
	Explicit Explicit `yaml:"-" json:"-"`
}

// Explicit records which of a connector's keys whose default depends on
// the run mode were written in its config.
type Explicit struct {
	CommitInterval, BatchMaxRecords bool
}

// EventID says where a record's event ID comes from.
type EventID struct {
	// From is header (default), json, key or derived.
	From string `yaml:"from"`
	// Header is the header name with from: header. Default "event-id".
	Header string `yaml:"header"`
	// Field is the JSON path (dot separated) with from: json.
	Field string `yaml:"field"`
}

// DeadLetterQueue names where records that fail go with errors.tolerance: all.
type DeadLetterQueue struct {
	Topic string `yaml:"topic"`
}

// Duration is a time.Duration written as a Go duration string ("100ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Position is a place in a config file, 1-based.
type Position struct {
	File   string
	Line   int
	Column int
}

// Component is a pluggable part of a connector (source, transform or sink):
// its Type picks the implementation from a registry, and the remaining keys
// are that implementation's own config, decoded later by Decode against the
// implementation's spec so errors still carry file:line:col.
type Component struct {
	Type string
	Pos  Position
	// node holds the YAML mapping (an ast.Node from goccy/go-yaml) with
	// positions, kept for Decode.
	node any
}

// SinkList returns the connector's sinks: Sinks, or Sink alone.
func (c *Connector) SinkList() []Component {
	if len(c.Sinks) > 0 {
		return c.Sinks
	}
	return []Component{c.Sink}
}
