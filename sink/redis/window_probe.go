package redis

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

var _ component.WindowProbe = (*probe)(nil)

// Windows reads a windowed connector's output as Snapshot does: the audit
// log gives the event IDs applied (each application once), with the
// checkpoint in the same atomic read with exactly_once. Where the data key
// of a result is its event ID (the default key template) and the
// structure is a string or a hash, the stored value is read too, for the
// checker to compare. The window state lives in the sink's own keys.
func (p *probe) Windows(ctx context.Context, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool) (component.WindowSnapshot, error) {
	p.close()
	p.counts, p.close = nil, func() {}
	var snap component.WindowSnapshot
	var entries []string
	var client *redis.Client
	if withCheckpoint {
		s, err := NewStore(ctx, p.cfg, p.dlq)
		if err != nil {
			return snap, err
		}
		p.counts, p.close, client, snap.State = s.ApplyCounts, s.Close, s.Client(), s
		if snap.Checkpoint, entries, err = s.Snapshot(ctx, group); err != nil {
			return snap, err
		}
	} else {
		w, err := NewWriter(ctx, p.cfg, p.dlq)
		if err != nil {
			return snap, err
		}
		p.counts, p.close, client, snap.State = w.ApplyCounts, w.Close, w.Client(), w
		if entries, err = w.AuditLog(ctx); err != nil {
			return snap, err
		}
	}
	snap.Letters = AuditTargetDLQ
	snap.Outputs = make([]component.WindowOutput, 0, len(entries))
	for _, e := range entries {
		target, id, ok := SplitAuditEntry(e)
		if !ok {
			target, id = "", e
		}
		snap.Outputs = append(snap.Outputs, component.WindowOutput{Dest: target, ID: id})
	}
	return snap, p.readResults(ctx, client, snap.Outputs)
}

// readResults fills in the stored value of each data output whose key
// the checker can name: the default key template {event_id}, a string
// (value: value or json:<field>) or a hash (value: fields, value or
// json:<field>). Others are compared by event ID only.
func (p *probe) readResults(ctx context.Context, client *redis.Client, outs []component.WindowOutput) error {
	rc := p.cfg
	if rc.Key != DefaultKey || (rc.Structure != StructureString && rc.Structure != StructureHash) {
		return nil
	}
	field := ""
	if path, ok := strings.CutPrefix(rc.Value, ValueJSONPrefix); ok {
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
			if out.Dest != rc.Structure {
				continue
			}
			key := rc.KeyPrefix + out.ID
			if rc.Structure == StructureString {
				cmds[i] = pipe.Get(ctx, key)
			} else {
				cmds[i] = pipe.HGetAll(ctx, key)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, cmd := range cmds {
			var s *component.StoredResult
			switch c := cmd.(type) {
			case nil:
				continue
			case *redis.StringCmd:
				v, err := c.Result()
				if errors.Is(err, redis.Nil) {
					s = &component.StoredResult{Whole: []byte("null")} // applied, then gone
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
				if rc.Value == ValueFields {
					s = &component.StoredResult{Fields: map[string]component.StoredField{}, AllFields: true}
					for k, v := range m {
						s.Fields[k] = component.StoredField{Text: &v}
					}
				} else if v, ok := m["value"]; ok {
					s = storedSingle(field, v)
				} else {
					s = &component.StoredResult{Whole: []byte("null")}
				}
			}
			part[i].Stored = s
		}
	}
	return nil
}

// storedSingle is a string the sink stored: the whole value, or one field
// (field != "").
func storedSingle(field, v string) *component.StoredResult {
	if field == "" {
		return &component.StoredResult{Whole: []byte(v)}
	}
	return &component.StoredResult{Fields: map[string]component.StoredField{field: {Text: &v}}}
}
