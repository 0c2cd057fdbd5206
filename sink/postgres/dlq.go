package postgres

import (
	"encoding/json"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/connectd/connectd/connector"
)

// dlqColumns are the dead-letter table's columns, in insert order.
var dlqColumns = []string{"event_id", "origin_topic", "origin_partition", "origin_offset", "error_stage", "error_message", "headers", "key", "value"}

// dlqStatements returns the dead-letter table's DDL and insert, for the
// table named by the sanitized identifier dlq. A dead letter is keyed on
// its event ID, so a replay writes nothing twice, whatever the guarantee.
// That would also hide a dead letter applied twice; with test_apply_counter
// the table gets an apply_count column, as the data table does, and a
// replay raises it instead of doing nothing (verify requires 1 everywhere).
func dlqStatements(c *Config, dlq string) (create, insert string) {
	counter, conflict := "", "DO NOTHING"
	if c.TestApplyCounter {
		counter = ", " + ApplyCountColumn + " int NOT NULL DEFAULT 1"
		conflict = "DO UPDATE SET " + ApplyCountColumn + " = t." + ApplyCountColumn + " + 1"
	}
	create = "CREATE TABLE IF NOT EXISTS " + dlq + " (event_id text PRIMARY KEY, origin_topic text NOT NULL," +
		" origin_partition int NOT NULL, origin_offset bigint NOT NULL, error_stage text, error_message text," +
		" headers jsonb, key bytea, value bytea, created_at timestamptz NOT NULL DEFAULT now()" + counter + ")"
	insert = "INSERT INTO " + dlq + " AS t (" + strings.Join(dlqColumns, ", ") + ")" +
		" SELECT u.id, u.t, u.p, u.o, u.stage, u.msg, u.h::jsonb, u.k, u.v" +
		" FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bytea[])" +
		" AS u(id, t, p, o, stage, msg, h, k, v) ON CONFLICT (event_id) " + conflict
	return create, insert
}

// queueDLQ queues the insert of dead-letter rows: one per record, keyed on
// its event ID (a replay writes nothing twice), with its origin, the error
// (from the pipeline's headers, or sinkErr for records the sink itself
// could not map), all headers as JSON, and the raw key and value.
func queueDLQ(b *pgx.Batch, sql string, recs []*connector.Record, sinkErr map[*connector.Record]error) {
	n := len(recs)
	ids, topics, stages, msgs, headers := make([]string, n), make([]string, n), make([]pgtype.Text, n), make([]pgtype.Text, n), make([]string, n)
	parts, offs := make([]int32, n), make([]int64, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	for i, r := range recs {
		ids[i] = cleanText(r.EventID)
		topics[i], parts[i], offs[i] = cleanText(r.Origin.Topic), r.Origin.Partition, r.Origin.Offset
		if err, ok := sinkErr[r]; ok {
			stages[i], msgs[i] = valid("sink"), valid(cleanText((&connector.RecordError{Origin: r.Origin, Stage: "sink", Err: err}).Error()))
		} else {
			if v, ok := r.Header(connector.HeaderDLQStage); ok {
				stages[i] = valid(cleanText(string(v)))
			}
			if v, ok := r.Header(connector.HeaderDLQMessage); ok {
				msgs[i] = valid(cleanText(string(v)))
			}
		}
		headers[i] = headersJSON(r.Headers)
		keys[i], values[i] = r.Key, r.Value
	}
	b.Queue(sql, ids, topics, parts, offs, stages, msgs, headers, keys, values)
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// headersJSON renders headers as a JSON array of {key, value}, values as
// text (invalid UTF-8 and NUL, which jsonb cannot hold, replaced).
func headersJSON(hs []connector.Header) string {
	out := make([]headerJSON, len(hs))
	for i, h := range hs {
		out[i] = headerJSON{cleanText(h.Key), cleanText(string(h.Value))}
	}
	b, _ := json.Marshal(out) // strings only: cannot fail
	return string(b)
}

// cleanText makes s storable as PostgreSQL text.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Route returns where the sink writes r: the dead-letter table when r is a
// dead-letter record (its Topic is dlqTopic) or when dlqTopic is set and r
// cannot be mapped to the table's columns; the table otherwise. The checker
// uses it to recompute the expected rows. cfg must have been validated.
func (c *Config) Route(r *connector.Record, dlqTopic string) string {
	if dlqTopic == "" {
		return c.Table
	}
	if r.Topic == dlqTopic {
		return c.DLQTable
	}
	m := mapper{cols: c.cols}
	if _, err := m.mapRecord(r); err != nil {
		return c.DLQTable
	}
	if _, err := text(column{name: EventIDColumn}, []byte(r.EventID)); err != nil {
		return c.DLQTable
	}
	return c.Table
}
