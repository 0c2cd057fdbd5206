package faults

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/sink/files"
	sinkpg "github.com/connectd/connectd/sink/postgres"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

// A sink setup is one row family of the matrix. Every scenario runs each
// setup with both guarantees as separate connectors of the same daemons
// (each with its own group, outputs and checkpoint), so one fault schedule
// hits every cell at once. The two-phase Kafka + PostgreSQL fan-out of
// issue 6 is meant to be one more entry here.
type sinkSetup struct {
	name string
	// short names the setup in connector, topic and table names ("":
	// name).
	short string
	// window: the connector aggregates its input in event-time windows
	// (windowTransform) and writes window results, exactly_once only. It
	// runs in the scenarios that list base (scenario.windowed).
	window bool
	base   string
	// yaml is the connector's sink block for c: "sink:" or "sinks:" and
	// the lines under it, indented with tabs from the connector's level.
	yaml func(r *run, c *conn) string
	// ordered: the sink shows its outputs in an order it promises per key
	// (a Kafka topic per partition, the Redis audit log).
	ordered bool
	// kafkaOut: the connector writes the output and dead-letter topics;
	// pgTable: it writes a PostgreSQL table (c.table); files: it writes
	// Parquet files under c.dir, which DuckDB reads as an outside witness.
	kafkaOut, pgTable, files bool
}

var sinkSetups = slices.Concat(plainSetups, windowedSetups)

var plainSetups = []sinkSetup{
	{name: "kafka", ordered: true, kafkaOut: true, yaml: func(r *run, c *conn) string {
		return "\t\tsink:\n" + lines(3, kafkaSink(c)...)
	}},
	{name: "postgres", pgTable: true, yaml: func(r *run, c *conn) string {
		return "\t\tsink:\n" + lines(3, postgresSink(r, c)...)
	}},
	{name: "redis", ordered: true, yaml: func(r *run, c *conn) string {
		return "\t\tsink:\n" + lines(3, "type: redis",
			fmt.Sprintf("addr: %q", r.e.redisProxy.Addr()),
			fmt.Sprintf("key_prefix: %q", c.prefix),
			`key: "ev:{event_id}"`,
			"audit_log: true",
			"test_apply_counter: true",
			"timeout: 5s")
	}},
	// The files sink (issue 18): Parquet in hourly Hive directories under
	// the run's directory, on this host's disk (the daemons are host
	// processes). Files roll every 2s or 256KiB, so rolls, staged rows
	// and the manifest's renames are all in flight when the faults hit.
	{name: "files", files: true, yaml: func(r *run, c *conn) string {
		return "\t\tsink:\n" + lines(3, "type: files",
			fmt.Sprintf("path: %q", c.dir),
			"format: parquet",
			"roll: {max_bytes: 256KiB, max_interval: 2s}",
			"columns:",
			"\tamount: json:amount::int64",
			"\ti: json:i::int64")
	}},
	// Issue 6's fan-out: every record to the output topic and the table;
	// exactly_once by two-phase commit (PREPARE, the Kafka transaction with
	// its decision record, COMMIT PREPARED), at_least_once each sink in
	// turn.
	{name: "kafka+postgres (2PC)", ordered: true, kafkaOut: true, pgTable: true, yaml: func(r *run, c *conn) string {
		k, p := kafkaSink(c), postgresSink(r, c)
		return "\t\tsinks:\n" + lines(3, append([]string{"- " + k[0]}, indent(k[1:])...)...) + "\n" +
			lines(3, append([]string{"- " + p[0]}, indent(p[1:])...)...)
	}},
}

// The windowed setups: the same sinks behind a window stage, whose state
// commits with the results and the offsets (the compacted state topic in
// the Kafka transaction, the state table in the PostgreSQL transaction,
// the state hash in the Redis script) and is restored from there after a
// crash, an abort or a rebalance. verify's batch oracle recomputes every
// window from the input and compares it value for value, so the
// PostgreSQL columns and the Redis values hold the results' fields.
var windowedSetups = []sinkSetup{
	{name: "kafka windowed", short: "wkafka", window: true, base: "kafka", ordered: true, kafkaOut: true,
		yaml: func(r *run, c *conn) string { return "\t\tsink:\n" + lines(3, kafkaSink(c)...) }},
	{name: "postgres windowed", short: "wpostgres", window: true, base: "postgres", pgTable: true, yaml: func(r *run, c *conn) string {
		return "\t\tsink:\n" + lines(3, "type: postgres",
			fmt.Sprintf("dsn: %q", r.e.pgDSN()),
			"table: "+c.table,
			"auto_create: true",
			"test_apply_counter: true",
			"columns:",
			"\twkey: json:key",
			"\twindow_start: json:window_start",
			"\tn: json:n::bigint",
			"\ttotal: json:total::numeric")
	}},
	// The default key template ({event_id}): verify reads each result's
	// value back by its event ID.
	{name: "redis windowed", short: "wredis", window: true, base: "redis", ordered: true, yaml: func(r *run, c *conn) string {
		return "\t\tsink:\n" + lines(3, "type: redis",
			fmt.Sprintf("addr: %q", r.e.redisProxy.Addr()),
			fmt.Sprintf("key_prefix: %q", c.prefix),
			"audit_log: true",
			"test_apply_counter: true",
			"timeout: 5s")
	}},
}

