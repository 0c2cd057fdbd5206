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
	// DefaultBoundedBatchMaxRecords and DefaultBoundedCommitInterval are
	// a bounded run's defaults (connectd run --until; BoundedDefaults).
	// Measured with the benchmark harness (-matrix bounded-sweep), bounded
	// runs over 1,000,000 records of 100 B in 12 partitions, exactly_once,
	// records/s over the whole run, two rounds each on a shared 2-core
	// machine:
	//
	//   - The batch size is what pays. A streaming drain commits every
	//     10,000 records and spent 58% of its time committing (issue 9).
	//     Into Kafka: 10,000 records 283k-328k, 50,000 435k-488k, 100,000
	//     484k-488k, 200,000 433k. Into PostgreSQL: 10,000 81k, 50,000
	//     92k-113k, 100,000 95k-117k, 200,000 92k-107k.
	//   - Memory caps it. A batch's records are held until it commits (by
	//     the producer until acknowledged; by the PostgreSQL and Redis
	//     sinks, which write at commit). Peak RSS with 100 B records:
	//     149-158 MiB at 50,000, 172-223 MiB at 100,000, 205-310 MiB at
	//     200,000; with 1 KB records into Kafka and PostgreSQL: 185 and
	//     239 MiB at 50,000, 227 and 310 MiB at 100,000 (300,000 records,
	//     one round). 50,000 is the largest that stays within issue 9's
	//     256 MiB.
	//   - The interval hardly matters: at full speed a 50,000-record
	//     batch fills in about 0.1 s, and the batch that reads the end of
	//     the input commits at once (connector.Options.Stops), so 250 ms
	//     and 1 s measured alike. 1 s bounds the commits of a slow input
	//     to one a second.
	DefaultBoundedBatchMaxRecords = 50000
	DefaultBoundedCommitInterval  = time.Second
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
	applyClusterDefaults(c.Cluster, set)
	for i := range c.Connectors {
		applyConnectorDefaults(&c.Connectors[i], connectorPath(i), set)
	}
}

func applyConnectorDefaults(c *Connector, p string, set func(string) bool) {
	if !set(p + ".guarantee") {
		c.Guarantee = DefaultGuarantee
	}
	c.Explicit = Explicit{CommitInterval: set(p + ".commit.interval"), BatchMaxRecords: set(p + ".batch.max.records")}
	if !c.Explicit.CommitInterval {
		c.CommitInterval = Duration(DefaultCommitInterval)
	}
	if !c.Explicit.BatchMaxRecords {
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

// BoundedDefaults gives c the bounded-run defaults for commit.interval and
// batch.max.records where its config left them out; a value the config set
// stays. A bounded run is a batch job over input that is all there when it
// starts: nobody waits for a record to become visible before the job ends,
// so its batching is chosen for throughput instead of latency.
func (c *Connector) BoundedDefaults() {
	if !c.Explicit.CommitInterval && c.TransactionTimeout.D() > DefaultBoundedCommitInterval+transactionSlack {
		// (A transaction.timeout set too short for the longer interval
		// keeps the streaming one, which validation accepted.)
		c.CommitInterval = Duration(DefaultBoundedCommitInterval)
	}
	if !c.Explicit.BatchMaxRecords {
		c.BatchMaxRecords = DefaultBoundedBatchMaxRecords
	}
}
