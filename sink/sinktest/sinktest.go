// Package sinktest is the conformance suite of connectd's exactly-once sink
// stores: every store that keeps its checkpoint beside its output
// (connector.SinkStore with connector.CheckpointAdmin, as package component
// registers it) runs the same table of properties, in one line of its own
// tests, so that PostgreSQL, Redis, the in-memory reference store
// (sinktest/memstore) and any new sink are held to one contract by one
// piece of code. Watermill's universal Pub/Sub tests are the model.
//
// The properties (each a subtest of Store):
//
//   - a first claim gives an epoch and no checkpoint;
//   - groups are independent (claims, epochs and checkpoints);
//   - a commit moves the checkpoint and makes its output visible together;
//   - a commit under a stale epoch (a newer claim exists) is Fenced and
//     writes nothing, in any partition of the batch;
//   - a commit whose from does not match the stored checkpoint (wrong, or
//     absent where one is stored) is Fenced and writes nothing;
//   - a zombie that claims again fences the heir in turn;
//   - concurrent claims get distinct epochs and never deadlock, whatever
//     order they list the partitions in;
//   - setting and resetting checkpoints (the offsets API) keep the epochs,
//     so an owner from before stays fenced;
//   - dead letters commit in the same unit as the rows;
//   - a batch the sink refuses part-way writes nothing and moves nothing;
//   - a claim over several partitions that fails on one of them (its
//     epoch cannot be raised past MaxInt64) raises no epoch at all, and
//     the last epoch, MaxInt64, is given exactly and commits;
//   - a commit killed at any point (its context cancelled at the N-th
//     time the store looks at it, for every N until one completes) leaves
//     the whole batch with its checkpoint or none of it.
//
// How to adopt it: write a Harness factory that points a store at a fresh
// namespace (a table, a key prefix, a directory) and returns how to open
// it (each Open is another process on the same data) and how to read it
// back (the sink's registered component.Probe), then call
// sinktest.Store(t, factory) from a test of the sink's package.
//
// Sinks that take part in a two-phase commit (connector.Participant) run
// a second table, Participant (participant.go), the same way.
package sinktest

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// SinkStore is what the suite drives: the exactly-once store and its
// checkpoint admin.
type SinkStore interface {
	connector.SinkStore
	connector.CheckpointAdmin
}

// Harness is one fresh namespace of the sink under test.
type Harness struct {
	// Open opens a store on the namespace, as a process would; every call
	// sees the same data. The suite closes what it opens.
	Open func() SinkStore
	// Probe reads the namespace's output back (the sink's registered
	// probe): the IDs of Snapshot, one per application where the sink
	// can tell (ApplyCountViolations otherwise).
	Probe component.Probe
	// DLQTopic is set by the suite to what newHarness was asked for.
	DLQTopic string
	// Refused returns a record the sink refuses to write without a
	// dead-letter topic (a Fatal commit), to plant in the middle of a
	// batch; nil skips the property.
	Refused func(offset int64) *connector.Record
	// SetEpoch stores epoch as tp's claim epoch in group, keeping its
	// checkpoint (none for a partition not stored yet), as an old or
	// long-lived namespace would hold it: it lets the suite put a
	// partition where the next claim of it must fail. nil skips the
	// properties that need it.
	SetEpoch func(group string, tp connector.TopicPartition, epoch int64)
}

// The input partitions and the group the suite commits for.
var (
	tp0 = connector.TopicPartition{Topic: "in", Partition: 0}
	tp1 = connector.TopicPartition{Topic: "in", Partition: 1}
	tp2 = connector.TopicPartition{Topic: "in", Partition: 2}
)

const group = "sinktest-group"

// Record is the output of input event n of tp, bound for the sink's
// default destination: its event ID is "<topic>-<partition>-<n>".
func Record(tp connector.TopicPartition, n int64) *connector.Record {
	return &connector.Record{
		Key:       []byte(fmt.Sprintf("k%d", n%7)),
		Value:     []byte(fmt.Sprintf(`{"i":%d,"p":%d}`, n, tp.Partition)),
		EventID:   fmt.Sprintf("%s-%d-%d", tp.Topic, tp.Partition, n),
		Origin:    connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: n},
		Timestamp: time.Unix(1_700_000_000+n, 0).UTC(),
	}
}

