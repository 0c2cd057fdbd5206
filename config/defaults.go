package config

import "time"

// Defaults, exported so the daemon, docs and tests use the same values.
const (
	// DefaultAdminListen is Kafka Connect's REST port, bound to loopback so a
	// fresh install does not expose an unauthenticated admin API.
	DefaultAdminListen = "127.0.0.1:8083"
	// DefaultEmbeddedListen is Kafka's usual port, so clients configured for
	// a local broker find the embedded one.
	DefaultEmbeddedListen = "127.0.0.1:9092"
	// DefaultEmbeddedPartitions for auto-created topics: more than one so
	// partition-level behaviour (rebalances, per-partition checkpoints) is
	// exercised even in a demo.
	DefaultEmbeddedPartitions int32 = 3
	// DefaultGuarantee is what connectd exists for.
	DefaultGuarantee = ExactlyOnce
	// DefaultCommitInterval trades latency (a record is visible to
	// read_committed readers only after its batch commits) against the
	// per-commit cost of a transaction.
	DefaultCommitInterval = 100 * time.Millisecond
	// DefaultBatchMaxRecords bounds the memory and the redo work of one batch.
	DefaultBatchMaxRecords = 10000
	// DefaultTasks is one consumer-group member per connector and process.
	DefaultTasks = 1
	// MaxTasks bounds tasks: more members than that in one process only
	// multiplies connections and commits.
	MaxTasks = 64
	// DefaultTransactionTimeout is the Java producer's transaction.timeout.ms
	// default (60000).
	DefaultTransactionTimeout = 60 * time.Second
	// DefaultShutdownTimeout gives the open batch time to commit on stop.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultEventIDFrom reads the event ID from a record header.
	DefaultEventIDFrom = "header"
	// DefaultEventIDHeader is the header name with event_id.from: header.
	DefaultEventIDHeader = "event-id"
	// DefaultErrorsTolerance is Kafka Connect's default: fail fast rather
	// than silently divert records.
	DefaultErrorsTolerance = "none"
)

// applyDefaults fills keys the file leaves out. A key that is present keeps
// its value even when it is zero, so "batch.max.records: 0" is reported by
// validation instead of silently becoming 10000.
func applyDefaults(c *Config, spans map[string]span) {
	set := func(path string) bool { _, ok := spans[path]; return ok }
	if !set("admin.listen") {
		c.Admin.Listen = DefaultAdminListen
	}
	if e := c.Kafka.Embedded; e != nil {
		if !set("kafka.embedded.listen") {
			e.Listen = DefaultEmbeddedListen
		}
		if !set("kafka.embedded.partitions") {
			e.Partitions = DefaultEmbeddedPartitions
		}
	}
	for i := range c.Connectors {
		applyConnectorDefaults(&c.Connectors[i], connectorPath(i), set)
	}
}

func applyConnectorDefaults(c *Connector, p string, set func(string) bool) {
	if !set(p + ".guarantee") {
		c.Guarantee = DefaultGuarantee
	}
	if !set(p + ".commit.interval") {
		c.CommitInterval = Duration(DefaultCommitInterval)
	}
	if !set(p + ".batch.max.records") {
		c.BatchMaxRecords = DefaultBatchMaxRecords
	}
	if !set(p + ".tasks") {
		c.Tasks = DefaultTasks
	}
	if !set(p + ".transaction.timeout") {
		c.TransactionTimeout = Duration(DefaultTransactionTimeout)
	}
	if !set(p + ".shutdown_timeout") {
		c.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	if !set(p + ".event_id.from") {
		c.EventID.From = DefaultEventIDFrom
	}
	if !set(p + ".event_id.header") {
		c.EventID.Header = DefaultEventIDHeader
	}
	if !set(p + ".errors.tolerance") {
		c.ErrorsTolerance = DefaultErrorsTolerance
	}
}
