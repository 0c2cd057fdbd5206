package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// DefaultCopyThreshold is the batch size from which Commit stages the rows
// with COPY into a temporary table and merges them with one INSERT ...
// SELECT ... ON CONFLICT, instead of unnest chunks: measured with
// BenchmarkUpsertPath (see its comment).
const DefaultCopyThreshold = 20000

// IdleInTransactionTimeout is the idle_in_transaction_session_timeout of
// the sink's sessions, unless the DSN sets one: the server ends a session
// that sits inside an open transaction this long without a statement.
//
// Why: a batch's transaction holds row locks on its event IDs from its
// first INSERT to its COMMIT. A process frozen inside it (SIGSTOP, a VM
// paused, a stuck host) keeps its socket open, and the kernel answers TCP
// keepalives for it, so without this its locks block the partitions' next
// owner, which writes the same event IDs, for as long as the freeze lasts.
// connectd itself is never idle in a transaction for more than the time
// it takes to map the next chunk of rows; a session ended by this timeout
// fails its batch abortably (nothing of it committed) and it is read
// again. Two-phase transactions are not affected: once prepared they
// belong to no session.
var IdleInTransactionTimeout = 10 * time.Second

const idleInTransactionParam = "idle_in_transaction_session_timeout"

// Options say how a Store is used by its connector.
type Options struct {
	// Connector names the connector, for logs.
	Connector string
	// DLQTopic is the connector's dead-letter topic with errors.tolerance
	// all: records with this Topic go to the dead-letter table. Empty
	// means errors.tolerance none: a record that cannot be written fails
	// the connector.
	DLQTopic string
	// ExactlyOnce: the table is keyed on event_id and written with ON
	// CONFLICT; otherwise rows are plainly inserted.
	ExactlyOnce bool
	// TwoPhase: the store is a two-phase commit participant; the
	// checkpoint lives in Kafka, so no offsets table is created.
	TwoPhase bool
	Logger   *slog.Logger
}

// Store is the PostgreSQL sink. It is a txn.SinkStore (exactly_once: rows,
// dead-letter rows and the offsets compare-and-set in one transaction) and
// a txn.SinkWriter (at_least_once: rows inserted, no checkpoint). The
// connection pool is opened at first use, and auto_create runs then.
type Store struct {
	cfg    Config
	cfgErr error
	opts   Options
	sql    statements
	state  stateSQL
	log    *slog.Logger
	// CopyThreshold: batches with at least this many rows take the COPY
	// path. Default DefaultCopyThreshold.
	CopyThreshold int

	// upsertOnly turns the COPY path (copy.go) off, for tests and
	// benchmarks that compare the two.
	upsertOnly bool
	gate       copyGate
	// copied counts the batches committed by COPY, for tests.
	copied atomic.Int64

	mu         sync.Mutex
	pool       *pgxpool.Pool
	ready      bool // auto_create done
	viewReady  bool // view ensured
	stateReady bool // the state table exists (see ensureStateTable)
	copyProbed bool // copyOK is known
	copyOK     bool // exactly_once rows may be COPYed (probeCopy)
}

var (
	_ txn.SinkStore  = (*Store)(nil)
	_ txn.SinkWriter = (*Store)(nil)
)

// New returns a store for cfg (validated here too; a config error makes
// every call fail with a Fatal error).
func New(cfg Config, o Options) *Store {
	err := cfg.Validate()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Store{cfg: cfg, cfgErr: err, opts: o, log: o.Logger, CopyThreshold: DefaultCopyThreshold}
	if err == nil {
		s.sql = buildStatements(&s.cfg, o.ExactlyOnce)
		s.state = buildStateSQL(&s.cfg)
	}
	return s
}

