package postgres

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// statements are the SQL texts of one sink, built once from its config.
// Every statement takes its rows as arrays and unnests them, so a batch of
// any size is one statement per chunk, and the text is the same for every
// batch (prepared once per connection by pgx's statement cache).
type statements struct {
	table, dlq, offsets string // sanitized identifiers

	insert     string // rows: ON CONFLICT with exactly_once, plain with at_least_once
	copyInto   string // rows by COPY into the table (exactly_once, copy.go)
	insertDLQ  string
	stageTable string // COPY target, a temporary table dropped at commit
	createStage,
	mergeStage string
	claim, cas                            string
	createTable, createDLQ, createOffsets string
	migrateOffsets                        string
}

func ident(name string) string {
	parts, _ := parseIdent(name) // checked by Validate
	return pgx.Identifier(parts).Sanitize()
}

func buildStatements(c *Config, exactlyOnce bool) statements {
	s := statements{table: ident(c.Table), dlq: ident(c.DLQTable), offsets: ident(c.OffsetsTable)}

	// Target columns, the unnest parameters and the select list.
	names := []string{pgx.Identifier{EventIDColumn}.Sanitize()}
	params := []string{"$1::text[]"}
	aliases := []string{"c0"}
	selects := []string{"u.c0"}
	stageCols := []string{"c0 text"}
	for i, col := range c.cols {
		names = append(names, pgx.Identifier{col.name}.Sanitize())
		a := fmt.Sprintf("c%d", i+1)
		params = append(params, fmt.Sprintf("$%d::text[]", i+2))
		aliases = append(aliases, a)
		selects = append(selects, "u."+a+"::"+col.typ)
		stageCols = append(stageCols, a+" text")
	}
	// COPY leaves the apply counter to its default, 1.
	s.copyInto = "COPY " + s.table + " (" + strings.Join(names, ", ") + ") FROM STDIN"
	if c.TestApplyCounter {
		names = append(names, ApplyCountColumn)
		selects = append(selects, "1")
	}
	conflict := ""
	if exactlyOnce {
		conflict = " " + conflictClause(c)
	}
	into := "INSERT INTO " + s.table + " AS t (" + strings.Join(names, ", ") + ")"
	sel := " SELECT " + strings.Join(selects, ", ")
	s.insert = into + sel + " FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")" + conflict

	s.stageTable = "connectd_stage"
	s.createStage = "CREATE TEMPORARY TABLE " + s.stageTable + " (" + strings.Join(stageCols, ", ") + ") ON COMMIT DROP"
	s.mergeStage = into + sel + " FROM " + s.stageTable + " AS u" + conflict

	s.createDLQ, s.insertDLQ = dlqStatements(c, s.dlq)

	// Claim: raise every partition's claim epoch (a new row starts at 1),
	// and return it with the stored checkpoint. The row lock the upsert
	// takes orders concurrent claims: each gets its own epoch.
	s.claim = "INSERT INTO " + s.offsets + " AS o (group_id, topic, partition, next_offset, claim_epoch, updated_at)" +
		" SELECT $1, u.topic, u.partition, -1, 1, now() FROM unnest($2::text[], $3::int[]) AS u(topic, partition)" +
		" ON CONFLICT (group_id, topic, partition) DO UPDATE SET claim_epoch = o.claim_epoch + 1, updated_at = now()" +
		" RETURNING o.topic, o.partition, o.next_offset, o.claim_epoch"
	// CAS: move each partition from its expected offset to the new one, at
	// the claim epoch this owner was issued; a row that does not match is
	// not updated, and the caller compares the count.
	s.cas = "UPDATE " + s.offsets + " AS o SET next_offset = u.next, updated_at = now()" +
		" FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[]) AS u(topic, partition, epoch, prev, next)" +
		" WHERE o.group_id = $1 AND o.topic = u.topic AND o.partition = u.partition" +
		" AND o.claim_epoch = u.epoch AND o.next_offset = u.prev"
	// Tables created before claim epochs had a "generation" column in its
	// place (the consumer group's generation); renaming it keeps their
	// checkpoints, and the old generations serve as starting epochs.
	s.migrateOffsets = "DO $connectd$ BEGIN IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(" +
		quoteLiteral(s.offsets) + ") AND attname = 'generation' AND NOT attisdropped) THEN ALTER TABLE " + s.offsets +
		" RENAME COLUMN generation TO claim_epoch; END IF; END $connectd$"

	key := " PRIMARY KEY"
	if !exactlyOnce {
		key = " NOT NULL" // at_least_once: plain INSERT, duplicates possible
	}
	defs := []string{pgx.Identifier{EventIDColumn}.Sanitize() + " text" + key}
	for _, col := range c.cols {
		defs = append(defs, pgx.Identifier{col.name}.Sanitize()+" "+col.typ)
	}
	if c.TestApplyCounter {
		defs = append(defs, ApplyCountColumn+" int NOT NULL DEFAULT 1")
	}
	s.createTable = "CREATE TABLE IF NOT EXISTS " + s.table + " (" + strings.Join(defs, ", ") + ")"
	s.createOffsets = "CREATE TABLE IF NOT EXISTS " + s.offsets + " (group_id text NOT NULL, topic text NOT NULL," +
		" partition int NOT NULL, next_offset bigint NOT NULL, claim_epoch bigint NOT NULL," +
		" updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (group_id, topic, partition))"
	return s
}

// conflictClause is the exactly_once ON CONFLICT clause. With the apply
// counter even do_nothing becomes an update, of the counter alone: a
// replayed row then shows apply_count 2.
func conflictClause(c *Config) string {
	var sets []string
	if c.Conflict == DoUpdate {
		for _, col := range c.cols {
			n := pgx.Identifier{col.name}.Sanitize()
			sets = append(sets, n+" = EXCLUDED."+n)
		}
	}
	if c.TestApplyCounter {
		sets = append(sets, ApplyCountColumn+" = t."+ApplyCountColumn+" + 1")
	}
	if len(sets) == 0 {
		return "ON CONFLICT (" + EventIDColumn + ") DO NOTHING"
	}
	return "ON CONFLICT (" + EventIDColumn + ") DO UPDATE SET " + strings.Join(sets, ", ")
}
