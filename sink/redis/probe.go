package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// probe is how the checker (package verify, runProbe) reads a connector
// writing to Redis. The sink must run with audit_log: true: the audit log
// records every application of an event (inside the same script as the
// write, with exactly_once), so a double application shows as a repeated
// entry, which an idempotent SET would hide.
//
//   - exactly_once: the checkpoint (the offsets hash) and the audit log are
//     read in one atomic script, so they are consistent by construction.
//   - at_least_once: the checkpoint is the group's committed offsets, read
//     first by the checker; audit entries carry no origin, so the answer is
//     exact once the connector has caught up (later batches would count as
//     unexpected).
//
// With test_apply_counter on, every expected event's counter must be 1
// (ApplyCountViolations). With at_least_once the counters and the audit
// log may disagree after a crash: a pipeline cut short applies some of its
// commands and not others (an INCR without its audit entry), which is what
// at-least-once allows.
type probe struct {
	cfg    Config
	dlq    string
	counts func(context.Context, []string) (map[string]int64, error)
	close  func()
}

func newProbe(cfg Config, env component.SinkEnv) (component.Probe, error) {
	if !cfg.AuditLog {
		return nil, errors.New("verify needs audit_log: true on the redis sink: without it the sink keeps no record of how often each event was applied")
	}
	return &probe{cfg: cfg, dlq: env.DLQTopic, close: func() {}}, nil
}

// dlqLocation is where dead letters are, as audit entries name them; they
// have no apply counter.
const dlqLocation = "dlq"

func (p *probe) Snapshot(ctx context.Context, group string, withCheckpoint bool, _ connector.Checkpoint, _ bool) (component.ProbeSnapshot, error) {
	// The connection of an earlier Snapshot is replaced, not leaked.
	p.close()
	p.counts, p.close = nil, func() {}
	var snap component.ProbeSnapshot
	if withCheckpoint {
		s, err := NewStore(ctx, p.cfg, p.dlq)
		if err != nil {
			return snap, err
		}
		p.counts, p.close = s.ApplyCounts, s.Close
		snap.Checkpoint, snap.IDs, err = s.Snapshot(ctx, group)
		return snap, err
	}
	w, err := NewWriter(ctx, p.cfg, p.dlq)
	if err != nil {
		return snap, err
	}
	p.counts, p.close = w.ApplyCounts, w.Close
	snap.IDs, err = w.AuditLog(ctx)
	return snap, err
}

func (p *probe) Route(r *connector.Record, dlqTopic string) string {
	if dlqTopic != "" && r.Topic == dlqTopic {
		return dlqLocation
	}
	return p.cfg.Structure
}

// ApplyCountViolations implements component.ApplyCounter: with
// test_apply_counter, how many expected events (dead letters aside) were
// not applied exactly once.
func (p *probe) ApplyCountViolations(ctx context.Context, expected []string) (int, error) {
	if !p.cfg.TestApplyCounter || p.counts == nil {
		return 0, nil
	}
	var ids []string
	for _, q := range expected {
		if loc, id, ok := strings.Cut(q, ":"); ok && loc != dlqLocation {
			ids = append(ids, id)
		}
	}
	n, err := p.counts(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("reading apply counters: %w", err)
	}
	bad := 0
	for _, id := range ids {
		if n[id] != 1 {
			bad++
		}
	}
	return bad, nil
}

func (p *probe) Close() { p.close() }