// Pool returns the connection pool, opening it (and creating the tables
// with auto_create) at first use.
func (s *Store) Pool(ctx context.Context) (*pgxpool.Pool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfgErr != nil {
		return nil, connector.NewCommitError(connector.Fatal, "postgres config", s.cfgErr)
	}
	if s.pool == nil {
		pc, err := pgxpool.ParseConfig(s.cfg.DSN)
		if err != nil {
			return nil, connector.NewCommitError(connector.Fatal, "postgres dsn", redactErr(err))
		}
		if _, set := pc.ConnConfig.RuntimeParams[idleInTransactionParam]; !set {
			pc.ConnConfig.RuntimeParams[idleInTransactionParam] = strconv.FormatInt(IdleInTransactionTimeout.Milliseconds(), 10)
		}
		p, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, connector.NewCommitError(connector.Abortable, "postgres connect", err)
		}
		s.pool = p
	}
	if s.cfg.AutoCreate && !s.ready {
		if err := s.createTables(ctx, s.pool); err != nil {
			return nil, classify("auto_create", err, false)
		}
		s.ready = true
	}
	if s.cfg.View != "" && !s.viewReady {
		if err := EnsureView(ctx, s.pool, s.cfg.View, s.cfg.Table); err != nil {
			return nil, classify("view", err, false)
		}
		s.viewReady = true
	}
	if s.opts.ExactlyOnce && !s.copyProbed {
		ok, known, err := s.probeCopy(ctx, s.pool)
		if err != nil {
			return nil, classify("inspect table", err, false)
		}
		s.copyOK, s.copyProbed = ok, known
	}
	return s.pool, nil
}

// tryCopy reports whether a batch of p's rows goes by COPY (copy.go).
func (s *Store) tryCopy(p *prepared) bool {
	s.mu.Lock()
	ok := s.copyOK && !s.upsertOnly
	s.mu.Unlock()
	return ok && len(p.recs) > 0 && s.gate.take()
}

// createTables creates the offsets, target and dead-letter tables if
// missing, under an advisory lock so instances starting together do not
// race on CREATE TABLE IF NOT EXISTS (which is not safe concurrently).
func (s *Store) createTables(ctx context.Context, p *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('connectd auto_create'))"); err != nil {
			return err
		}
		ddl := []string{s.sql.createTable}
		if s.opts.ExactlyOnce && !s.opts.TwoPhase {
			ddl = append(ddl, s.sql.createOffsets, s.sql.migrateOffsets)
		}
		if s.opts.DLQTopic != "" {
			ddl = append(ddl, s.sql.createDLQ)
		}
		for _, q := range ddl {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
}

// Close closes the pool.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
}

// Claim implements txn.SinkStore: one statement raises every partition's
// claim epoch and returns it with the stored checkpoint. Partitions are
// claimed in a fixed order, so two claims of overlapping sets lock their
// rows in the same order and cannot deadlock.
func (s *Store) Claim(ctx context.Context, group string, tps []connector.TopicPartition) (txn.Claims, error) {
	p, err := s.Pool(ctx)
	if err != nil {
		return nil, err
	}
	sorted := slices.Clone(tps)
	slices.SortFunc(sorted, connector.TopicPartition.Compare)
	topics := make([]string, len(sorted))
	parts := make([]int32, len(sorted))
	for i, tp := range sorted {
		topics[i], parts[i] = tp.Topic, tp.Partition
	}
	rows, err := p.Query(ctx, s.sql.claim, group, topics, parts)
	if err != nil {
		return nil, classify("claim", err, false)
	}
	claims := txn.Claims{}
	var tp connector.TopicPartition
	var c txn.PartitionClaim
	_, err = pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &c.Next, &c.Epoch}, func() error {
		claims[tp] = c
		return nil
	})
	if err != nil {
		return nil, classify("claim", err, false)
	}
	for _, tp := range tps {
		if _, ok := claims[tp]; !ok {
			return nil, connector.NewCommitError(connector.Fatal, "claim",
				fmt.Errorf("group %s: the claim returned no row for %s", group, tp))
		}
	}
	return claims, nil
}

// Commit implements txn.SinkStore: one transaction holds the rows (UPSERT
// keyed on event_id), the dead-letter rows, the state entries (state.go),
// and the offsets compare-and-set of every partition of to; it commits only if the CAS matched every
// partition. Nothing is visible before COMMIT: on any error the transaction
// is rolled back (or the connection closed, which rolls it back) and the
// caller re-reads the checkpoint; a COMMIT without an answer is
// CommitUnknown, and the checkpoint row then says whether it applied.
func (s *Store) Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error {
	p := s.split(recs)
	cas, err := newCAS(group, epochs, from, to)
	if err != nil {
		return err
	}
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, pool, p, ending{cas: cas})
}

