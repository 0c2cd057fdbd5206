package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	sinkpg "github.com/connectd/connectd/sink/postgres"
)

// runPostgres checks a connector writing to PostgreSQL.
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
// table by the sink's own rule (sinkpg.Config.Route).
func runPostgres(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	spec := o.Spec
	pg := spec.Postgres
	// A two-phase participant keeps no checkpoint: it is the group's,
	// read like at_least_once's (rows commit after it, in phase two).
	exactlyOnce := spec.Conf.Guarantee != config.AtLeastOnce && !spec.TwoPhase
	if spec.KafkaSrc == nil {
		return Report{}, errors.New("a postgres sink needs a kafka source")
	}
	var cp connector.Checkpoint
	if !exactlyOnce {
		var err error
		if cp, err = checkpoint(ctx, o, base); err != nil {
			return Report{}, err
		}
	}
	snap, err := readSnapshot(ctx, pg, spec.KafkaSrc.Group, exactlyOnce, cp, o.Stopped, nil)
	if err != nil {
		return Report{}, fmt.Errorf("reading %s: %w", pg.Table, err)
	}
	if exactlyOnce {
		cp = snap.checkpoint
	}
	dlqTopic := spec.DLQTopic()
	expected, _, err := expectedOutputs(ctx, o, base, cp, func(r *connector.Record) string {
		return pg.Route(r, dlqTopic)
	})
	if err != nil {
		return Report{}, err
	}
	rep := Compare(expected, snap.ids)
	rep.addBeyond(snap.beyond)
	rep.ApplyCountViolations = snap.applyCountViolations
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}

// pgSnapshot is what the checker reads from the database.
type pgSnapshot struct {
	checkpoint           connector.Checkpoint
	ids                  []string // qualified with the table's name
	beyond               []string // ids left out by below, when stopped
	applyCountViolations int
	rows                 []pgRow // with extra columns only
}

// pgRow is one row of the table or the dead-letter table.
type pgRow struct {
	table  string
	id     string
	origin *connector.Origin // nil where the table maps none
	extra  []*string
}

// readSnapshot reads the checkpoint (withCheckpoint), the qualified event
// IDs of the table and dead-letter table, and the apply_count violations
// in one REPEATABLE READ transaction. A non-nil below keeps only rows
// whose origin it contains, where the origin is known; with stopped the
// others are returned apart (beyond).
//
// A non-nil extra (a windowed connector's check) also returns every row of
// both tables, unfiltered, with its origin and the table's extra columns
// read as text (the dead-letter table's as NULL), for the batch oracle to
// filter and compare on its own.
func readSnapshot(ctx context.Context, pg *sinkpg.Config, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool, extra []string) (*pgSnapshot, error) {
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

	snap := &pgSnapshot{checkpoint: connector.Checkpoint{}}
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
				snap.checkpoint[tp] = next
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
		cols := sinkpg.EventIDColumn + ", " + t.origin
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
				row := pgRow{table: t.name, id: id, extra: slices.Clone(vals)}
				if topic != nil && part != nil && off != nil {
					row.origin = &connector.Origin{Topic: *topic, Partition: int32(*part), Offset: *off}
				}
				snap.rows = append(snap.rows, row)
			}
			if below != nil && topic != nil && part != nil && off != nil &&
				!below.Contains(connector.Origin{Topic: *topic, Partition: int32(*part), Offset: *off}) {
				if stopped {
					snap.beyond = append(snap.beyond, qualify(t.name, id))
				}
				return nil // running: written by a batch whose offsets were not committed yet
			}
			snap.ids = append(snap.ids, qualify(t.name, id))
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
			table, sinkpg.ApplyCountColumn).Scan(&hasCounter); err != nil {
			return nil, err
		}
		if !hasCounter {
			continue
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE "+sinkpg.ApplyCountColumn+" <> 1").Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		snap.applyCountViolations += n
	}
	return snap, tx.Commit(ctx)
}