// DeadLetter turns r into a dead letter bound for dlqTopic, with the error
// headers the pipeline sets (see pipeline.Processor).
func DeadLetter(r *connector.Record, dlqTopic string) *connector.Record {
	d := r.Clone()
	d.Topic = dlqTopic
	d.Headers = append(d.Headers,
		connector.Header{Key: connector.HeaderDLQTopic, Value: []byte(r.Origin.Topic)},
		connector.Header{Key: connector.HeaderDLQPartition, Value: []byte(strconv.Itoa(int(r.Origin.Partition)))},
		connector.Header{Key: connector.HeaderDLQOffset, Value: []byte(strconv.FormatInt(r.Origin.Offset, 10))},
		connector.Header{Key: connector.HeaderDLQConnector, Value: []byte("sinktest")},
		connector.Header{Key: connector.HeaderDLQStage, Value: []byte("transform")},
		connector.Header{Key: connector.HeaderDLQMessage, Value: []byte("sinktest: a planted dead letter")},
	)
	return d
}

// records are events [from, to) of tp.
func records(tp connector.TopicPartition, from, to int64) []*connector.Record {
	var out []*connector.Record
	for n := from; n < to; n++ {
		out = append(out, Record(tp, n))
	}
	return out
}

// DLQTopic is the dead-letter topic the suite asks for where a property
// needs one ("" elsewhere: errors.tolerance none, where a record the sink
// cannot write fails the batch).
const DLQTopic = "dlq"

// Store runs the conformance table. newHarness is called once per property
// and must return a fresh namespace whose stores treat the records of
// dlqTopic as dead letters ("": none).
func Store(t *testing.T, newHarness func(t *testing.T, dlqTopic string) Harness) {
	for _, p := range properties {
		t.Run(p.name, func(t *testing.T) {
			dlq := ""
			if p.deadLetters {
				dlq = DLQTopic
			}
			h := newHarness(t, dlq)
			h.DLQTopic = dlq
			s := &suite{t: t, h: h}
			t.Cleanup(s.close)
			p.check(s)
		})
	}
}

// suite is one property's run.
type suite struct {
	t      *testing.T
	h      Harness
	mu     sync.Mutex
	opened []SinkStore
}

func (s *suite) open() SinkStore {
	st := s.h.Open()
	s.mu.Lock()
	s.opened = append(s.opened, st)
	s.mu.Unlock()
	return st
}

