package postgres

import (
	"encoding/json"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/connectd/connectd/connector"
)

// Kafka Connect's dead-letter header names, which pipeline.Processor sets
// on the records it dead-letters (pipeline imports this package, so they
// are repeated here; a test checks they match).
const (
	headerDLQStage   = "__connect.errors.stage"
	headerDLQMessage = "__connect.errors.exception.message"
)

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
			if v, ok := r.Header(headerDLQStage); ok {
				stages[i] = valid(cleanText(string(v)))
			}
			if v, ok := r.Header(headerDLQMessage); ok {
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
