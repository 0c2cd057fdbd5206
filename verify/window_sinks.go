package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	sinkpg "github.com/connectd/connectd/sink/postgres"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/window"
)

// runWindowed checks a connector with a window stage against the batch
// oracle: its results are recomputed from the input below the checkpoint
// (recomputeWindowed) and compared, ID and value, with what the sink holds,
// read the way the connector's other checks read it (the checkpoint and
// the sink in one snapshot where the sink allows, else the group's
// offsets first).
func runWindowed(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	if o.Spec.KafkaSrc == nil {
		return Report{}, errors.New("a window stage needs a kafka source")
	}
	switch {
	case o.Spec.Postgres != nil:
		return runPostgresWindowed(ctx, o, base)
	case o.Spec.Redis != nil:
		return runRedisWindowed(ctx, o, base)
	}
	return runKafkaWindowed(ctx, o, base)
}

// runKafkaWindowed: results and dead letters are read from their topics
// with read_committed up to the last stable offsets, as for any Kafka
// sink; each result is compared with its key, value and timestamp.
func runKafkaWindowed(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	cp, err := checkpoint(ctx, o, base)
	if err != nil {
		return Report{}, err
	}
	state, err := sinkkafka.NewStateStore(base)
	if err != nil {
		return Report{}, err
	}
	defer state.Close()
	exp, err := recomputeWindowed(ctx, o, base, cp, state)
	if err != nil {
		return Report{}, err
	}
	sinkTopic := o.Spec.KafkaSink.Topic
	topics := map[string]bool{sinkTopic: true}
	if dlq := o.Spec.DLQTopic(); dlq != "" {
		topics[dlq] = true
	}
	if q := o.Spec.Conf.DeadLetterQueue; q != nil {
		topics[q.Topic] = true // late records, whatever errors.tolerance says
	}
	for _, r := range exp.letters {
		topics[r.Topic] = true
	}
	bound, err := stableBound(ctx, base, keys(topics))
	if err != nil {
		return Report{}, err
	}
	var actual []windowOutput
	err = readBelow(ctx, base, bound, func(r *kgo.Record) {
		out := windowOutput{dest: r.Topic}
		var origin string
		for _, h := range r.Headers {
			switch h.Key {
			case sinkkafka.HeaderEventID:
				out.id = string(h.Value)
			case sinkkafka.HeaderOrigin:
				origin = string(h.Value)
			}
		}
		if at, err := sinkkafka.OriginOf(out.id, origin); err == nil {
			if o.foreign != nil && o.foreign(at) {
				return // the other stage's dead letter (runStages)
			}
			out.origin = &at
		}
		if r.Topic == sinkTopic {
			out.stored = &storedResult{whole: r.Value, key: r.Key, hasKey: true, tsMs: r.Timestamp.UnixMilli(), hasTs: true}
		}
		actual = append(actual, out)
	})
	if err != nil {
		return Report{}, err
	}
	rep := exp.compare(actual, windowCheck{cp: cp, stopped: o.Stopped, laterVisible: true,
		resultDest: func(*connector.Record) string { return sinkTopic },
		letterDest: func(r *connector.Record) string { return r.Topic },
	})
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}