// writeTx runs commitTx: by COPY when it may (copy.go), again by upsert
// if an event ID existed, and once more isolating rows if a row was
// rejected.
func (s *Store) writeTx(ctx context.Context, pool *pgxpool.Pool, p *prepared, end ending) error {
	if len(p.stateRecs) > 0 {
		if err := s.prepareState(ctx, pool, p); err != nil {
			return err
		}
	}
	var err error
	if s.tryCopy(p) {
		err = s.commitTx(ctx, pool, p, end, writeCopy)
		conflict := isEventIDConflict(err)
		s.gate.done(conflict)
		if err == nil {
			s.copied.Add(1)
		}
		if !conflict {
			return s.isolateIfRejected(ctx, pool, p, end, err)
		}
		s.log.Debug("an event ID of the batch exists; writing it again with ON CONFLICT", "connector", s.opts.Connector)
	}
	err = s.commitTx(ctx, pool, p, end, writeUpsert)
	return s.isolateIfRejected(ctx, pool, p, end, err)
}

// isolateIfRejected: if err is a row the table rejects (a NOT NULL or
// CHECK constraint, a value out of range), writes the batch again,
// finding that row by retrying in halves under savepoints, in a new
// transaction.
func (s *Store) isolateIfRejected(ctx context.Context, pool *pgxpool.Pool, p *prepared, end ending, err error) error {
	if err == nil || !isRowError(err) {
		return err
	}
	s.log.Warn("a row was rejected; isolating it", "connector", s.opts.Connector, "err", err)
	return s.commitTx(ctx, pool, p, end, writeIsolate)
}

// writeMode is how commitTx writes the rows.
type writeMode int

const (
	writeUpsert  writeMode = iota // unnest chunks, or COPY into a staging table (CopyThreshold)
	writeCopy                     // COPY into the table (copy.go)
	writeIsolate                  // after a row error
)

// ending is how a write transaction ends: with the offsets compare-and-set
// and COMMIT (cas: exactly_once, offsets in the sink), with PREPARE
// TRANSACTION gid (two-phase commit, offsets in Kafka), or, with neither,
// with a plain COMMIT (at_least_once: the offsets go to Kafka afterwards).
type ending struct {
	cas *casArgs
	gid string
}

// casArgs are the offsets compare-and-set's arrays.
type casArgs struct {
	group  string
	topics []string
	parts  []int32
	epochs []int64
	prev   []int64
	next   []int64
}

func newCAS(group string, epochs map[connector.TopicPartition]int64, from, to connector.Checkpoint) (*casArgs, error) {
	c := &casArgs{group: group}
	for _, tp := range to.Partitions() {
		epoch, ok := epochs[tp]
		if !ok {
			return nil, connector.NewCommitError(connector.Fenced, "commit",
				fmt.Errorf("partition %s has no claim", tp))
		}
		prev, ok := from[tp]
		if !ok {
			prev = -1
		}
		c.topics = append(c.topics, tp.Topic)
		c.parts = append(c.parts, tp.Partition)
		c.epochs = append(c.epochs, epoch)
		c.prev = append(c.prev, prev)
		c.next = append(c.next, to[tp])
	}
	return c, nil
}

