package txn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	kafkasrc "github.com/connectd/connectd/source/kafka"
	"github.com/connectd/connectd/txn"
)

// memParticipant is an in-memory two-phase participant: prepared batches by
// gid, and an apply counter per committed record value. failListing makes
// that many calls of Prepared fail, after the first.
type memParticipant struct {
	mu          sync.Mutex
	prepared    map[string][]string
	applied     map[string]int
	listings    int
	failListing atomic.Int32
	// failCommits makes that many COMMIT PREPAREDs fail; commitDelay
	// slows every one down.
	failCommits atomic.Int32
	commitDelay time.Duration
	// failPrepares makes that many PREPAREs fail, each after
	// prepareDelay (the batch's output is being produced meanwhile).
	failPrepares atomic.Int32
	prepareDelay time.Duration
}

func newMemParticipant() *memParticipant {
	return &memParticipant{prepared: map[string][]string{}, applied: map[string]int{}}
}

func (m *memParticipant) Name() string                { return "memory" }
func (m *memParticipant) Check(context.Context) error { return nil }
func (m *memParticipant) Close()                      {}

func (m *memParticipant) Prepare(_ context.Context, gid string, recs []*connector.Record) error {
	if m.failPrepares.Add(-1) >= 0 {
		time.Sleep(m.prepareDelay)
		return errors.New("injected: prepare failed")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	vals := make([]string, len(recs))
	for i, r := range recs {
		vals[i] = string(r.Value)
	}
	m.prepared[gid] = vals
	return nil
}

func (m *memParticipant) CommitPrepared(_ context.Context, gid string) error {
	time.Sleep(m.commitDelay)
	if m.failCommits.Add(-1) >= 0 {
		return errors.New("injected: commit prepared failed")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.prepared[gid] {
		m.applied[v]++
	}
	delete(m.prepared, gid)
	return nil
}

func (m *memParticipant) RollbackPrepared(_ context.Context, gid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.prepared, gid)
	return nil
}

func (m *memParticipant) Prepared(context.Context, string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listings++
	if m.listings > 1 && m.failListing.Add(-1) >= 0 {
		return nil, errors.New("injected: listing prepared transactions failed")
	}
	var gids []string
	for g := range m.prepared {
		gids = append(gids, g)
	}
	return gids, nil
}

type identity struct{}

func (identity) Process(in []*connector.Record) ([]*connector.Record, error) { return in, nil }

// twoPhaseRig is a TwoPhase connector copying topic in to out and into
// an in-memory participant, on a kfake cluster.
type twoPhaseRig struct {
	t      *testing.T
	ctx    context.Context
	c      *kfake.Cluster
	seeds  kgo.Opt
	cl     *kgo.Client // produces the input, reads the output
	adm    *kadm.Client
	part   *memParticipant
	tp     *txn.TwoPhase
	conn   *connector.Connector
	stop   context.CancelFunc
	done   chan error
	logger *slog.Logger
}

func newTwoPhaseRig(t *testing.T, ctx context.Context, part *memParticipant) *twoPhaseRig {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in", "out"), kfake.SeedTopics(1, "_offsets"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	cl, err := kgo.NewClient(seeds, kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	log := slog.New(slog.DiscardHandler)
	tp := txn.NewTwoPhase(txn.TwoPhaseConfig{
		KafkaOpts: []kgo.Opt{seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.TransactionalID("txn-a"), kgo.BlockRebalanceOnPoll()},
		Topic:           "out",
		Participants:    []txn.Participant{part},
		Decisions:       &txn.OffsetsTopic{Topic: "_offsets", Connector: "c", Brokers: c.ListenAddrs()},
		Connector:       "c",
		Instance:        "a",
		Group:           "g",
		TransactionalID: func(instance string) string { return "txn-" + instance },
		FenceOpts:       []kgo.Opt{seeds},
		Log:             log,
	})
	return &twoPhaseRig{t: t, ctx: ctx, c: c, seeds: seeds, cl: cl, adm: kadm.NewClient(cl), part: part, tp: tp, logger: log}
}

func (r *twoPhaseRig) produce(from, to int) {
	for i := from; i < to; i++ {
		r.cl.Produce(r.ctx, &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := r.cl.Flush(r.ctx); err != nil {
		r.t.Fatal(err)
	}
}

func (r *twoPhaseRig) waitMembers(want int) {
	for {
		g, err := r.adm.DescribeGroups(r.ctx, "g")
		if err == nil && len(g["g"].Members) == want && g["g"].State == "Stable" {
			return
		}
		if r.ctx.Err() != nil {
			r.t.Fatalf("the group never became stable with %d members", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs the connector (batches of at most 300 records every 50 ms).
func (r *twoPhaseRig) start() {
	r.conn = connector.New(connector.Options{Name: "c", Guarantee: "exactly_once", CommitInterval: 50 * time.Millisecond,
		MaxBatch: 300, ProgressInterval: -1, Logger: r.logger}, kafkasrc.New(r.tp.Client, r.logger), identity{}, r.tp)
	rctx, stop := context.WithCancel(r.ctx)
	r.stop, r.done = stop, make(chan error, 1)
	go func() { r.done <- r.conn.Run(rctx) }()
}

func (r *twoPhaseRig) waitCommitted(want int64) {
	for {
		offs, err := r.adm.FetchOffsets(r.ctx, "g")
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += max(o.At, 0) })
		if err == nil && sum == want {
			return
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("the group committed %d input records, want %d: %v", sum, want, offs)
		case err := <-r.done:
			r.t.Fatalf("the connector stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runInjecting runs the connector over input records 0..n-1: a third of
// them committed first, then failures failures injected through counter
// (one of memParticipant's fail* counters) and the rest produced, so that
// records are in flight while the failures happen. It returns once all n
// are committed, and fails the test if an injected failure never
// happened.
func (r *twoPhaseRig) runInjecting(n int, counter *atomic.Int32, failures int32) {
	r.start()
	r.waitMembers(1)
	r.produce(0, n/3)
	r.waitCommitted(int64(n / 3))
	counter.Store(failures)
	r.produce(n/3, n)
	r.waitCommitted(int64(n))
	if left := counter.Load(); left > 0 {
		r.t.Fatalf("%d injected failures never happened", left)
	}
}

// stopAndCheck stops the connector and requires every input record 0..n-1
// applied exactly once in the participant and once in the output, and
// nothing left prepared.
func (r *twoPhaseRig) stopAndCheck(n int) {
	t := r.t
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	octx, ocancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer ocancel()
	for len(out) < n {
		fs := r.cl.PollFetches(octx)
		if octx.Err() != nil {
			break
		}
		fs.EachRecord(func(rec *kgo.Record) { out[string(rec.Value)]++ })
	}
	r.part.mu.Lock()
	defer r.part.mu.Unlock()
	var problems []string
	for i := range n {
		v := strconv.Itoa(i)
		if r.part.applied[v] != 1 || out[v] != 1 {
			problems = append(problems, fmt.Sprintf("%s: applied %d, in output %d", v, r.part.applied[v], out[v]))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%d of %d records not exactly once, e.g. %v", len(problems), n, problems[:min(5, len(problems))])
	}
	if len(r.part.prepared) != 0 {
		t.Errorf("prepared transactions left: %v", r.part.prepared)
	}
}

// TestTwoPhaseResolutionFailureAfterPollLosesNothing: the first batch after
// a partition assignment resolves in-doubt transactions in Begin, after it
// has polled. When that resolution fails (here listing the prepared
// transactions; in the fault matrix, fencing a departed instance against a
// killed broker), the batch is abandoned before its transaction began, and
// the records it polled must be read again: every input record ends up
// applied exactly once in the participant and once in the output topic.
func TestTwoPhaseResolutionFailureAfterPollLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newTwoPhaseRig(t, ctx, newMemParticipant())
	const n = 2000
	// Another member holds every partition first, so the connector is
	// only ever assigned partitions, never has one revoked: a revocation
	// would make the session abort its next transaction and rewind, which
	// hides the loss this test is about.
	intruder, err := kgo.NewClient(r.seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	r.waitMembers(1)
	r.start()
	r.waitMembers(2)
	// The connector's next Begin resolves in-doubt transactions (it was
	// assigned partitions) after polling the batch's first records; that
	// resolution fails three times.
	r.part.failListing.Store(3)
	intruder.Close()
	r.waitMembers(1)
	r.produce(0, n)
	r.waitCommitted(n)
	if left := r.part.failListing.Load(); left > 0 {
		t.Fatalf("%d injected failures never happened", left)
	}
	if aborts := r.conn.Stats().Aborts[connector.Abortable].Load(); aborts == 0 {
		t.Fatal("no batch aborted: the injected resolution failure did not hit a batch")
	}
	r.stopAndCheck(n)
}

// TestTwoPhaseFailedPhaseTwoIsRecovered: when phase two (COMMIT PREPARED)
// fails, the batch is decided but not visible in the participant: the
// commit reports an abortable error and recovery commits the batch from its
// decision. Every record lands exactly once, nothing stays prepared.
func TestTwoPhaseFailedPhaseTwoIsRecovered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	part := newMemParticipant()
	part.commitDelay = 30 * time.Millisecond
	r := newTwoPhaseRig(t, ctx, part)
	const n = 3000
	// Records are in flight while phase two fails twice.
	r.runInjecting(n, &part.failCommits, 2)
	if aborts := r.conn.Stats().Aborts[connector.Abortable].Load(); aborts == 0 {
		t.Fatal("no batch counted aborted after a failed phase two")
	}
	if st := r.tp.TwoPhaseStatus(); st.ResolvedCommitted == 0 {
		t.Fatalf("recovery committed no decided batch: %+v", st)
	}
	r.stopAndCheck(n)
}

// TestTwoPhaseFailedPhaseTwoOnIdleConnectorIsRetried: phase two runs
// while the next batch is read. When the last batch before the input goes
// quiet fails its COMMIT PREPARED, no next batch comes to fail and recover
// it: phase two tries again by itself, and the decided batch becomes
// visible with no more input, no abort and no recovery.
func TestTwoPhaseFailedPhaseTwoOnIdleConnectorIsRetried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	part := newMemParticipant()
	r := newTwoPhaseRig(t, ctx, part)
	const n = 1000
	r.start()
	r.waitMembers(1)
	r.produce(0, n)
	r.waitCommitted(n)
	r.waitApplied(n)
	// One record: one batch, the last before the input goes quiet.
	part.failCommits.Store(2)
	r.produce(n, n+1)
	r.waitCommitted(n + 1)
	r.waitApplied(n + 1)
	if left := part.failCommits.Load(); left > 0 {
		t.Fatalf("%d injected phase-two failures never happened", left)
	}
	if aborts := r.conn.Stats().Aborts[connector.Abortable].Load(); aborts != 0 {
		t.Fatalf("%d batches aborted; the retried phase two should need no other batch", aborts)
	}
	if st := r.tp.TwoPhaseStatus(); st.ResolvedCommitted != 0 {
		t.Fatalf("recovery committed the batch, not phase two's retry: %+v", st)
	}
	r.stopAndCheck(n + 1)
}

// waitApplied waits until want records are applied in the participant.
func (r *twoPhaseRig) waitApplied(want int) {
	for {
		r.part.mu.Lock()
		got := len(r.part.applied)
		r.part.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("%d records applied in the participant, want %d", got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestTwoPhaseFailedPrepareAbortsOutputAndDecision: the output and the
// decision record are produced while the participants prepare. When a
// prepare fails, what was produced of the batch (its output, its
// decision) must abort with the Kafka transaction: the batch is read again
// and every record lands exactly once in the participant and the output.
// The bite: the output topic holds more records than were committed (the
// failed batches' output, aborted), seen by a read_uncommitted consumer.
func TestTwoPhaseFailedPrepareAbortsOutputAndDecision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	part := newMemParticipant()
	part.prepareDelay = 50 * time.Millisecond
	r := newTwoPhaseRig(t, ctx, part)
	const n = 3000
	// Records are in flight while two prepares fail.
	r.runInjecting(n, &part.failPrepares, 2)
	if aborts := r.conn.Stats().Aborts[connector.Abortable].Load(); aborts < 2 {
		t.Fatalf("%d batches counted aborted, want 2 (one per failed prepare)", aborts)
	}
	if all := r.outputRecordsUncommitted(); all <= n {
		t.Fatalf("the output holds %d records with aborted ones, want more than the %d committed: the failed batches produced no output, so nothing was aborted", all, n)
	}
	r.stopAndCheck(n)
}

// outputRecordsUncommitted counts every record of the output topic,
// aborted ones too (read_uncommitted), up to its high watermarks.
func (r *twoPhaseRig) outputRecordsUncommitted() int {
	ends, err := r.adm.ListEndOffsets(r.ctx, "out")
	if err != nil {
		r.t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset })
	cl, err := kgo.NewClient(r.seeds, kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	n := 0
	at := map[int32]int64{}
	// Every write to out is transactional, so each partition's log ends
	// with a marker, which takes an offset but is not returned: a
	// partition is read through once its last record is at end-2.
	done := func() bool {
		for p, end := range want {
			if end > 0 && at[p] < end-1 {
				return false
			}
		}
		return true
	}
	for !done() && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) {
			n++
			at[rec.Partition] = rec.Offset + 1
		})
	}
	return n
}