// runPostgresWindowed: the rows are read as the sink's probe reads them (one
// snapshot with the checkpoint with exactly_once), plus the columns that
// hold result values: a value or value_text column (the whole result), and
// json:<field> columns naming a field of the result (key, window_start,
// window_end or an aggregate).
func runPostgresWindowed(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	spec := o.Spec
	pg := spec.Postgres
	exactlyOnce := spec.Conf.Guarantee != config.AtLeastOnce && !spec.TwoPhase
	var cp connector.Checkpoint
	if !exactlyOnce {
		var err error
		if cp, err = checkpoint(ctx, o, base); err != nil {
			return Report{}, err
		}
	}
	extra, fields := pgResultColumns(pg)
	snap, err := sinkpg.ReadSnapshot(ctx, pg, spec.KafkaSrc.Group, exactlyOnce, cp, o.Stopped, extra)
	if err != nil {
		return Report{}, err
	}
	if exactlyOnce {
		cp = snap.Checkpoint
	}
	state := sinkpg.New(*pg, sinkpg.Options{Connector: spec.Conf.Name, ExactlyOnce: exactlyOnce})
	defer state.Close()
	exp, err := recomputeWindowed(ctx, o, base, cp, state)
	if err != nil {
		return Report{}, err
	}
	actual := make([]windowOutput, 0, len(snap.Rows))
	for _, row := range snap.Rows {
		out := windowOutput{dest: row.Table, id: row.ID, origin: row.Origin}
		if row.Table == pg.Table && len(fields) > 0 {
			out.stored = &storedResult{}
			for i, f := range fields {
				switch {
				case f.whole && row.Extra[i] != nil:
					out.stored.whole = []byte(*row.Extra[i])
				case f.whole:
					out.stored.whole = []byte("null")
				default:
					if out.stored.fields == nil {
						out.stored.fields = map[string]storedField{}
					}
					out.stored.fields[f.name] = storedField{text: row.Extra[i], json: f.json}
				}
			}
		}
		actual = append(actual, out)
	}
	dlqTopic := spec.DLQTopic()
	rep := exp.compare(actual, windowCheck{cp: cp, stopped: o.Stopped, laterVisible: !exactlyOnce,
		resultDest: func(r *connector.Record) string { return pg.Route(r, dlqTopic) },
		letterDest: func(*connector.Record) string { return pg.DLQTable },
	})
	rep.ApplyCountViolations = snap.ApplyCountViolations
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}

// pgResultField is a column of the table that holds result values.
type pgResultField struct {
	whole bool   // value or value_text: the whole result
	name  string // else the result field a json:<name> column holds
	json  bool   // jsonb: compared as JSON; else as text
}

// pgResultColumns returns the SELECT expressions (as text) of the
// columns that hold result values, and what each holds.
func pgResultColumns(pg *sinkpg.Config) ([]string, []pgResultField) {
	extra := []string{} // not nil: ReadSnapshot then returns the rows
	var fields []pgResultField
	for col, src := range pg.Columns {
		f := pgResultField{}
		switch {
		case src == "value" || src == "value_text":
			f.whole = true
		case strings.HasPrefix(src, "json:"):
			path, typ, _ := strings.Cut(strings.TrimPrefix(src, "json:"), "::")
			if strings.Contains(path, ".") {
				continue // results are flat: a nested path holds nothing of them
			}
			f.name, f.json = path, typ == "" || typ == "jsonb"
		default:
			continue
		}
		extra = append(extra, pgx.Identifier{col}.Sanitize()+"::text")
		fields = append(fields, f)
	}
	return extra, fields
}

