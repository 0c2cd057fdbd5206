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
}

func newMemParticipant() *memParticipant {
	return &memParticipant{prepared: map[string][]string{}, applied: map[string]int{}}
}

func (m *memParticipant) Name() string                { return "memory" }
func (m *memParticipant) Check(context.Context) error { return nil }
func (m *memParticipant) Close()                      {}

func (m *memParticipant) Prepare(_ context.Context, gid string, recs []*connector.Record) error {
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
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in", "out"), kfake.SeedTopics(1, "_offsets"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	cl, err := kgo.NewClient(seeds, kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 2000
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	part := newMemParticipant()
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
	adm := kadm.NewClient(cl)
	waitMembers := func(want int) {
		for {
			g, err := adm.DescribeGroups(ctx, "g")
			if err == nil && len(g["g"].Members) == want && g["g"].State == "Stable" {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("the group never became stable with %d members", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Another member holds every partition first, so the connector is
	// only ever assigned partitions, never has one revoked: a revocation
	// would make the session abort its next transaction and rewind, which
	// hides the loss this test is about.
	intruder, err := kgo.NewClient(seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	waitMembers(1)

	conn := connector.New(connector.Options{Name: "c", Guarantee: "exactly_once", CommitInterval: 50 * time.Millisecond,
		MaxBatch: 300, ProgressInterval: -1, Logger: log}, kafkasrc.New(tp.Client, log), identity{}, tp)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- conn.Run(rctx) }()
	waitMembers(2)
	// The connector's next Begin resolves in-doubt transactions (it was
	// assigned partitions) after polling the batch's first records; that
	// resolution fails three times.
	part.failListing.Store(3)
	intruder.Close()
	waitMembers(1)
	produce(0, n)

	waitCommitted := func(want int64) {
		for {
			offs, err := adm.FetchOffsets(ctx, "g")
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) { sum += max(o.At, 0) })
			if err == nil && sum == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the group committed %d input records, want %d: %v", sum, want, offs)
			case err := <-done:
				t.Fatalf("the connector stopped: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitCommitted(n)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if left := part.failListing.Load(); left > 0 {
		t.Fatalf("%d injected failures never happened", left)
	}
	if aborts := conn.Stats().Aborts[connector.Abortable].Load(); aborts == 0 {
		t.Fatal("no batch aborted: the injected resolution failure did not hit a batch")
	}

	out := map[string]int{}
	octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
	defer ocancel()
	for len(out) < n {
		fs := cl.PollFetches(octx)
		if octx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out[string(r.Value)]++ })
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	var problems []string
	for i := range n {
		v := strconv.Itoa(i)
		if part.applied[v] != 1 || out[v] != 1 {
			problems = append(problems, fmt.Sprintf("%s: applied %d, in output %d", v, part.applied[v], out[v]))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%d of %d records not exactly once, e.g. %v", len(problems), n, problems[:min(5, len(problems))])
	}
	if len(part.prepared) != 0 {
		t.Errorf("prepared transactions left: %v", part.prepared)
	}
}