// commitTx runs one attempt, in one of four ways:
//   - writeCopy (exactly_once, copy.go): BEGIN, then the records mapped a
//     chunk ahead of the COPY that streams them into the table; then the
//     dead-letter rows and the CAS in one round trip, and COMMIT in a
//     last one;
//   - streaming (writeUpsert, the default otherwise): records are mapped
//     a chunk ahead of the INSERT that writes them (mapAhead), BEGIN
//     going with the first chunk; then as above;
//   - staged (writeUpsert, batches of CopyThreshold rows or more):
//     everything mapped, COPY into a temporary table, one merging INSERT;
//   - writeIsolate, after a row error: rejected rows are found one half
//     at a time under savepoints (slow) and dead-lettered, or the batch
//     fails naming the first one with errors.tolerance none.
func (s *Store) commitTx(ctx context.Context, pool *pgxpool.Pool, p *prepared, end ending, mode writeMode) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return classify("acquire connection", err, false)
	}
	defer conn.Release()
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, conn.Conn())
		}
	}()

	begins := []string{"BEGIN ISOLATION LEVEL READ COMMITTED"}
	if end.gid != "" {
		// A row locked by another instance's prepared transaction stays
		// locked until recovery resolves it: wait a bounded time, then
		// fail abortably, so our own recovery runs and resolves it.
		begins = append(begins, "SET LOCAL lock_timeout = "+quoteLiteral(fmt.Sprintf("%dms", PreparedLockTimeout.Milliseconds())))
	}
	begin := strings.Join(begins, "; ") // for the simple protocol
	dlqErr := map[*connector.Record]error{}
	var dlq []*connector.Record
	b := &pgx.Batch{} // what goes with the CAS
	switch {
	case mode == writeIsolate:
		m := s.mapRecords(p.recs)
		if m.err != nil {
			return m.err
		}
		if err := conn.Conn().PgConn().Exec(ctx, begin).Close(); err != nil {
			return classify("begin", err, false)
		}
		rejected, err := s.insertIsolating(ctx, conn.Conn(), m.items)
		if err != nil {
			return err
		}
		if len(rejected) > 0 && s.opts.DLQTopic == "" {
			r := rejected[0]
			return connector.NewCommitError(connector.Fatal, "write row",
				&connector.RecordError{Origin: r.rec.Origin, Stage: "sink " + s.cfg.Table, Err: r.err})
		}
		dlq = deadLetters(p.dlq, append(m.rejected, rejected...), dlqErr)
	case mode == writeCopy:
		if err := conn.Conn().PgConn().Exec(ctx, begin).Close(); err != nil {
			return classify("begin", err, false)
		}
		chunks, done := s.mapAhead(p.recs)
		defer done()
		rejected, mapErr, err := s.copyRowsDirect(ctx, conn.Conn().PgConn(), chunks)
		if mapErr != nil {
			return mapErr
		}
		if err != nil {
			return classify("copy rows", err, false)
		}
		dlq = deadLetters(p.dlq, rejected, dlqErr)
	case len(p.recs) >= s.CopyThreshold:
		m := s.mapRecords(p.recs)
		if m.err != nil {
			return m.err
		}
		if err := conn.Conn().PgConn().Exec(ctx, begin+"; "+s.sql.createStage).Close(); err != nil {
			return classify("begin", err, false)
		}
		if err := s.copyRows(ctx, conn.Conn(), m.items); err != nil {
			return classify("copy rows", err, false)
		}
		b.Queue(s.sql.mergeStage)
		dlq = deadLetters(p.dlq, m.rejected, dlqErr)
	default:
		for _, q := range begins { // sent with the first chunk, or with the CAS if none
			b.Queue(q)
		}
		chunks, done := s.mapAhead(p.recs)
		defer done()
		var rejected []rejectedRow
		for m := range chunks {
			if m.err != nil {
				return m.err
			}
			rejected = append(rejected, m.rejected...)
			for start := 0; start < len(m.items); start += s.cfg.BatchSize {
				s.queueInsert(b, m.items[start:min(start+s.cfg.BatchSize, len(m.items))])
			}
			if err := conn.SendBatch(ctx, b).Close(); err != nil {
				return classify("write rows", err, false)
			}
			b = &pgx.Batch{}
		}
		dlq = deadLetters(p.dlq, rejected, dlqErr)
	}
	if len(dlq) > 0 {
		queueDLQ(b, s.sql.insertDLQ, dlq, dlqErr)
	}
	if p.state != nil { // state (state.go) commits with the rows and the CAS, which stays last
		s.queueState(b, p.state)
	}
	if end.gid != "" {
		return s.prepareTx(ctx, conn.Conn(), b, end.gid, &committed)
	}
	cas := end.cas
	if cas != nil {
		b.Queue(s.sql.cas, cas.group, cas.topics, cas.parts, cas.epochs, cas.prev, cas.next)
	}
	if b.Len() > 0 { // empty only at_least_once, with everything sent in chunks
		last, err := execBatch(ctx, conn.Conn(), b)
		if err != nil {
			return classify("write batch", err, false)
		}
		if updated := last.RowsAffected(); cas != nil && updated != int64(len(cas.topics)) { // the CAS is last
			return connector.NewCommitError(connector.Fenced, "offsets compare-and-set",
				fmt.Errorf("group %s: %d of %d partitions still at our claim epoch and expected offset; a newer claim holds the others", cas.group, updated, len(cas.topics)))
		}
	}
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		return classify("commit", err, true)
	}
	committed = true
	if tag.String() != "COMMIT" { // the server rolled back a failed transaction
		return connector.NewCommitError(connector.Abortable, "commit", fmt.Errorf("server answered %q", tag.String()))
	}
	return nil
}

