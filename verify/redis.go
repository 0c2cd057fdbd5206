package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	sinkredis "github.com/connectd/connectd/sink/redis"
)

// runRedis checks a connector writing to Redis. The sink must run with
// audit_log: true: the audit log records every application of an event
// (inside the same script as the write, with exactly_once), so a double
// application shows as a repeated entry, which an idempotent SET would hide.
//
//   - exactly_once: the checkpoint (the offsets hash) and the audit log are
//     read in one atomic script, so they are consistent by construction.
//   - at_least_once: the checkpoint is the group's committed offsets, read
//     first; audit entries carry no origin, so the answer is exact once the
//     connector has caught up (later batches would count as unexpected).
//
// With test_apply_counter on, every expected event's counter must be 1.
// With at_least_once the counters and the audit log may disagree after a
// crash: a pipeline cut short applies some of its commands and not others
// (an INCR without its audit entry), which is what at-least-once allows.
func runRedis(ctx context.Context, o Options, base []kgo.Opt) (Report, error) {
	spec := o.Spec
	rc := *spec.Redis
	if spec.KafkaSrc == nil {
		return Report{}, errors.New("a redis sink needs a kafka source")
	}
	if !rc.AuditLog {
		return Report{}, errors.New("verify needs audit_log: true on the redis sink: without it the sink keeps no record of how often each event was applied")
	}
	dlqTopic := spec.DLQTopic()
	var cp connector.Checkpoint
	var entries []string
	var counts func(context.Context, []string) (map[string]int64, error)
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
		counts = w.ApplyCounts
	} else {
		s, err := sinkredis.NewStore(ctx, rc, dlqTopic)
		if err != nil {
			return Report{}, err
		}
		defer s.Close()
		if cp, entries, err = s.Snapshot(ctx, spec.KafkaSrc.Group); err != nil {
			return Report{}, err
		}
		counts = s.ApplyCounts
	}
	var ids []string
	expected, _, err := expectedOutputs(ctx, o, base, cp, func(r *connector.Record) string {
		if dlqTopic != "" && r.Topic == dlqTopic {
			return "dlq" // dead letters have no apply counter
		}
		ids = append(ids, r.EventID)
		return rc.Structure
	})
	if err != nil {
		return Report{}, err
	}
	rep := Compare(expected, entries)
	if rc.TestApplyCounter {
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