func (s *suite) close() {
	for _, st := range s.opened {
		st.Close()
	}
	s.h.Probe.Close()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func (s *suite) claim(st SinkStore, tps ...connector.TopicPartition) connector.Claims {
	s.t.Helper()
	c, err := st.Claim(ctx(s.t), group, tps)
	if err != nil {
		s.t.Fatalf("claim %v: %v", tps, err)
	}
	return c
}

func epochs(c connector.Claims) map[connector.TopicPartition]int64 {
	out := map[connector.TopicPartition]int64{}
	for tp, pc := range c {
		out[tp] = pc.Epoch
	}
	return out
}

// output is what the probe sees: the sorted IDs, the checkpoint, and the
// apply-count violations.
type output struct {
	ids        []string
	checkpoint connector.Checkpoint
	violations int
}

func (s *suite) output() output {
	s.t.Helper()
	snap, err := s.h.Probe.Snapshot(ctx(s.t), group, true, nil, false)
	if err != nil {
		s.t.Fatalf("probe: %v", err)
	}
	ids := slices.Clone(snap.IDs)
	slices.Sort(ids)
	return output{ids: ids, checkpoint: snap.Checkpoint, violations: snap.ApplyCountViolations}
}

// want checks the output: the event IDs of recs, each once, and cp.
func (s *suite) want(what string, cp connector.Checkpoint, recs ...*connector.Record) {
	s.t.Helper()
	o := s.output()
	var want []string
	for _, r := range recs {
		want = append(want, s.h.Probe.Route(r, s.h.DLQTopic)+":"+r.EventID)
	}
	slices.Sort(want)
	if !slices.Equal(o.ids, want) {
		s.t.Errorf("%s: output has %d IDs %s, want %d %s", what, len(o.ids), sample(o.ids), len(want), sample(want))
	}
	if o.violations != 0 {
		s.t.Errorf("%s: %d outputs applied more than once", what, o.violations)
	}
	if !maps.Equal(o.checkpoint, cp) {
		s.t.Errorf("%s: checkpoint %v, want %v", what, o.checkpoint, cp)
	}
}

func sample(ids []string) string {
	if len(ids) > 6 {
		return fmt.Sprintf("%v…", ids[:6])
	}
	return fmt.Sprint(ids)
}

func (s *suite) commit(st SinkStore, c connector.Claims, recs []*connector.Record, from, to connector.Checkpoint) error {
	return st.Commit(ctx(s.t), group, epochs(c), recs, from, to)
}

func (s *suite) mustCommit(st SinkStore, c connector.Claims, recs []*connector.Record, from, to connector.Checkpoint) {
	s.t.Helper()
	if err := s.commit(st, c, recs, from, to); err != nil {
		s.t.Fatalf("commit %v → %v: %v", from, to, err)
	}
}

func (s *suite) wantFenced(what string, err error) {
	s.t.Helper()
	if k := connector.KindOf(err); err == nil || k != connector.Fenced {
		s.t.Fatalf("%s: commit returned %v (kind %v), want a Fenced error", what, err, k)
	}
}

var properties = []struct {
	name        string
	deadLetters bool // the property needs a dead-letter topic
	check       func(s *suite)
}{
	{"FirstClaimHasNoCheckpoint", false, func(s *suite) {
		c := s.claim(s.open(), tp0, tp1)
		for _, tp := range []connector.TopicPartition{tp0, tp1} {
			if pc, ok := c[tp]; !ok || pc.Epoch < 1 || pc.Next != connector.NoCheckpoint {
				s.t.Errorf("first claim of %v: %+v (present %v), want an epoch ≥ 1 and no checkpoint", tp, pc, ok)
			}
		}
		s.want("after a claim alone", connector.Checkpoint{})
	}},
	{"CommitMovesOutputAndCheckpointTogether", false, func(s *suite) {
		st := s.open()
		c := s.claim(st, tp0, tp1)
		batch := append(records(tp0, 0, 10), records(tp1, 0, 5)...)
		s.mustCommit(st, c, batch, connector.Checkpoint{}, connector.Checkpoint{tp0: 10, tp1: 5})
		s.want("after one commit", connector.Checkpoint{tp0: 10, tp1: 5}, batch...)
		more := records(tp0, 10, 20)
		s.mustCommit(st, c, more, connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 20})
		s.want("after two commits", connector.Checkpoint{tp0: 20, tp1: 5}, append(batch, more...)...)
		again := s.claim(s.open(), tp0, tp1)
		if again[tp0].Next != 20 || again[tp1].Next != 5 || again[tp0].Epoch <= c[tp0].Epoch {
			s.t.Errorf("claim after commits: %+v, want next 20 and 5 with a higher epoch than %+v", again, c)
		}
	}},
	{"StaleEpochIsFencedInEveryPartition", false, func(s *suite) {
		zombie, heir := s.open(), s.open()
		zc := s.claim(zombie, tp0, tp1)
		s.claim(heir, tp0) // the heir takes tp0 only
		batch := append(records(tp0, 0, 10), records(tp1, 0, 10)...)
		s.wantFenced("a zombie's batch over a lost and a kept partition",
			s.commit(zombie, zc, batch, connector.Checkpoint{}, connector.Checkpoint{tp0: 10, tp1: 10}))
		s.want("after the fenced commit: nothing, in neither partition", connector.Checkpoint{})
	}},
	{"WrongFromIsFenced", false, func(s *suite) {
		st := s.open()
		c := s.claim(st, tp0)
		s.wantFenced("from names a checkpoint that is not stored",
			s.commit(st, c, records(tp0, 5, 10), connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 10}))
		s.want("after a wrong from", connector.Checkpoint{})
		s.mustCommit(st, c, records(tp0, 0, 10), connector.Checkpoint{}, connector.Checkpoint{tp0: 10})
		s.wantFenced("from omits the stored checkpoint",
			s.commit(st, c, records(tp0, 0, 10), connector.Checkpoint{}, connector.Checkpoint{tp0: 10}))
		s.wantFenced("from names an older checkpoint",
			s.commit(st, c, records(tp0, 5, 15), connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 15}))
		s.want("after the refused commits", connector.Checkpoint{tp0: 10}, records(tp0, 0, 10)...)
	}},
	{"ZombieReclaimFencesTheHeir", false, func(s *suite) {
		a, b := s.open(), s.open()
		s.claim(a, tp0)
		bc := s.claim(b, tp0)
		ac := s.claim(a, tp0) // the zombie comes back and claims again: it owns tp0
		s.wantFenced("the heir after the zombie's new claim",
			s.commit(b, bc, records(tp0, 0, 10), connector.Checkpoint{}, connector.Checkpoint{tp0: 10}))
		s.mustCommit(a, ac, records(tp0, 0, 10), connector.Checkpoint{}, connector.Checkpoint{tp0: 10})
		s.want("after the latest claimant's commit", connector.Checkpoint{tp0: 10}, records(tp0, 0, 10)...)
	}},
	{"ConcurrentClaimsGetDistinctEpochs", false, func(s *suite) {
		const n = 8
		stores := make([]SinkStore, n)
		for i := range stores {
			stores[i] = s.open()
		}
		got := make([]connector.Claims, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			// Half list the partitions the other way round: a store that
			// locks them in the order given deadlocks.
			tps := []connector.TopicPartition{tp0, tp1}
			if i%2 == 1 {
				tps = []connector.TopicPartition{tp1, tp0}
			}
			wg.Go(func() { got[i], errs[i] = stores[i].Claim(ctx(s.t), group, tps) })
		}
		wg.Wait()
		for _, tp := range []connector.TopicPartition{tp0, tp1} {
			seen := map[int64]bool{}
			for i := range n {
				if errs[i] != nil {
					s.t.Fatalf("concurrent claim %d: %v", i, errs[i])
				}
				e := got[i][tp].Epoch
				if seen[e] {
					s.t.Errorf("%v: epoch %d given to two concurrent claims", tp, e)
				}
				seen[e] = true
			}
		}
	}},
	{"GroupsAreIndependent", false, func(s *suite) {
		st := s.open()
		c := s.claim(st, tp0)
		s.mustCommit(st, c, records(tp0, 0, 10), connector.Checkpoint{}, connector.Checkpoint{tp0: 10})
		other, err := st.Claim(ctx(s.t), group+"-other", []connector.TopicPartition{tp0})
		if err != nil {
			s.t.Fatal(err)
		}
		if other[tp0].Next != connector.NoCheckpoint {
			s.t.Errorf("another group's first claim sees checkpoint %d", other[tp0].Next)
		}
		if err := st.Commit(ctx(s.t), group+"-other", epochs(other), nil, connector.Checkpoint{}, connector.Checkpoint{tp0: 3}); err != nil {
			s.t.Fatalf("another group's commit: %v", err)
		}
		// The other group's claim raised no epoch of this group's.
		s.mustCommit(st, c, records(tp0, 10, 12), connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 12})
		s.want("after another group's claim and commit", connector.Checkpoint{tp0: 12}, records(tp0, 0, 12)...)
	}},
	{"OffsetsAdminKeepsEpochs", false, func(s *suite) {
		owner, admin := s.open(), s.open()
		c := s.claim(owner, tp0, tp1)
		s.mustCommit(owner, c, records(tp0, 0, 10), connector.Checkpoint{}, connector.Checkpoint{tp0: 10})
		if err := admin.SetCheckpoints(ctx(s.t), group, connector.Checkpoint{tp0: 4, tp1: 7}); err != nil {
			s.t.Fatalf("set checkpoints: %v", err)
		}
		if cp, err := admin.Checkpoints(ctx(s.t), group); err != nil || !maps.Equal(cp, connector.Checkpoint{tp0: 4, tp1: 7}) {
			s.t.Errorf("checkpoints after set: %v %v, want in/0 4, in/1 7", cp, err)
		}
		heir := s.claim(s.open(), tp0, tp1)
		if heir[tp0].Next != 4 || heir[tp1].Next != 7 || heir[tp0].Epoch <= c[tp0].Epoch {
			s.t.Errorf("claim after set: %+v, want next 4 and 7 with an epoch above %d", heir, c[tp0].Epoch)
		}
		s.wantFenced("the owner from before the set and a new claim",
			s.commit(owner, c, records(tp0, 10, 12), connector.Checkpoint{tp0: 10}, connector.Checkpoint{tp0: 12}))
		if err := admin.ResetCheckpoints(ctx(s.t), group); err != nil {
			s.t.Fatalf("reset checkpoints: %v", err)
		}
		if cp, err := admin.Checkpoints(ctx(s.t), group); err != nil || len(cp) != 0 {
			s.t.Errorf("checkpoints after reset: %v %v, want none", cp, err)
		}
		after := s.claim(s.open(), tp0)
		if after[tp0].Next != connector.NoCheckpoint || after[tp0].Epoch <= heir[tp0].Epoch {
			s.t.Errorf("claim after reset: %+v, want no checkpoint and an epoch above %d", after[tp0], heir[tp0].Epoch)
		}
	}},
	{"DeadLettersCommitWithTheRows", true, func(s *suite) {
		old := s.open()
		oc := s.claim(old, tp0)
		batch := append(records(tp0, 0, 6), DeadLetter(Record(tp0, 6), s.h.DLQTopic))
		if s.h.Probe.Route(batch[6], s.h.DLQTopic) == s.h.Probe.Route(batch[0], s.h.DLQTopic) {
			s.t.Fatalf("the probe routes a dead letter where the rows go (%s)", s.h.Probe.Route(batch[6], s.h.DLQTopic))
		}
		heir := s.open()
		hc := s.claim(heir, tp0)
		s.wantFenced("a fenced batch with a dead letter", s.commit(old, oc, batch, connector.Checkpoint{}, connector.Checkpoint{tp0: 7}))
		s.want("after the fenced batch with a dead letter", connector.Checkpoint{})
		s.mustCommit(heir, hc, batch, connector.Checkpoint{}, connector.Checkpoint{tp0: 7})
		s.want("after the batch with a dead letter", connector.Checkpoint{tp0: 7}, batch...)
	}},
	{"RefusedRecordWritesNothing", false, func(s *suite) {
		if s.h.Refused == nil {
			s.t.Skip("the harness plants no refused record")
		}
		st := s.open()
		c := s.claim(st, tp0)
		s.mustCommit(st, c, records(tp0, 0, 5), connector.Checkpoint{}, connector.Checkpoint{tp0: 5})
		batch := records(tp0, 5, 50)
		batch[20] = s.h.Refused(25)
		err := s.commit(st, c, batch, connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 50})
		if err == nil {
			s.t.Fatal("a batch with a refused record committed")
		}
		s.want("after the refused batch", connector.Checkpoint{tp0: 5}, records(tp0, 0, 5)...)
		// The same range, without the bad record, then commits once.
		s.mustCommit(st, c, records(tp0, 5, 50), connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 50})
		s.want("after the good batch", connector.Checkpoint{tp0: 50}, records(tp0, 0, 50)...)
	}},
	{"ClaimFailingPartWayRaisesNoEpoch", false, func(s *suite) {
		if s.h.SetEpoch == nil {
			s.t.Skip("the harness cannot set an epoch")
		}
		owner := s.open()
		c := s.claim(owner, tp0, tp1, tp2)
		s.mustCommit(owner, c, records(tp0, 0, 5), connector.Checkpoint{}, connector.Checkpoint{tp0: 5})
		// tp1's epoch cannot be raised: a claim of tp1 with partitions
		// on both sides of it, in either order, must fail as a whole.
		s.h.SetEpoch(group, tp1, math.MaxInt64)
		for _, tps := range [][]connector.TopicPartition{{tp0, tp1, tp2}, {tp2, tp1, tp0}} {
			if got, err := s.open().Claim(ctx(s.t), group, tps); err == nil {
				s.t.Fatalf("claim %v over an epoch at MaxInt64 succeeded: %+v", tps, got)
			}
		}
		// Had the failed claims raised tp0's or tp2's epoch, the owner
		// would now be fenced there.
		batch := append(records(tp0, 5, 10), records(tp2, 0, 5)...)
		s.mustCommit(owner, c, batch, connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 10, tp2: 5})
		s.want("after the failed claims and the owner's commit", connector.Checkpoint{tp0: 10, tp2: 5},
			append(records(tp0, 0, 5), batch...)...)
	}},
	{"LastEpochIsExact", false, func(s *suite) {
		if s.h.SetEpoch == nil {
			s.t.Skip("the harness cannot set an epoch")
		}
		s.h.SetEpoch(group, tp0, math.MaxInt64-1)
		st := s.open()
		c := s.claim(st, tp0)
		if c[tp0].Epoch != math.MaxInt64 || c[tp0].Next != connector.NoCheckpoint {
			s.t.Fatalf("claim after epoch MaxInt64-1: %+v, want epoch MaxInt64 and no checkpoint", c[tp0])
		}
		s.mustCommit(st, c, records(tp0, 0, 5), connector.Checkpoint{}, connector.Checkpoint{tp0: 5})
		// No epoch follows MaxInt64: a claim must fail, not wrap to one
		// that a zombie's old epoch could equal or that sorts below it.
		if got, err := s.open().Claim(ctx(s.t), group, []connector.TopicPartition{tp0}); err == nil {
			s.t.Fatalf("claim past epoch MaxInt64 succeeded: %+v", got)
		}
		s.mustCommit(st, c, records(tp0, 5, 10), connector.Checkpoint{tp0: 5}, connector.Checkpoint{tp0: 10})
		s.want("after commits at epoch MaxInt64", connector.Checkpoint{tp0: 10}, records(tp0, 0, 10)...)
	}},
	{"KilledCommitIsAllOrNothing", false, func(s *suite) {
		// Each round is a process that claims and commits one batch over
		// two partitions with its context cancelled at the n-th time the
		// store or its client library consults the context (Done or
		// Err); the next round is a restart. The sweep ends with the
		// first n the commit completes under. How deep it reaches depends
		// on how often the store looks: a store that checks once before
		// one atomic call has little to show here.
		const maxRounds = 400
		var applied []*connector.Record
		cp := connector.Checkpoint{}
		for n := int64(1); ; n++ {
			if n > maxRounds {
				s.t.Fatalf("the commit still failed after being killed at its %d-th context check", maxRounds)
			}
			st := s.h.Open()
			c := s.claim(st, tp0, tp1)
			base := max(nextOf(cp, tp0), 0)
			if c[tp0].Next != nextOf(cp, tp0) || c[tp1].Next != nextOf(cp, tp1) {
				s.t.Fatalf("round %d: claim %+v, the probe read checkpoint %v", n, c, cp)
			}
			batch := append(records(tp0, base, base+5), records(tp1, base, base+5)...)
			to := connector.Checkpoint{tp0: base + 5, tp1: base + 5}
			k := killAt(ctx(s.t), n)
			err := st.Commit(k, group, epochs(c), batch, cp, to)
			calls := k.calls.Load()
			k.cancel()
			st.Close()
			switch o := s.output(); {
			case maps.Equal(o.checkpoint, to):
				applied = append(applied, batch...)
				cp = to
			case maps.Equal(o.checkpoint, cp):
				if err == nil {
					s.t.Fatalf("round %d: the commit returned nil but stored checkpoint %v, not %v", n, o.checkpoint, to)
				}
			default:
				s.t.Fatalf("round %d: checkpoint %v after a killed commit from %v to %v", n, o.checkpoint, cp, to)
			}
			// The whole batch with its checkpoint, or none of it.
			s.want(fmt.Sprintf("round %d (killed at context check %d: %v)", n, n, err), cp, applied...)
			if s.t.Failed() {
				return
			}
			if err == nil && calls < n {
				s.t.Logf("the commit completed with %d context checks; %d of %d rounds applied their batch", calls, len(applied)/10, n)
				return
			}
		}
	}},
}

// killCtx is a context cancelled at the n-th call of its Done or Err: the
// store's own checks of its context are where it can be killed.
type killCtx struct {
	context.Context
	cancel context.CancelFunc
	n      int64
	calls  atomic.Int64
}

func killAt(parent context.Context, n int64) *killCtx {
	c, cancel := context.WithCancel(parent)
	return &killCtx{Context: c, cancel: cancel, n: n}
}

func (k *killCtx) check() {
	if k.calls.Add(1) == k.n {
		k.cancel()
	}
}

func (k *killCtx) Done() <-chan struct{} { k.check(); return k.Context.Done() }

func (k *killCtx) Err() error { k.check(); return k.Context.Err() }

// nextOf is tp's next offset in cp, or connector.NoCheckpoint.
func nextOf(cp connector.Checkpoint, tp connector.TopicPartition) int64 {
	if n, ok := cp[tp]; ok {
		return n
	}
	return connector.NoCheckpoint
}