// execBatch sends b and returns the command tag of its last statement, or
// the first error.
func execBatch(ctx context.Context, c *pgx.Conn, b *pgx.Batch) (pgconn.CommandTag, error) {
	br := c.SendBatch(ctx, b)
	var tag pgconn.CommandTag
	var err error
	for range b.Len() {
		if tag, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// rollback ends a transaction left open by a failure, on its own short
// context; if that fails the connection is closed (the server then rolls
// back) and the pool drops it.
func rollback(ctx context.Context, c *pgx.Conn) {
	if c.IsClosed() || c.PgConn().TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.Exec(rctx, "ROLLBACK"); err != nil {
		_ = c.Close(rctx)
	}
}

// queueInsert queues one unnest INSERT of rows.
func (s *Store) queueInsert(b *pgx.Batch, rows []item) {
	args := make([]any, 1+len(s.cfg.cols))
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.rec.EventID
	}
	args[0] = ids
	for j := range s.cfg.cols {
		col := make(pgtype.FlatArray[pgtype.Text], len(rows))
		for i, r := range rows {
			col[i] = r.vals[j]
		}
		args[j+1] = col
	}
	b.Queue(s.sql.insert, args...)
}

// copyRows stages rows in the temporary table with COPY.
func (s *Store) copyRows(ctx context.Context, c *pgx.Conn, rows []item) error {
	names := make([]string, 1+len(s.cfg.cols))
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	i := 0
	_, err := c.CopyFrom(ctx, pgx.Identifier{s.sql.stageTable}, names, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		r := rows[i]
		i++
		vals := make([]any, 1+len(r.vals))
		vals[0] = r.rec.EventID
		for j, v := range r.vals {
			vals[j+1] = v
		}
		return vals, nil
	}))
	return err
}

// rejectedRow is a row the table refused, and why.
type rejectedRow struct {
	rec *connector.Record
	err error
}

// insertIsolating inserts rows in the open transaction, retrying a failing
// chunk in halves under savepoints until the rows that fail are single.
// With errors.tolerance none it stops at the first.
func (s *Store) insertIsolating(ctx context.Context, c *pgx.Conn, rows []item) ([]rejectedRow, error) {
	var rejected []rejectedRow
	var try func(rows []item) error
	try = func(rows []item) error {
		if len(rows) == 0 || (s.opts.DLQTopic == "" && len(rejected) > 0) {
			return nil
		}
		if _, err := c.Exec(ctx, "SAVEPOINT connectd_rows"); err != nil {
			return classify("savepoint", err, false)
		}
		b := &pgx.Batch{}
		s.queueInsert(b, rows)
		err := c.SendBatch(ctx, b).Close()
		if err == nil {
			if _, err := c.Exec(ctx, "RELEASE SAVEPOINT connectd_rows"); err != nil {
				return classify("savepoint", err, false)
			}
			return nil
		}
		if !isRowError(err) {
			return classify("write rows", err, false)
		}
		if _, err := c.Exec(ctx, "ROLLBACK TO SAVEPOINT connectd_rows"); err != nil {
			return classify("savepoint", err, false)
		}
		if len(rows) == 1 {
			rejected = append(rejected, rejectedRow{rows[0].rec, err})
			return nil
		}
		half := len(rows) / 2
		if err := try(rows[:half]); err != nil {
			return err
		}
		return try(rows[half:])
	}
	for start := 0; start < len(rows); start += s.cfg.BatchSize {
		if err := try(rows[start:min(start+s.cfg.BatchSize, len(rows))]); err != nil {
			return nil, err
		}
	}
	return rejected, nil
}

// WriteBatch implements txn.SinkWriter (at_least_once): the rows are
// plainly inserted (no unique key, duplicates possible after a failure) with
// the dead-letter rows, in one transaction ended by a plain COMMIT, the
// offsets going to Kafka after it returns. It takes the same path as
// exactly_once without the CAS: rows mapped a chunk ahead of each INSERT,
// so memory is bounded by the chunk, not the batch (mapping and encoding a
// whole 10,000-record batch of 1 KB values at once took the daemon over
// 256 MiB, issue 9); and a row the table rejects is isolated, then
// dead-lettered or named in a Fatal error. If the COMMIT goes unanswered
// the batch is re-read and written again, as after any failure here.
func (s *Store) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	p := s.split(recs)
	if len(p.recs) == 0 && len(p.dlq) == 0 && len(p.stateRecs) == 0 {
		return nil
	}
	pool, err := s.Pool(ctx)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, pool, p, ending{})
}
