package postgres

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The exactly_once write path for rows: COPY straight into the sink table.
//
// An exactly_once batch's rows are new event IDs almost always: the
// checkpoint commits with the rows, so a restart resumes after the last
// committed row and never writes it again. Only a replay (offsets reset,
// another member that wrote the same input, a producer that sent an event
// twice under one event_id header) meets rows that exist. So the rows are
// first COPYed into the table, which the primary key on event_id refuses
// if any exists (SQLSTATE 23505, and the whole transaction rolls back);
// the batch is then written again from the start with INSERT ... ON
// CONFLICT (the upsert path). Either way the transaction is the same one
// unit: rows, dead letters, state and the offsets compare-and-set, and
// whichever path wrote the rows, a replayed event ID is applied once.
//
// Why: INSERT ... ON CONFLICT inserts speculatively, looking each key up in
// the index before inserting it and confirming it after, and its input
// comes through unnest arrays cast in SQL. COPY parses the text stream
// with each column's input function and inserts with one index search per
// row. On issue 17's rows (10,000 a batch, event ID and 100-byte jsonb) a
// batch took 74 ms with unnest ON CONFLICT, 72 ms through a staging table
// and INSERT ... SELECT ... ON CONFLICT, 45 ms with COPY into the table;
// at_least_once's plain unnest INSERT into its unindexed table took 39 ms.
//
// Conflicts cost the batch once more, so after a batch that conflicted the
// next ones take the upsert path directly: 1, then 2, 4, ... up to
// maxCopyBackoff batches while conflicts continue (a replay of a whole
// topic), back to COPY after a clean COPY.
//
// COPY is used only where it writes what INSERT would (probeCopy): a
// plain or partitioned table without rules (COPY ignores rules) or row
// security (COPY FROM refuses it), whose event_id and mapped columns have
// exactly the configured types, so each value goes through the same input
// function as the upsert path's cast (a timestamptz value into a
// timestamp column would otherwise lose its zone conversion).

// maxCopyBackoff is the most batches written by upsert after a conflict.
const maxCopyBackoff = 64

// copyGate decides, batch by batch, whether the rows go by COPY.
type copyGate struct {
	mu      sync.Mutex
	skip    int // batches left to write by upsert
	penalty int // the skip after the next conflict
}

// take reports whether the next batch tries COPY.
func (g *copyGate) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.skip > 0 {
		g.skip--
		return false
	}
	return true
}

// done records how a COPY attempt went: conflicted (an event ID existed)
// or not.
func (g *copyGate) done(conflicted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !conflicted {
		g.penalty = 0
		return
	}
	g.penalty = min(max(2*g.penalty, 1), maxCopyBackoff)
	g.skip = g.penalty
}

// probeCopy reports whether COPY into the sink table writes what the
// upsert path would (see above). Any doubt says no: the upsert path is
// always correct. known is false while the table does not exist
// (auto_create off): ask again later.
func (s *Store) probeCopy(ctx context.Context, p *pgxpool.Pool) (ok, known bool, err error) {
	names := []string{EventIDColumn}
	types := []string{"text"}
	for _, c := range s.cfg.cols {
		names = append(names, c.name)
		types = append(types, c.typ)
	}
	err = p.QueryRow(ctx, `SELECT c.relkind IN ('r', 'p') AND NOT c.relhasrules AND NOT c.relrowsecurity
		AND (SELECT count(*) FROM unnest($2::text[], $3::text[]) AS u(name, typ)
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = u.name AND NOT a.attisdropped
			WHERE a.atttypid = to_regtype(u.typ)) = cardinality($2::text[])
		FROM pg_class c WHERE c.oid = to_regclass($1)`, s.sql.table, names, types).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil // written by upsert, which then fails clearly
	}
	return ok, err == nil, err
}

// copyRowsDirect streams the batch's rows, mapped a chunk ahead, into the
// sink table with COPY, in the transaction open on c. A record that
// cannot be mapped ends the COPY and is returned as mapErr (a Fatal record
// error), as on the upsert path.
func (s *Store) copyRowsDirect(ctx context.Context, c *pgconn.PgConn, chunks <-chan mapped) (rejected []rejectedRow, mapErr, err error) {
	r := &copyReader{chunks: chunks}
	_, err = c.CopyFrom(ctx, r, s.sql.copyInto)
	return r.rejected, r.err, err
}

// copyReader encodes mapped chunks as COPY text format, a chunk at a time,
// so memory is bounded by the chunk as on the upsert path.
type copyReader struct {
	chunks   <-chan mapped
	buf      []byte
	off      int
	rejected []rejectedRow
	err      error
}

func (r *copyReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		m, ok := <-r.chunks
		if !ok {
			return 0, io.EOF
		}
		if m.err != nil {
			r.err = m.err
			return 0, m.err
		}
		r.rejected = append(r.rejected, m.rejected...)
		r.buf, r.off = r.buf[:0], 0
		for _, it := range m.items {
			r.buf = appendCopyField(r.buf, it.rec.EventID)
			for _, v := range it.vals {
				r.buf = append(r.buf, '\t')
				if !v.Valid {
					r.buf = append(r.buf, `\N`...)
					continue
				}
				r.buf = appendCopyField(r.buf, v.String)
			}
			r.buf = append(r.buf, '\n')
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// appendCopyField appends s escaped for COPY's text format: backslash,
// and the tab, newline and carriage return that would end a field or a
// row. Every backslash is doubled, so no other escape (nor the \. end
// marker) can appear. Values have no NUL (the mapper refuses it).
func appendCopyField(b []byte, s string) []byte {
	for {
		i := strings.IndexAny(s, "\\\t\n\r")
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		switch s[i] {
		case '\\':
			b = append(b, `\\`...)
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		}
		s = s[i+1:]
	}
}

// isEventIDConflict reports whether err is a unique violation: on the
// COPY path an event ID that exists (or a value another unique constraint
// of the table refuses, which the upsert path then reports as it always
// did).
func isEventIDConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