// The windowed connectors' event time is value.i * windowTick ms (the
// input's sequence number, rising per partition, so windows keep closing
// while the input grows); tumbling windows of windowSize ms (about ten
// events per key and window: a tenth of the input's volume comes out) and
// a watermark windowOOO behind the highest event time.
const (
	windowTick = 10
	windowSize = 10_000
	windowOOO  = 2_000
)

// windowTransform is the window stage of the windowed connectors, after
// the set transform (which dead-letters the poison events first).
func windowTransform() string {
	return lines(3, "- type: window",
		fmt.Sprintf("\ttime: value.i * %d", windowTick),
		fmt.Sprintf("\twindow: {type: tumbling, size: %dms}", windowSize),
		fmt.Sprintf("\twatermark: {max_out_of_orderness: %dms}", windowOOO),
		"\tlate: drop",
		"\taggregate:",
		"\t\tn: count()",
		"\t\ttotal: sum(value.amount)")
}

func kafkaSink(c *conn) []string { return []string{"type: kafka", "topic: " + c.out} }

func postgresSink(r *run, c *conn) []string {
	return []string{"type: postgres",
		fmt.Sprintf("dsn: %q", r.e.pgDSN()),
		"table: " + c.table,
		"auto_create: true",
		"test_apply_counter: true",
		"columns:",
		"\tamount: json:amount::numeric",
		"\ti: json:i::bigint",
		"\tsrc_topic: topic",
		"\tsrc_partition: partition",
		"\tsrc_offset: offset"}
}

// lines indents each line by depth tabs and joins them.
func lines(depth int, ls ...string) string {
	tabs := strings.Repeat("\t", depth)
	return tabs + strings.Join(ls, "\n"+tabs)
}

// indent puts list-item continuation lines under the item ("- ").
func indent(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = "  " + l
	}
	return out
}

// conn is one connector of a scenario: a sink setup with a guarantee.
type conn struct {
	name      string // <sink>-eo / <sink>-alo
	setup     sinkSetup
	guarantee string
	group     string
	out, dlq  string // Kafka output and dead-letter topics (the DLQ names dead letters for every sink)
	table     string // PostgreSQL table
	prefix    string // Redis key prefix
	dir       string // the files sink's root directory
	spec      *pipeline.Spec
}

func (c *conn) exactlyOnce() bool { return c.guarantee == "exactly_once" }

// connectorYAML is c's entry in the daemon config: input → set {copied:
// true} (→ window) → sink, poison records to the dead-letter queue.
func (r *run) connectorYAML(c *conn) string {
	window := ""
	if c.setup.window {
		window = windowTransform() + "\n"
	}
	return fmt.Sprintf(`	- name: %s
		guarantee: %s
		commit.interval: 100ms
		transaction.timeout: %s
		shutdown_timeout: %s
		errors.tolerance: all
		dead_letter_queue:
			topic: %s
		event_id: {from: header}
		source:
			type: kafka
			topics: [%s]
			group: %s
			session_timeout: %s
		transforms:
			- type: set
				fields: {copied: true}
%s%s
`, c.name, c.guarantee, r.sc.txnTimeout, r.shutdown, c.dlq, r.in, c.group, r.sc.sessionTimeout, window, c.setup.yaml(r, c))
}

// checkpoint reads c's stored checkpoint where its commit protocol
// resumes from, through the same store the offsets API uses
// (pipeline.Offsets): the sink's own for an exactly-once connector whose
// sink keeps it (the sink is the truth there), the group's committed
// offsets otherwise.
func (r *run) checkpoint(c *conn) (connector.Checkpoint, error) {
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	return pipeline.Offsets(c.spec, pipeline.Env{Brokers: r.e.brokers}).Get(ctx)
}

// redisConfig is c's Redis sink config pointed straight at the container.
func (r *run) redisConfig(c *conn) sinkredis.Config {
	rc := *soloRedis(c)
	rc.Addr = *r.e.redisDirect.Load()
	return rc
}

