package e2e

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/verify"
)

// Schedule is the fault schedule every sink's suite runs (test/kfake for
// Kafka and files, test/pg, test/redis), so a property shown for one sink
// is shown for all on the same steps: instance a starts; a restarts
// gracefully at n/4 committed outputs; b joins at n/2 (a cooperative
// rebalance moves partitions to it, each new owner claims them) and leaves
// at 3n/4 (they move back); the faults are removed at 9n/10 and the run
// ends when all n are committed.
//
// All n inputs are produced before the run starts, so every step finds a
// backlog in flight on a fast quiet machine as on a loaded one: no step can
// meet an idle connector.
type Schedule struct {
	// Faults fail broker requests until 9n/10, each at rate P (the fault
	// rate follows the traffic) and once for sure. Nil: only the
	// restart, join and leave.
	Faults []kfake.Fault
	Seed   uint64
	P      float64
	// SureWhen, for fault i, chooses the request its sure hit fails,
	// such as AdvancesOffsets' first offset commit of a written batch.
	SureWhen map[int]func(kmsg.Request) bool
}

// LostCommit is ConsumerFaults' index of the rejected group offset
// commit. Its sure hit, with AdvancesOffsets, is the commit of a batch
// whose rows were written: at_least_once, where the group's offsets are
// the checkpoint, reads and writes the batch again (so it must show
// duplicates); exactly_once keeps its checkpoint in the sink, and the loss
// only shows as lag.
const LostCommit = 1

// SinkSchedule is the schedule of a sink other than Kafka: ConsumerFaults
// at rate p, LostCommit's sure hit on a written batch.
func SinkSchedule(seed uint64, p float64) Schedule {
	return Schedule{Faults: ConsumerFaults, Seed: seed, P: p,
		SureWhen: map[int]func(kmsg.Request) bool{LostCommit: AdvancesOffsets()}}
}

// Outcome is what a schedule's run saw.
type Outcome struct {
	// Report is verify's, once all n outputs are committed.
	Report verify.Report
	// Daemons are every instance started, in order: a, a again, b.
	Daemons []*daemon.Daemon
	// Running is the one still running at the end (a's second run).
	Running *daemon.Daemon
	// Faults is the stopped injector (Fired, SureHits); Hits and Summary
	// are its totals.
	Faults  *Injector
	Hits    int
	Summary string
	// Aborts are the batches aborted across the instances.
	Aborts int
}

// RunSchedule runs s over connector name of cfg, whose input already holds
// n events. It fails the test when faults were asked for and none fired.
func RunSchedule(t testing.TB, c *kfake.Cluster, cfg *config.Config, name string, n int, s Schedule) Outcome {
	t.Helper()
	var out Outcome
	if s.Faults != nil {
		out.Faults = inject(c, s)
	}
	start := func(id string) *daemon.Daemon {
		d := Start(t, cfg, id)
		out.Daemons = append(out.Daemons, d)
		return d
	}
	a := start("a")
	WaitExpected(t, c, cfg, name, n/4, 2*time.Minute)
	a.Stop() // graceful: commits or aborts its open batch
	out.Running = start("a")
	WaitExpected(t, c, cfg, name, n/2, 2*time.Minute)
	b := start("b")
	WaitExpected(t, c, cfg, name, 3*n/4, 2*time.Minute)
	b.Stop()
	WaitExpected(t, c, cfg, name, 9*n/10, 2*time.Minute)
	if out.Faults != nil {
		out.Hits, out.Summary = out.Faults.Stop()
		t.Logf("faults: %s", out.Summary)
		if out.Hits == 0 {
			t.Fatal("no fault fired: the schedule proves nothing")
		}
	}
	out.Report = WaitExpected(t, c, cfg, name, n, 2*time.Minute)
	out.Aborts = Aborts(out.Daemons, name)
	t.Logf("%s: %d requests faulted, %d batches aborted across instances; %s", name, out.Hits, out.Aborts, out.Report)
	return out
}

// Aborts sums name's aborted batches over daemons, by every reason.
func Aborts(daemons []*daemon.Daemon, name string) int {
	n := 0
	for _, d := range daemons {
		st, _ := d.Status(name)
		for _, v := range st.Aborts {
			n += int(v)
		}
	}
	return n
}

// AdvancesOffsets returns a fault filter accepting an OffsetCommit that
// sets some partition past every offset committed (or tried) for it
// before: the commit of a batch with records in it, written to the sink
// before (an empty batch's commit would lose nothing). kfake asks once per
// partition of a request: the answer is kept for the request.
func AdvancesOffsets() func(kmsg.Request) bool {
	type tp struct {
		topic string
		part  int32
	}
	seen := map[tp]int64{}
	var last kmsg.Request
	var lastAdvanced bool
	return func(r kmsg.Request) bool {
		if r == last {
			return lastAdvanced
		}
		req, ok := r.(*kmsg.OffsetCommitRequest)
		if !ok {
			return false
		}
		advanced := false
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				k := tp{t.Topic, p.Partition}
				if p.Offset > seen[k] {
					seen[k], advanced = p.Offset, true
				}
			}
		}
		last, lastAdvanced = r, advanced
		return advanced
	}
}
