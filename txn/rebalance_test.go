package txn

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
	kafkasrc "github.com/connectd/connectd/source/kafka"
)

// TestStopDuringRebalance: a connector stopped while its consumer group
// rebalances returns well within its shutdown timeout, and every input
// record is then in the output exactly once after another member drains
// the input (kfake, in-process).
//
// The rebalance is held open by design: a plain group member ("slow")
// polls and never lets a rebalance through (BlockRebalanceOnPoll), as a
// member deep in a long batch or paused would, so when a third member
// joins, the group waits for slow until the rebalance timeout. The stop
// meets the connector's batch (its transaction open on the broker) in the
// two places it can be, as the connector's rebalance watch tells:
//
//   - held: the batch is open and holds the rebalance back. The stop
//     commits it, with KIP-447, without waiting for the group. Before the
//     fix the commit let the rebalance through and waited in the join for
//     slow, up to the shutdown timeout, then the close waited for the same
//     join up to the rebalance timeout.
//   - joining: the batch meets this member's JoinGroup in flight, which
//     waits for slow. The stop aborts the batch, and the close removes the
//     member from the group to get that JoinGroup answered.
//
// The rebalance timeout (30s) is above the shutdown timeout (15s), so the
// old waits show as a stop of at least the shutdown timeout; a correct
// stop takes a fraction of a second: the bound is one of correctness.
func TestStopDuringRebalance(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration // the stopped connector's commit interval
		met      func(held, joining bool) bool
		aborts   uint64 // at the stop
		logged   string
	}{
		// The batch holds the rebalance for up to 5s; the test stops
		// the connector within milliseconds of seeing it held.
		{"held", 5 * time.Second, func(held, joining bool) bool { return held && !joining }, 0, ""},
		{"joining", 300 * time.Millisecond, func(_, joining bool) bool { return joining }, 1,
			"stopping during a consumer-group rebalance"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testStopDuringRebalance(t, tc.interval, tc.met, tc.aborts, tc.logged)
		})
	}
}

// watchState is w's held and joining, for the tests.
func watchState(w *rebalanceWatch) (held, joining bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held, w.joining
}

// answerRemovedJoins makes kfake answer a pending JoinGroup of a member
// that leaves the group with UNKNOWN_MEMBER_ID, as Kafka's coordinator does
// (GroupCoordinator.removeMemberAndUpdateGroup: "invoke the callback
// before removing the member"); kfake drops it unanswered. It holds the
// JoinGroups of member() (while on()) until a LeaveGroup names the member
// (then answers UNKNOWN_MEMBER_ID) or done closes (then lets kfake have
// them).
func answerRemovedJoins(c *kfake.Cluster, member func() string, on func() bool, done <-chan struct{}) {
	left := make(chan struct{})
	var once sync.Once
	c.ControlKey(kmsg.LeaveGroup.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, m := range kreq.(*kmsg.LeaveGroupRequest).Members {
			if m.MemberID != "" && m.MemberID == member() {
				once.Do(func() { close(left) })
			}
		}
		return nil, nil, false
	})
	c.ControlKey(kmsg.JoinGroup.Int16(), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.JoinGroupRequest)
		if !on() || req.MemberID == "" || req.MemberID != member() {
			return nil, nil, false
		}
		removed := false
		c.SleepControl(func() {
			select {
			case <-left:
				removed = true
			case <-done:
			}
		})
		if !removed {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
}