// observe reads everything the invariants need about c after the run.
func (r *run) observe(c *conn, bounds map[connector.TopicPartition]Bound) Observation {
	r.t.Helper()
	o := Observation{Ordered: c.setup.ordered, Bounds: bounds}
	ctx, cancel := ctxFor(5 * time.Minute)
	defer cancel()
	// Stopped: every instance has exited after the final drain, so output
	// beyond the checkpoint is not a later batch's, it is unexpected.
	rep, err := verify.Run(ctx, verify.Options{Spec: c.spec, Brokers: r.e.brokers, Stopped: true})
	if err != nil {
		r.t.Fatalf("verify %s: %v\n%s", c.name, err, r.e.brokerHealth())
	}
	o.Report = rep
	if o.Checkpoint, err = r.checkpoint(c); err != nil {
		r.t.Fatalf("checkpoint of %s: %v", c.name, err)
	}
	o.DeadLetters = map[string][]string{}
	if c.setup.pgTable {
		rows, dead := r.pgIDs(c)
		o.Scanned = append(rows, dead...)
		o.DeadLetters["table "+pgConfig(c).DLQTable] = dead
	}
	if soloRedis(c) != nil {
		o.Outputs = r.redisAudit(c)
		var dead []string
		for _, out := range o.Outputs {
			if out.Stream == sinkredis.AuditTargetDLQ {
				dead = append(dead, out.ID)
			}
		}
		o.DeadLetters["redis dlq"] = dead
	}
	if c.setup.files {
		r.observeFiles(c, &o)
	}
	if c.setup.kafkaOut {
		w := r.watchers[c.name]
		w.catchUp(r.t, r.e, 3*time.Minute)
		o.Outputs, o.Watched = w.result()
		var dead []string
		for _, out := range o.Outputs {
			if strings.HasPrefix(out.Stream, c.dlq+"/") {
				dead = append(dead, out.ID)
			}
		}
		o.DeadLetters["topic "+c.dlq] = dead
	}
	if c.exactlyOnce() && c.setup.kafkaOut {
		hanging, err := r.e.ongoingTransactions(pipeline.TransactionalID(c.name, r.runID+"-"))
		if err != nil {
			r.t.Fatalf("list transactions: %v", err)
		}
		o.Hanging = hanging
	}
	// Prepared transactions of a two-phase connector still in doubt at
	// quiesce are hanging transactions too.
	for i := 0; i < rep.Prepared; i++ {
		o.Hanging = append(o.Hanging, "a PostgreSQL prepared transaction in doubt")
	}
	return o
}

// pgIDs are the event IDs of c's table and of its dead-letter table.
func (r *run) pgIDs(c *conn) (rows, dead []string) {
	r.t.Helper()
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.e.pgDirectDSN())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	pg := pgConfig(c)
	for _, t := range []struct {
		name string
		ids  *[]string
	}{{pg.QuotedTable(), &rows}, {pg.QuotedDLQTable(), &dead}} {
		res, _ := conn.Query(ctx, "SELECT event_id FROM "+t.name)
		var id string
		if _, err := pgx.ForEachRow(res, []any{&id}, func() error {
			*t.ids = append(*t.ids, id)
			return nil
		}); err != nil && !strings.Contains(err.Error(), "does not exist") {
			r.t.Fatalf("%s: %v", t.name, err)
		}
	}
	return rows, dead
}

// observeFiles reads c's files the way the sink's probe does (the rows
// the manifest lists, in files or staged, and the connector's files it
// does not list), for the aborted-event and dead-letter checks, and has
// DuckDB read the directory as a user would: for an exactly-once
// connector it must see each event ID once and exactly the rows the
// manifest lists in files (no uncommitted, unlisted or half-written file).
func (r *run) observeFiles(c *conn, o *Observation) {
	r.t.Helper()
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	cfg, _ := pipeline.SinkConfig[*files.Config](c.spec)
	var out *files.Output
	var err error
	if c.exactlyOnce() {
		out, err = files.ReadOutput(ctx, *cfg, c.name, c.group)
	} else {
		out, err = files.ReadAtLeastOnceOutput(ctx, *cfg, c.name)
	}
	if err != nil {
		r.t.Fatalf("files of %s: %v", c.name, err)
	}
	ids := func(fs []files.File) []string {
		var ids []string
		for _, f := range fs {
			for _, row := range f.Rows {
				ids = append(ids, row.EventID)
			}
		}
		return ids
	}
	listed, dead := ids(out.Files), ids(out.DeadLetters)
	o.Scanned = slices.Concat(listed, ids(out.Staged), ids(out.Unlisted), dead)
	o.DeadLetters["files "+files.DeadLetters] = dead
	if c.exactlyOnce() {
		rows, distinct := testenv.DuckDBCount(r.t, cfg.Path)
		o.Witness = &Witness{Reader: "DuckDB", Rows: rows, IDs: distinct, Listed: len(listed)}
	}
}

// pgConfig is c's PostgreSQL sink, alone or in a fan-out.
func pgConfig(c *conn) *sinkpg.Config {
	pg, _ := pipeline.SinkConfig[*sinkpg.Config](c.spec)
	return pg
}

