package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/connectd/connectd/connector"
)

// The state of stateful stages (connector.StateRecord), kept in a state
// table beside the sink table: <table>_state, in the same schema. A
// batch's state records are upserted (Value set) or deleted (Value nil) in
// the transaction that writes its rows and moves its offsets, so the state
// is exactly as durable as the checkpoint: whatever commits them both
// (COMMIT after the offsets compare-and-set, PREPARE and the two-phase
// decision, or at_least_once's plain COMMIT) commits or drops both, and a
// fenced zombie's state goes with its rolled-back rows. LoadState reads
// one input partition's committed entries back.

var _ connector.StateStore = (*Store)(nil)

// StateTableSuffix is appended to the sink table's name to name its state
// table.
const StateTableSuffix = "_state"

// StateTable is the state table's name, schema-qualified like Table.
func (c *Config) StateTable() string { return c.Table + StateTableSuffix }

// QuotedStateTable is the state table as an SQL identifier. cfg must have
// been validated.
func (c *Config) QuotedStateTable() string { return ident(c.StateTable()) }

// stateSQL are the state table's statements. Every column is collated "C":
// keys are compared byte by byte (cheaper than a locale's rules, and the
// order the sink sorts entries in), and the table is only ever looked up
// by equality. The table is half-filled (fillfactor 50) because its rows
// are rewritten over and over (an open window's entry at every commit
// that touches it): the new version then fits on the same page, a HOT
// update that adds no index entry, which made updating 10,000 entries per
// commit about 1.5 times as fast (BenchmarkStateCommit), for twice the
// space.
type stateSQL struct {
	table, create, upsert, del, load string
}

func buildStateSQL(c *Config) stateSQL {
	t := c.QuotedStateTable()
	return stateSQL{
		table: c.StateTable(),
		create: "CREATE TABLE IF NOT EXISTS " + t + ` (ns text COLLATE "C" NOT NULL, topic text COLLATE "C" NOT NULL,` +
			` partition int NOT NULL, key text COLLATE "C" NOT NULL, value bytea NOT NULL,` +
			" PRIMARY KEY (ns, topic, partition, key)) WITH (fillfactor = 50)",
		upsert: "INSERT INTO " + t + " AS s (ns, topic, partition, key, value)" +
			" SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bytea[])" +
			" ON CONFLICT (ns, topic, partition, key) DO UPDATE SET value = EXCLUDED.value",
		del: "DELETE FROM " + t + " AS s USING unnest($1::text[], $2::text[], $3::int[], $4::text[]) AS u(ns, topic, partition, key)" +
			" WHERE s.ns = u.ns AND s.topic = u.topic AND s.partition = u.partition AND s.key = u.key",
		load: "SELECT key, value FROM " + t + " WHERE ns = $1 AND topic = $2 AND partition = $3",
	}
}

// stateKey identifies one state entry.
type stateKey struct {
	ns, topic string
	partition int32
	key       string
}

func (a stateKey) compare(b stateKey) int {
	return cmp.Or(strings.Compare(a.ns, b.ns), strings.Compare(a.topic, b.topic),
		cmp.Compare(a.partition, b.partition), strings.Compare(a.key, b.key))
}

// stateWrites are a batch's state changes as the statements' arrays: one
// entry per key (the batch's last record for it wins), sorted by key so
// that two transactions writing the same entries (a zombie and its heir)
// lock them in the same order and wait rather than deadlock.
type stateWrites struct {
	up  stateArrays
	del stateArrays
}

type stateArrays struct {
	ns, topics []string
	parts      []int32
	keys       []string
	values     [][]byte // upserts only
}

func (a *stateArrays) add(k stateKey, value []byte, withValue bool) {
	a.ns = append(a.ns, k.ns)
	a.topics = append(a.topics, k.topic)
	a.parts = append(a.parts, k.partition)
	a.keys = append(a.keys, k.key)
	if withValue {
		a.values = append(a.values, value)
	}
}