// testStopDuringRebalance runs the scene with the stopped connector's
// commit interval; it stops the connector once met holds for its rebalance
// watch (and the broker says its transaction is open), and expects aborts
// abortable aborts and a line with logged (if set) from the stop.
func testStopDuringRebalance(t *testing.T, interval time.Duration, met func(held, joining bool) bool, aborts uint64, logged string) {
	const (
		shutdownTimeout  = 15 * time.Second
		rebalanceTimeout = 30 * time.Second
		partitions       = 6
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "in"), kfake.SeedTopics(1, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	cl, err := kgo.NewClient(seeds, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// The input grows all along, so that every batch of the connector
	// under test has records in it, until the drain.
	var (
		mu     sync.Mutex
		next   int
		feedOn = true
	)
	feed := func() {
		for {
			mu.Lock()
			if !feedOn {
				mu.Unlock()
				return
			}
			v := strconv.Itoa(next)
			next++
			mu.Unlock()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte(v)}).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	fed := make(chan struct{})
	go func() { defer close(fed); feed() }()
	stopFeed := func() int {
		mu.Lock()
		feedOn = false
		mu.Unlock()
		<-fed
		return next
	}
	defer stopFeed()
	openTxn := func(id string) bool {
		ds, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return false
		}
		d, ok := ds[id]
		return ok && d.Err == nil && d.State == "Ongoing" && len(d.Topics["out"]) > 0
	}
	group := func(more ...kgo.Opt) []kgo.Opt {
		return append([]kgo.Opt{seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"),
			kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.DisableAutoCommit(),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.RebalanceTimeout(rebalanceTimeout), kgo.HeartbeatInterval(100 * time.Millisecond)}, more...)
	}
	waitGroup := func(what string, cond func(kadm.DescribedGroup) bool) {
		t.Helper()
		for {
			gs, err := adm.DescribeGroups(ctx, "g")
			if err == nil && cond(gs["g"]) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// a: the connector under test, alone in the group at first.
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	runConnector := func(id string, interval time.Duration, log *slog.Logger) (*KafkaGroupTxn, *connector.Connector, context.CancelFunc, <-chan error) {
		k := NewKafkaGroupTxn(group(kgo.TransactionalID("txn-"+id), kgo.BlockRebalanceOnPoll()), "out", log, nil)
		conn := connector.New(connector.Options{Name: "c", Guarantee: "exactly_once", CommitInterval: interval,
			ShutdownTimeout: shutdownTimeout, CommitTimeout: time.Minute, ProgressInterval: -1, Logger: log},
			kafkasrc.New(k.Client, log), identity{}, k)
		rctx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- conn.Run(rctx) }()
		return k, conn, stop, ran
	}
	k, conn, stop, ran := runConnector("a", interval, log)
	var (
		emuMu  sync.Mutex
		member string // a's
		emuOn  bool   // from the third member's join on
	)
	testDone := make(chan struct{})
	defer close(testDone)
	answerRemovedJoins(c,
		func() string { emuMu.Lock(); defer emuMu.Unlock(); return member },
		func() bool { emuMu.Lock(); defer emuMu.Unlock(); return emuOn }, testDone)
	waitFor(t, ctx, "a to commit records", func() bool { return conn.Stats().RecordsIn.Load() > 0 })

	// slow joins and takes half the partitions. Only once the cooperative
	// rebalance is over (both members assigned, a's watch idle: a's
	// second join done) does slow poll; from then on it holds every
	// rebalance back.
	slow, err := kgo.NewClient(group(kgo.BlockRebalanceOnPoll())...)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseAllowingRebalance()
	waitGroup("a stable group of a and slow", func(g kadm.DescribedGroup) bool {
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 {
				return false
			}
		}
		held, joining := watchState(k.watch.Load())
		return !held && !joining
	})
	for polled := 0; polled == 0; {
		polled = slow.PollRecords(ctx, 1).NumRecords()
		if ctx.Err() != nil {
			t.Fatal("slow polled nothing")
		}
	}
	// A batch of a that saw the revoke aborts; the one after an End that
	// followed it is clean (a transact session remembers a revoke until
	// its next End).
	batchEnds := func() uint64 {
		st := conn.Stats()
		n := st.Commits.Load()
		// Indexes only: ranging over the array itself copies its
		// counters without atomics (a data race with the connector).
		for i := range len(st.Aborts) {
			n += st.Aborts[i].Load()
		}
		return n
	}
	ended := batchEnds()
	waitFor(t, ctx, "a batch of a to end after the rebalance", func() bool { return batchEnds() > ended })
	// The next one polls records (holding rebalances from then on) and
	// writes them.
	waitFor(t, ctx, "a's next transaction to be open", func() bool { return openTxn("txn-a") })

	// A third member joins: the group rebalances and waits for slow.
	emuMu.Lock()
	member, _ = k.Client().GroupMetadata()
	emuOn = true
	emuMu.Unlock()
	joiner, err := kgo.NewClient(group()...)
	if err != nil {
		t.Fatal(err)
	}
	defer joiner.Close()
	waitGroup("the rebalance", func(g kadm.DescribedGroup) bool { return g.State == "PreparingRebalance" })
	moment, mcancel := context.WithTimeout(ctx, time.Minute)
	defer mcancel()
	for !met(watchState(k.watch.Load())) || !openTxn("txn-a") {
		if moment.Err() != nil {
			held, joining := watchState(k.watch.Load())
			t.Fatalf("the stop's moment did not come (held %v, joining %v, a's transaction open %v)\n%s", held, joining, openTxn("txn-a"), logs.From(0))
		}
		time.Sleep(10 * time.Millisecond)
	}
	abortsBefore, commitsBefore := conn.Stats().Aborts[connector.Abortable].Load(), conn.Stats().Commits.Load()

	mark := logs.Len()
	stop()
	start := time.Now()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	took := time.Since(start)
	t.Logf("stop during a rebalance: Run returned after %v (shutdown timeout %v)", took.Round(time.Millisecond), shutdownTimeout)
	if took >= shutdownTimeout {
		t.Fatalf("the stop took %v, at least the shutdown timeout %v: it waited for the group's rebalance\n%s", took, shutdownTimeout, logs.From(mark))
	}
	if after := logs.From(mark); logged != "" && !strings.Contains(after, logged) {
		t.Fatalf("the stop did not log %q: it did not meet the rebalance as built\n%s", logged, after)
	}
	// The open batch ends either way: aborted, or committed.
	if n, c := conn.Stats().Aborts[connector.Abortable].Load()-abortsBefore, conn.Stats().Commits.Load()-commitsBefore; n != aborts || n+c != 1 {
		t.Fatalf("at the stop %d abortable aborts and %d commits, want %d and %d\n%s", n, c, aborts, 1-aborts, logs.From(mark))
	}

	// slow and the joiner leave; d drains: every record once in the
	// output, the aborted batch's records included, nothing of it twice.
	total := stopFeed()
	slow.AllowRebalance()
	slow.Close()
	joiner.Close()
	_, _, stopDrainer, drained := runConnector("d", 100*time.Millisecond, slog.New(slog.DiscardHandler))
	committed := func() int64 {
		offs, err := adm.FetchOffsets(ctx, "g")
		if err != nil {
			return -1
		}
		var n int64
		offs.Each(func(o kadm.OffsetResponse) { n += o.At })
		return n
	}
	waitFor(t, ctx, "d to commit every record", func() bool { return committed() == int64(total) })
	stopDrainer()
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	seen := readOutput(ctx, t, seeds)
	if len(seen) != total {
		t.Fatalf("%d distinct records in the output, want %d", len(seen), total)
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("record %s is %d times in the output", v, n)
		}
	}
}

// readOutput reads "out" to its end with read_committed and counts each
// value.
func readOutput(ctx context.Context, t *testing.T, seeds kgo.Opt) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(seeds, kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "out")
	if err != nil {
		t.Fatal(err)
	}
	end := ends["out"][0].Offset
	// Read until the stable end was seen and a poll finds nothing more:
	// the log ends in a transaction marker, never returned as a record.
	seen := map[string]int{}
	var stable int64
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("read the output: %v (stable end seen %d of %d)", ctx.Err(), stable, end)
		}
		n := 0
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			stable = max(stable, p.LastStableOffset)
			for _, r := range p.Records {
				seen[string(r.Value)]++
				n++
			}
		})
		if n == 0 && stable >= end {
			break
		}
	}
	return seen
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// identity is a Processor that passes records through.
type identity struct{}

func (identity) Process(in []*connector.Record) ([]*connector.Record, error) { return in, nil }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) From(off int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[off:]
}