// soloPostgres and soloRedis are c's sink when it is its only one (nil
// otherwise): a fan-out's legs keep no checkpoint of their own.
func soloPostgres(c *conn) *sinkpg.Config {
	if c.spec.Fanout() {
		return nil
	}
	return pgConfig(c)
}

func soloRedis(c *conn) *sinkredis.Config {
	if c.spec.Fanout() {
		return nil
	}
	rc, _ := pipeline.SinkConfig[*sinkredis.Config](c.spec)
	return rc
}

// redisAudit is c's audit log in application order, as outputs whose
// stream is the audit target (the structure, or dlq).
func (r *run) redisAudit(c *conn) []Output {
	r.t.Helper()
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	w, err := sinkredis.NewWriter(ctx, r.redisConfig(c), c.dlq)
	if err != nil {
		r.t.Fatal(err)
	}
	defer w.Close()
	entries, err := w.AuditLog(ctx)
	if err != nil {
		r.t.Fatalf("audit log of %s: %v", c.name, err)
	}
	out := make([]Output, len(entries))
	for i, e := range entries {
		target, id, _ := strings.Cut(e, ":")
		out[i] = Output{Stream: target, ID: id}
	}
	return out
}

// watcher is a read_committed consumer of a Kafka sink's output and
// dead-letter topics that runs from before the first fault to after the
// drain: what a downstream application would have seen meanwhile.
type watcher struct {
	cl     *kgo.Client
	topics []string
	done   chan struct{}
	stop   chan struct{}

	mu      sync.Mutex
	outs    []Output
	ids     []string
	lastOff map[string]int64 // topic/partition → last offset seen (markers included)
	// aborts counts the abort markers read; abortsBase their number when
	// the fault window opened.
	aborts, abortsBase int
}

// openWindow notes the abort markers read so far: those after it are the
// fault window's (the watcher reads behind the writers, so a few aborted
// just before may count; none do in practice, start-up aborts nothing).
func (w *watcher) openWindow() {
	w.mu.Lock()
	w.abortsBase = w.aborts
	w.mu.Unlock()
}

// windowAborts is the number of abort markers read since openWindow.
func (w *watcher) windowAborts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.aborts - w.abortsBase
}

func (r *run) startWatcher(topics ...string) *watcher {
	w := &watcher{topics: topics, done: make(chan struct{}), stop: make(chan struct{}),
		lastOff: map[string]int64{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.e.brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	if err != nil {
		r.t.Fatal(err)
	}
	w.cl = cl
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := ctxFor(time.Second)
			fs := cl.PollFetches(ctx)
			cancel()
			if fs.IsClientClosed() {
				return
			}
			w.mu.Lock()
			fs.EachRecord(func(rec *kgo.Record) {
				tp := fmt.Sprintf("%s/%d", rec.Topic, rec.Partition)
				w.lastOff[tp] = rec.Offset
				if rec.Attrs.IsControl() {
					// A control record's key is its version and type
					// (int16s); type 0 ends an aborted transaction.
					if len(rec.Key) >= 4 && rec.Key[2] == 0 && rec.Key[3] == 0 {
						w.aborts++
					}
					return
				}
				id := ""
				for _, h := range rec.Headers {
					if h.Key == "event-id" {
						id = string(h.Value)
					}
				}
				w.outs = append(w.outs, Output{Stream: tp, ID: id})
				w.ids = append(w.ids, id)
			})
			w.mu.Unlock()
		}
	}()
	r.t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			close(w.stop)
		}
		<-w.done
		cl.Close()
	})
	return w
}

// catchUp waits until the watcher has read every output partition to its
// end offset (all transactions have ended by then: the daemons stopped).
func (w *watcher) catchUp(t testing.TB, e *env, within time.Duration) {
	t.Helper()
	var last string
	ok := poll(within, 200*time.Millisecond, func() bool {
		ctx, cancel := ctxFor(10 * time.Second)
		defer cancel()
		ends, err := e.adm.ListEndOffsets(ctx, w.topics...)
		if err != nil {
			last = err.Error()
			return false
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		behind := ""
		for _, ps := range ends {
			for _, lo := range ps {
				tp := fmt.Sprintf("%s/%d", lo.Topic, lo.Partition)
				if seen, ok := w.lastOff[tp]; lo.Offset > 0 && (!ok || seen < lo.Offset-1) {
					behind = fmt.Sprintf("%s at %d of %d", tp, w.lastOff[tp], lo.Offset)
				}
			}
		}
		last = behind
		return behind == ""
	})
	if !ok {
		t.Fatalf("read_committed watcher of %v did not catch up within %v: %s", w.topics, within, last)
	}
}

func (w *watcher) result() ([]Output, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Output(nil), w.outs...), append([]string{}, w.ids...)
}
