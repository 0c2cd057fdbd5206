package redis

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
)

// AuditTargetDLQ is the audit log target of dead-lettered records; data
// records are logged under their structure (string, hash, stream).
const AuditTargetDLQ = "dlq"

// op kinds, as the commit script reads them.
const (
	opString = "s" // SET key value
	opHash   = "h" // HSET key fields...
	opStream = "x" // XADD key * fields...
	opDLQ    = "d" // XADD dlq * fields...
)

// op is one record's write, rendered in Go before anything is sent so that
// nothing that depends on the record can fail inside the script.
type op struct {
	kind    string
	key     string // full key, prefix included
	eventID string
	entry   string // audit log entry: <target>:<event_id>
	args    []any  // opString: the value; otherwise field/value pairs
}

// planner renders records into ops for one sink config.
type planner struct {
	cfg      *Config
	k        keys
	dlqTopic string // "" means errors.tolerance none
	target   string // audit target of data records
	kind     string // op kind of data records
}

func newPlanner(cfg *Config, dlqTopic string) *planner {
	p := &planner{cfg: cfg, k: cfg.keys(), dlqTopic: dlqTopic, target: cfg.Structure}
	switch cfg.Structure {
	case StructureHash:
		p.kind = opHash
	case StructureStream:
		p.kind = opStream
	default:
		p.kind = opString
	}
	return p
}

// op renders r. A record routed to the dead-letter topic goes to the DLQ
// stream. A record whose key or value cannot be rendered goes there too
// with errors.tolerance all (the decision depends only on the record, so a
// replay decides the same); otherwise it fails the batch with a Fatal
// error naming its origin. offsetsKey is the group's offsets hash ("" for
// the at-least-once writer).
func (p *planner) op(r *connector.Record, offsetsKey string) (op, error) {
	if p.dlqTopic != "" && r.Topic == p.dlqTopic {
		return p.dlqOp(r, ""), nil
	}
	o, err := p.dataOp(r, offsetsKey)
	if err == nil {
		return o, nil
	}
	if p.dlqTopic != "" {
		return p.dlqOp(r, (&connector.RecordError{Origin: r.Origin, Stage: "sink", Err: err}).Error()), nil
	}
	return op{}, connector.NewCommitError(connector.Fatal, "render record",
		&connector.RecordError{Origin: r.Origin, Stage: "sink", Err: err})
}

func (p *planner) dataOp(r *connector.Record, offsetsKey string) (op, error) {
	key, err := p.cfg.key.render(r)
	if err != nil {
		return op{}, err
	}
	key = p.k.prefix + key
	if p.k.reserved(key, offsetsKey, p.cfg.TestApplyCounter) {
		return op{}, &reservedKeyError{key}
	}
	o := op{kind: p.kind, key: key, eventID: r.EventID}
	if p.cfg.AuditLog {
		o.entry = p.target + ":" + r.EventID
	}
	switch p.kind {
	case opString:
		v, err := p.cfg.value.single(r)
		if err != nil {
			return op{}, err
		}
		o.args = []any{v}
	case opHash:
		if o.args, _, err = p.cfg.value.appendFields(make([]any, 0, 2), r); err != nil {
			return op{}, err
		}
	case opStream:
		if o.args, _, err = p.cfg.value.appendFields(append(make([]any, 0, 4), "event_id", r.EventID), r); err != nil {
			return op{}, err
		}
	}
	return o, nil
}

type reservedKeyError struct{ key string }

func (e *reservedKeyError) Error() string {
	return "key: " + strconv.Quote(e.key) + " is one of the sink's own keys (offsets, dead letters, audit log, apply counters or state)"
}

// dlqOp is the DLQ stream entry for r: its event ID, origin, key, value and
// headers (Kafka Connect's __connect.errors.* among them), plus the sink's
// own error when cause is not empty.
func (p *planner) dlqOp(r *connector.Record, cause string) op {
	args := make([]any, 0, 8+2*len(r.Headers)+4)
	args = append(args, "event_id", r.EventID, "origin", r.Origin.String(), "key", r.Key, "value", r.Value)
	for _, h := range r.Headers {
		if len(args) >= 2*maxFields-4 {
			break // more headers than one XADD can carry from the script
		}
		args = append(args, h.Key, h.Value)
	}
	if cause != "" {
		args = append(args, connector.HeaderDLQStage, "sink", connector.HeaderDLQMessage, cause)
	}
	o := op{kind: opDLQ, key: p.k.dlq, eventID: r.EventID, args: args}
	if p.cfg.AuditLog {
		o.entry = AuditTargetDLQ + ":" + r.EventID
	}
	return o
}

// counterKey is the apply counter of an event ID.
func (p *planner) counterKey(eventID string) string { return p.k.counter + eventID }

// msetPairs is how many keys one MSET sets, as in the commit script.
const msetPairs = 1000

// queueWrites queues the writes of ops on pipe, as the commit script
// makes them: strings without a TTL as MSETs of msetPairs keys (a key set
// twice keeps its last value: MSET sets in argument order), the rest one
// command per record, then one INCR per record (test_apply_counter) and
// one RPUSH of the audit log entries (audit_log).
func (p *planner) queueWrites(ctx context.Context, pipe redis.Pipeliner, ops []op) {
	ttl := p.cfg.TTL
	var entries, mset []any
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opString:
			if ttl > 0 {
				pipe.Set(ctx, o.key, o.args[0], ttl)
				break
			}
			if mset == nil {
				mset = make([]any, 0, 2*min(msetPairs, len(ops)-i))
			}
			mset = append(mset, o.key, o.args[0])
			if len(mset) == 2*msetPairs {
				pipe.MSet(ctx, mset...)
				mset = nil
			}
		case opHash:
			pipe.HSet(ctx, o.key, o.args...)
			if ttl > 0 {
				pipe.PExpire(ctx, o.key, ttl)
			}
		case opStream, opDLQ:
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: o.key, Values: o.args})
			if o.kind == opStream && ttl > 0 {
				pipe.PExpire(ctx, o.key, ttl)
			}
		}
		if p.cfg.TestApplyCounter {
			pipe.Incr(ctx, p.counterKey(o.eventID))
		}
		if p.cfg.AuditLog {
			entries = append(entries, o.entry)
		}
	}
	if len(mset) > 0 {
		pipe.MSet(ctx, mset...)
	}
	if len(entries) > 0 {
		pipe.RPush(ctx, p.k.audit, entries...)
	}
}