// runRedisWindowed: the audit log gives the event IDs applied (each
// application once), as the sink's probe reads it; where the data key of a result
// is its event ID (the default key template) and the structure is a
// string or a hash, the stored value is read too and compared.
func runRedisWindowed(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	spec := o.Spec
	rc := *spec.Redis
	if !rc.AuditLog {
		return Report{}, errors.New("verify needs audit_log: true on the redis sink: without it the sink keeps no record of how often each event was applied")
	}
	dlqTopic := spec.DLQTopic()
	var cp connector.Checkpoint
	var entries []string
	var client *redis.Client
	var counts func(context.Context, []string) (map[string]int64, error)
	var state connector.StateStore // the sink's, for the idle log
	if spec.Conf.Guarantee == config.AtLeastOnce {
		var err error
		if cp, err = checkpoint(ctx, o, base); err != nil {
			return Report{}, err
		}
		w, err := sinkredis.NewWriter(ctx, rc, dlqTopic)
		if err != nil {
			return Report{}, err
		}
		defer w.Close()
		if entries, err = w.AuditLog(ctx); err != nil {
			return Report{}, err
		}
		client, counts, state = w.Client(), w.ApplyCounts, w
	} else {
		s, err := sinkredis.NewStore(ctx, rc, dlqTopic)
		if err != nil {
			return Report{}, err
		}
		defer s.Close()
		if cp, entries, err = s.Snapshot(ctx, spec.KafkaSrc.Group); err != nil {
			return Report{}, err
		}
		client, counts, state = s.Client(), s.ApplyCounts, s
	}
	exp, err := recomputeWindowed(ctx, o, base, cp, state)
	if err != nil {
		return Report{}, err
	}
	actual := make([]windowOutput, 0, len(entries))
	for _, e := range entries {
		target, id, ok := sinkredis.SplitAuditEntry(e)
		if !ok {
			target, id = "", e
		}
		actual = append(actual, windowOutput{dest: target, id: id})
	}
	if err := readRedisResults(ctx, client, rc, actual); err != nil {
		return Report{}, err
	}
	rep := exp.compare(actual, windowCheck{cp: cp, stopped: o.Stopped,
		resultDest: func(*connector.Record) string { return rc.Structure },
		letterDest: func(*connector.Record) string { return sinkredis.AuditTargetDLQ },
	})
	if rc.TestApplyCounter && exp.spec.Emit == window.EmitFinal {
		// Each final result applied once (the audit log shows it too;
		// the counter is the sink's own side effect).
		var ids []string
		for _, res := range exp.results {
			if res.closed {
				ids = append(ids, res.record.EventID)
			}
		}
		n, err := counts(ctx, ids)
		if err != nil {
			return Report{}, fmt.Errorf("reading apply counters: %w", err)
		}
		for _, id := range ids {
			if n[id] != 1 {
				rep.ApplyCountViolations++
			}
		}
	}
	return rep, checkPartitions(ctx, o, base, cp, &rep)
}

// readRedisResults fills in the stored value of each data output whose
// key the checker can name: the default key template {event_id}, a string
// (value: value or json:<field>) or a hash (value: fields, value or
// json:<field>). Others are compared by event ID only.
func readRedisResults(ctx context.Context, client *redis.Client, rc sinkredis.Config, outs []windowOutput) error {
	if rc.Key != sinkredis.DefaultKey || (rc.Structure != sinkredis.StructureString && rc.Structure != sinkredis.StructureHash) {
		return nil
	}
	field := ""
	if path, ok := strings.CutPrefix(rc.Value, sinkredis.ValueJSONPrefix); ok {
		if strings.Contains(path, ".") {
			return nil
		}
		field = path
	}
	const chunk = 1000
	for from := 0; from < len(outs); from += chunk {
		part := outs[from:min(from+chunk, len(outs))]
		pipe := client.Pipeline()
		cmds := make([]redis.Cmder, len(part))
		for i, out := range part {
			if out.dest != rc.Structure {
				continue
			}
			key := rc.KeyPrefix + out.id
			if rc.Structure == sinkredis.StructureString {
				cmds[i] = pipe.Get(ctx, key)
			} else {
				cmds[i] = pipe.HGetAll(ctx, key)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, cmd := range cmds {
			var s *storedResult
			switch c := cmd.(type) {
			case nil:
				continue
			case *redis.StringCmd:
				v, err := c.Result()
				if errors.Is(err, redis.Nil) {
					s = &storedResult{whole: []byte("null")} // applied, then gone
				} else if err != nil {
					return err
				} else {
					s = storedSingle(field, v)
				}
			case *redis.MapStringStringCmd:
				m, err := c.Result()
				if err != nil {
					return err
				}
				if rc.Value == sinkredis.ValueFields {
					s = &storedResult{fields: map[string]storedField{}, allFields: true}
					for k, v := range m {
						s.fields[k] = storedField{text: &v}
					}
				} else if v, ok := m["value"]; ok {
					s = storedSingle(field, v)
				} else {
					s = &storedResult{whole: []byte("null")}
				}
			}
			part[i].stored = s
		}
	}
	return nil
}

// storedSingle is a string the Redis sink stored: the whole value, or one
// field (field != "").
func storedSingle(field, v string) *storedResult {
	if field == "" {
		return &storedResult{whole: []byte(v)}
	}
	return &storedResult{fields: map[string]storedField{field: {text: &v}}}
}
