package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// probe: how the checker (verify.runProbe) reads a connector writing to
// PostgreSQL.
//
//   - exactly_once: the checkpoint (the offsets table's rows for the
//     connector's group), the event IDs of the table and of the dead-letter
//     table, and the apply_count check are read in ONE repeatable-read
//     snapshot, in which rows and checkpoint are consistent by
//     construction; nothing is filtered.
//   - at_least_once: the checkpoint is the group's committed offsets, read
//     first; rows are written before offsets are committed, so everything
//     below it is in the snapshot read afterwards. Rows of later batches
//     are left out by their origin where the table maps topic, partition
//     and offset columns (the dead-letter table always has them), or with
//     Options.Stopped counted as unexpected; without them the answer is
//     exact once the connector has caught up.
//
// With test_apply_counter the table and the dead-letter table each have an
// apply_count column; every row of either must show 1.
//
// Expected rows are recomputed from the Kafka input below the checkpoint
// exactly as for a Kafka sink, each routed to the table or the dead-letter
// table by the sink's own rule (Config.Route).
type probe struct {
	cfg       *Config
	connector string
	// state is the window probe's state store, closed with the probe.
	state *Store
}

func (p *probe) Snapshot(ctx context.Context, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool) (component.ProbeSnapshot, error) {
	s, err := ReadSnapshot(ctx, p.cfg, group, withCheckpoint, below, stopped, nil)
	if err != nil {
		return component.ProbeSnapshot{}, fmt.Errorf("reading %s: %w", p.cfg.Table, err)
	}
	return component.ProbeSnapshot{Checkpoint: s.Checkpoint, IDs: s.IDs, Beyond: s.Beyond, ApplyCountViolations: s.ApplyCountViolations}, nil
}

func (p *probe) Route(r *connector.Record, dlqTopic string) string { return p.cfg.Route(r, dlqTopic) }

func (p *probe) Close() {
	if p.state != nil {
		p.state.Close()
	}
}

// Snapshot is what the checker reads from the database.
type Snapshot struct {
	Checkpoint           connector.Checkpoint
	IDs                  []string // "<table>:<event id>"
	Beyond               []string // IDs left out by below, when stopped
	ApplyCountViolations int
	Rows                 []Row // with extra columns only
}

// Row is one row of the table or the dead-letter table.
type Row struct {
	Table  string
	ID     string
	Origin *connector.Origin // nil where the table maps none
	Extra  []*string
}

// ReadSnapshot reads the checkpoint (withCheckpoint), the qualified event
// IDs of the table and dead-letter table, and the apply_count violations
// in one REPEATABLE READ transaction. A non-nil below keeps only rows
// whose origin it contains, where the origin is known; with stopped the
// others are returned apart (beyond).
//
// A non-nil extra (a windowed connector's check) also returns every row of
// both tables, unfiltered, with its origin and the table's extra columns
// read as text (the dead-letter table's as NULL), for the batch oracle to
// filter and compare on its own.
func ReadSnapshot(ctx context.Context, pg *Config, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool, extra []string) (*Snapshot, error) {
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	snap := &Snapshot{Checkpoint: connector.Checkpoint{}}
	exists := func(table string) (bool, error) {
		var ok bool
		err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok)
		return ok, err
	}
	if withCheckpoint {
		ok, err := exists(pg.QuotedOffsetsTable())
		if err != nil {
			return nil, err
		}
		if ok {
			rows, _ := tx.Query(ctx, "SELECT topic, partition, next_offset FROM "+pg.QuotedOffsetsTable()+
				" WHERE group_id = $1 AND next_offset >= 0", group)
			var tp connector.TopicPartition
			var next int64
			if _, err := pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &next}, func() error {
				snap.Checkpoint[tp] = next
				return nil
			}); err != nil {
				return nil, fmt.Errorf("offsets table: %w", err)
			}
		}
	}

	// The table's IDs, with origins where mapped.
	origin := "NULL::text, NULL::bigint, NULL::bigint"
	tcol, ok1 := pg.SourceColumn("topic")
	pcol, ok2 := pg.SourceColumn("partition")
	ocol, ok3 := pg.SourceColumn("offset")
	if ok1 && ok2 && ok3 {
		origin = pgx.Identifier{tcol}.Sanitize() + ", " + pgx.Identifier{pcol}.Sanitize() + ", " + pgx.Identifier{ocol}.Sanitize()
	}
	nulls := strings.TrimSuffix(strings.Repeat("NULL::text, ", len(extra)), ", ")
	for _, t := range []struct {
		name, quoted, origin, extra string
	}{
		{pg.Table, pg.QuotedTable(), origin, strings.Join(extra, ", ")},
		{pg.DLQTable, pg.QuotedDLQTable(), "origin_topic, origin_partition, origin_offset", nulls},
	} {
		ok, err := exists(t.quoted)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		cols := EventIDColumn + ", " + t.origin
		if len(extra) > 0 {
			cols += ", " + t.extra
		}
		rows, _ := tx.Query(ctx, "SELECT "+cols+" FROM "+t.quoted)
		var id string
		var topic *string
		var part, off *int64
		vals := make([]*string, len(extra))
		scan := []any{&id, &topic, &part, &off}
		for i := range vals {
			scan = append(scan, &vals[i])
		}
		if _, err := pgx.ForEachRow(rows, scan, func() error {
			if extra != nil {
				row := Row{Table: t.name, ID: id, Extra: slices.Clone(vals)}
				if topic != nil && part != nil && off != nil {
					row.Origin = &connector.Origin{Topic: *topic, Partition: int32(*part), Offset: *off}
				}
				snap.Rows = append(snap.Rows, row)
			}
			if below != nil && topic != nil && part != nil && off != nil &&
				!below.Contains(connector.Origin{Topic: *topic, Partition: int32(*part), Offset: *off}) {
				if stopped {
					snap.Beyond = append(snap.Beyond, t.name+":"+id)
				}
				return nil // running: written by a batch whose offsets were not committed yet
			}
			snap.IDs = append(snap.IDs, t.name+":"+id)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
	}

	// The apply counters (test_apply_counter) of rows and dead letters,
	// where the table has one.
	for _, table := range []string{pg.QuotedTable(), pg.QuotedDLQTable()} {
		var hasCounter bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)",
			table, ApplyCountColumn).Scan(&hasCounter); err != nil {
			return nil, err
		}
		if !hasCounter {
			continue
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE "+ApplyCountColumn+" <> 1").Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		snap.ApplyCountViolations += n
	}
	return snap, tx.Commit(ctx)
}