// newStateWrites deduplicates and sorts recs (all StateRecords). A key,
// namespace or topic that is not UTF-8 text without NUL bytes (the
// columns are text) fails the batch: a Fatal error, since no retry
// changes it.
func newStateWrites(recs []*connector.Record) (*stateWrites, error) {
	last := make(map[stateKey]*connector.Record, len(recs))
	for _, r := range recs {
		k := stateKey{ns: r.Topic, topic: r.Origin.Topic, partition: r.Origin.Partition, key: string(r.Key)}
		for _, f := range [...]struct{ name, s string }{{"namespace", k.ns}, {"topic", k.topic}, {"key", k.key}} {
			if !utf8.ValidString(f.s) || strings.IndexByte(f.s, 0) >= 0 {
				return nil, connector.NewCommitError(connector.Fatal, "write state",
					fmt.Errorf("state record of %s/%d: its %s %q is not UTF-8 text without NUL bytes, which the state table's text columns need", k.topic, k.partition, f.name, f.s))
			}
		}
		last[k] = r
	}
	keys := make([]stateKey, 0, len(last))
	for k := range last {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, stateKey.compare)
	w := &stateWrites{}
	for _, k := range keys {
		if v := last[k].Value; v != nil {
			w.up.add(k, v, true)
		} else {
			w.del.add(k, nil, false)
		}
	}
	return w, nil
}

// queueState queues the batch's state deletes and upserts on b: at most
// two statements, whatever the number of entries.
func (s *Store) queueState(b *pgx.Batch, w *stateWrites) {
	if d := w.del; len(d.keys) > 0 {
		b.Queue(s.state.del, d.ns, d.topics, d.parts, d.keys)
	}
	if u := w.up; len(u.keys) > 0 {
		b.Queue(s.state.upsert, u.ns, u.topics, u.parts, u.keys, u.values)
	}
}

// prepareState turns p's state records into their writes, and makes sure
// the state table exists first.
func (s *Store) prepareState(ctx context.Context, pool *pgxpool.Pool, p *prepared) error {
	w, err := newStateWrites(p.stateRecs)
	if err != nil {
		return err
	}
	if err := s.ensureStateTable(ctx, pool); err != nil {
		return err
	}
	p.state = w
	return nil
}

// ensureStateTable creates the state table with auto_create, or checks that
// it exists, once per store, at the first state write or load: only
// connectors with a stateful stage have one. Without auto_create a missing
// table is a Fatal error naming it.
func (s *Store) ensureStateTable(ctx context.Context, pool *pgxpool.Pool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stateReady {
		return nil
	}
	if s.cfg.AutoCreate {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('connectd auto_create'))"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, s.state.create)
			return err
		})
		if err != nil {
			return classify("auto_create state table", err, false)
		}
	} else {
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.cfg.QuotedStateTable()).Scan(&exists); err != nil {
			return classify("check state table", err, false)
		}
		if !exists {
			return connector.NewCommitError(connector.Fatal, "state table",
				fmt.Errorf("the state table %s does not exist: create it (%s) or set auto_create: true", s.state.table, s.state.create))
		}
	}
	s.stateReady = true
	return nil
}

// LoadState implements connector.StateStore: the committed state entries of
// input partition tp in namespace ns. They are those of the partition's
// committed checkpoint, since both commit in one transaction; a two-phase
// transaction still prepared is not seen (recovery resolves it before the
// partition is read again). Errors are classified like a commit's: a lost
// connection is Abortable, a missing table Fatal.
func (s *Store) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	pool, err := s.Pool(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ensureStateTable(ctx, pool); err != nil {
		return nil, err
	}
	// Binary results: a bytea arrives as its bytes, which RawValues hands
	// over without decoding; the values are copied into a few large slabs
	// instead of one allocation each (each value's capacity ends where it
	// does, so appending to one cannot overwrite the next).
	rows, err := pool.Query(ctx, s.state.load, pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode}, ns, tp.Topic, tp.Partition)
	if err != nil {
		return nil, classify("load state", err, false)
	}
	defer rows.Close()
	out := map[string][]byte{}
	var slab []byte
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != 2 || raw[0] == nil || raw[1] == nil {
			return nil, connector.NewCommitError(connector.Fatal, "load state", errors.New("unexpected NULL in the state table"))
		}
		if cap(slab)-len(slab) < len(raw[1]) {
			slab = make([]byte, 0, max(len(raw[1]), stateSlab))
		}
		start := len(slab)
		slab = append(slab, raw[1]...)
		out[string(raw[0])] = slab[start:len(slab):len(slab)]
	}
	if err := rows.Err(); err != nil {
		return nil, classify("load state", err, false)
	}
	return out, nil
}

// stateSlab is the size of the buffers LoadState copies values into.
const stateSlab = 1 << 20
