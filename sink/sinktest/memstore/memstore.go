// Package memstore is the reference exactly-once sink store: the
// SinkStore contract (claim epochs, output and checkpoint committed as one
// unit under a compare-and-set) kept in memory under one mutex, with
// nothing else to get wrong. It passes the conformance suite (sinktest)
// under -short, and it lets the commit protocols of package txn be tested
// on kfake without a database. Prepared (participant.go) is the same for
// two-phase participants, held to sinktest.Participant.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// RefusedValue is a record value the store refuses (a Fatal commit error),
// for planting a failure in the middle of a batch.
const RefusedValue = "memstore: refuse this record"

// Data is the backing state that every Store opened on it shares, as
// processes share a database.
type Data struct {
	mu      sync.Mutex
	claims  map[string]map[connector.TopicPartition]*partition // group → partition
	applied []string                                           // "<location>:<event id>", one per application
	dlq     string
	claimed int // Claim calls
	fenced  int // commits refused as Fenced
}

// Stats counts the claims made and the commits fenced, for tests to show
// that rebalances and zombies happened.
func (d *Data) Stats() (claims, fenced int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.claimed, d.fenced
}

type partition struct {
	epoch int64
	next  int64 // connector.NoCheckpoint when none
}

// New returns empty state whose dead letters are the records of dlqTopic.
func New(dlqTopic string) *Data {
	return &Data{claims: map[string]map[connector.TopicPartition]*partition{}, dlq: dlqTopic}
}

// Locations of the output, as Route and the probe's IDs name them.
const (
	Rows        = "rows"
	DeadLetters = "dead_letters"
)

// Open returns a store on d.
func (d *Data) Open() *Store { return &Store{d: d} }

// Store is one process's handle on Data.
type Store struct {
	d      *Data
	closed bool
}

func (d *Data) group(g string) map[connector.TopicPartition]*partition {
	m := d.claims[g]
	if m == nil {
		m = map[connector.TopicPartition]*partition{}
		d.claims[g] = m
	}
	return m
}

// Claim raises each partition's epoch and returns it with the checkpoint,
// all under one lock: atomic. A partition whose epoch is MaxInt64 cannot
// be claimed again (the next epoch would wrap below every one given); the
// claim then fails before it raises any epoch, so a claim that fails
// changes nothing.
func (s *Store) Claim(_ context.Context, group string, tps []connector.TopicPartition) (connector.Claims, error) {
	if s.closed {
		return nil, errors.New("memstore: closed")
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	g := s.d.group(group)
	for _, tp := range tps {
		if p := g[tp]; p != nil && p.epoch == math.MaxInt64 {
			return nil, connector.NewCommitError(connector.Fatal, "memstore claim", fmt.Errorf("%v: claim epochs exhausted", tp))
		}
	}
	s.d.claimed++
	out := connector.Claims{}
	for _, tp := range tps {
		p := g[tp]
		if p == nil {
			p = &partition{next: connector.NoCheckpoint}
			g[tp] = p
		}
		p.epoch++
		out[tp] = connector.PartitionClaim{Epoch: p.epoch, Next: p.next}
	}
	return out, nil
}

// SetEpoch stores epoch as tp's claim epoch in group, keeping its
// checkpoint: how a test puts a partition at the end of its epochs
// (sinktest.Harness.SetEpoch).
func (d *Data) SetEpoch(group string, tp connector.TopicPartition, epoch int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.group(group)
	p := g[tp]
	if p == nil {
		p = &partition{next: connector.NoCheckpoint}
		g[tp] = p
	}
	p.epoch = epoch
}

// Commit checks every partition's epoch and checkpoint, then applies recs
// and moves the checkpoints, under one lock. Nothing is applied unless
// every check passes and every record is accepted: a fenced or refused
// batch changes nothing. A cancelled ctx is seen once, under the lock
// before any check: the commit then changes nothing either (Abortable).
func (s *Store) Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error {
	if s.closed {
		return connector.NewCommitError(connector.Abortable, "memstore commit", errors.New("closed"))
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return connector.NewCommitError(connector.Abortable, "memstore commit", err)
	}
	g := s.d.group(group)
	for tp := range to {
		p := g[tp]
		if p == nil || p.epoch != epochs[tp] {
			s.d.fenced++
			return connector.NewCommitError(connector.Fenced, "memstore commit", fmt.Errorf("%v: claimed by a newer owner", tp))
		}
		want, ok := from[tp]
		if (ok && p.next != want) || (!ok && p.next != connector.NoCheckpoint) {
			s.d.fenced++
			return connector.NewCommitError(connector.Fenced, "memstore commit", fmt.Errorf("%v: stored checkpoint %d, commit from %d (given %v)", tp, p.next, want, ok))
		}
	}
	applied := make([]string, 0, len(recs))
	for _, r := range recs {
		if string(r.Value) == RefusedValue {
			return connector.NewCommitError(connector.Fatal, "memstore commit", fmt.Errorf("record %s refused", r.EventID))
		}
		applied = append(applied, s.d.route(r)+":"+r.EventID)
	}
	s.d.applied = append(s.d.applied, applied...)
	for tp, n := range to {
		g[tp].next = n
	}
	return nil
}

func (d *Data) route(r *connector.Record) string {
	if d.dlq != "" && r.Topic == d.dlq {
		return DeadLetters
	}
	return Rows
}

// Checkpoints returns the group's stored checkpoints.
func (s *Store) Checkpoints(_ context.Context, group string) (connector.Checkpoint, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return s.d.checkpoint(group), nil
}

func (d *Data) checkpoint(group string) connector.Checkpoint {
	cp := connector.Checkpoint{}
	for tp, p := range d.claims[group] {
		if p.next != connector.NoCheckpoint {
			cp[tp] = p.next
		}
	}
	return cp
}

// SetCheckpoints sets next offsets, keeping the epochs.
func (s *Store) SetCheckpoints(_ context.Context, group string, cp connector.Checkpoint) error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	g := s.d.group(group)
	for tp, n := range cp {
		p := g[tp]
		if p == nil {
			p = &partition{}
			g[tp] = p
		}
		p.next = n
	}
	return nil
}

// ResetCheckpoints forgets every next offset, keeping the epochs.
func (s *Store) ResetCheckpoints(_ context.Context, group string) error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	for _, p := range s.d.claims[group] {
		p.next = connector.NoCheckpoint
	}
	return nil
}

// Close makes later calls fail, as a closed connection would.
func (s *Store) Close() { s.closed = true }

// Probe returns the checker's view of d (component.Probe).
func (d *Data) Probe() component.Probe { return probe{d} }

type probe struct{ d *Data }

// Snapshot returns every application and the checkpoint, read together
// under the lock.
func (p probe) Snapshot(_ context.Context, group string, _ bool, _ connector.Checkpoint, _ bool) (component.ProbeSnapshot, error) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	return component.ProbeSnapshot{Checkpoint: p.d.checkpoint(group), IDs: append([]string(nil), p.d.applied...)}, nil
}

func (p probe) Route(r *connector.Record, _ string) string { return p.d.route(r) }

func (probe) Close() {}
