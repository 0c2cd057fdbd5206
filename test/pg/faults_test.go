package pg_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/verify"
)

// copyYAML copies topic in to the events table; the set transform fails on
// the non-JSON inputs, which go to the dead-letter table in the same
// transaction.
const copyYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		guarantee: GUARANTEE
		commit.interval: 50ms
		batch.max.records: 400
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {copied: true}
		sink:
			type: postgres
			dsn: DSN
			table: events
			auto_create: true
			test_apply_counter: true
			columns:
				amount: json:amount::bigint
				body: value
				src_topic: topic
				src_partition: partition
				src_offset: offset
`

func (e *env) copyConfig(guarantee string) *config.Config {
	return e.parse(strings.ReplaceAll(copyYAML, "GUARANTEE", guarantee))
}

// faultSet: fetches of the input fail, and group offset commits fail
// (rejected, not applied) or time out after being applied (the reply
// lost).
var faultSet = []kfake.Fault{
	{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "in", Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "in", Err: kerr.NotLeaderForPartition},
	{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.RequestTimedOut},
}

// lostCommit is faultSet's rejected offset commit. It comes after the
// batch's rows were written: under at_least_once, where the group offsets
// are the checkpoint, the batch is read and written again (duplicates);
// under exactly_once they only show lag, the table's offsets are the
// checkpoint, and nothing is written twice.
const lostCommit = 2

type injector struct{ handles []*kfake.FaultHandle }

// injectFaults fails each matching request with probability p. The first
// matching request of each fault fails for sure, and for the rejected
// offset commit that is the first one that moves an offset forward: a
// commit of a batch with records in it, written to the sink before (an
// empty batch's commit would lose nothing).
func injectFaults(c *kfake.Cluster, seed uint64, p float64) *injector {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed))
	in := &injector{}
	for i, f := range faultSet {
		sure := f
		if i == lostCommit {
			sure.When = advancesOffsets()
		}
		in.handles = append(in.handles, c.Fault(sure))
		f.Count = -1
		f.When = func(kmsg.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < p
		}
		in.handles = append(in.handles, c.Fault(f))
	}
	return in
}

// advancesOffsets returns a fault filter accepting an OffsetCommit that
// sets some partition past every offset committed (or tried) for it
// before. kfake asks once per partition of a request: the answer is kept
// for the request.
func advancesOffsets() func(kmsg.Request) bool {
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

// Stop removes the faults and says how many requests each answered, and
// how many offset commits were rejected after a batch was written
// (lostCommit's sure fault).
func (in *injector) Stop() (hits int, lost int, summary string) {
	var sum []string
	for i, h := range in.handles {
		n := h.Hits()
		h.Remove()
		hits += n
		if i == 2*lostCommit {
			lost = n
		}
		f := faultSet[i/2]
		sum = append(sum, fmt.Sprintf("%s %s: %d", f.Keys[0].Name(), f.Err.Message, n))
	}
	return hits, lost, strings.Join(sum, "; ")
}

// runSchedule copies n records under faults, a graceful restart
// mid-stream, and a second instance joining and leaving (rebalances: new
// claims raise claim epochs in the offsets table).
func runSchedule(t *testing.T, guarantee string, n int) (*env, verify.Report, int) {
	e := newEnv(t)
	e.produce("in", 0, n)
	cfg := e.copyConfig(guarantee)
	faults := injectFaults(e.c, 7, 0.05)
	var daemons []*daemon.Daemon
	start := func(id string) *daemon.Daemon {
		d := e.startDaemon(cfg, id, fastClient)
		daemons = append(daemons, d)
		return d
	}
	a := start("a")
	e.waitExpected(cfg, "copy", n/4, 2*time.Minute)
	a.Stop()
	start("a")
	e.waitExpected(cfg, "copy", n/2, 2*time.Minute)
	b := start("b")
	e.waitExpected(cfg, "copy", 3*n/4, 2*time.Minute)
	b.Stop()
	e.waitExpected(cfg, "copy", 9*n/10, 2*time.Minute)
	hits, lost, summary := faults.Stop()
	rep := e.waitExpected(cfg, "copy", n, 2*time.Minute)
	t.Logf("faults: %s", summary)
	if hits == 0 {
		t.Fatal("no fault fired: the schedule proves nothing")
	}
	if lost != 1 {
		t.Fatalf("%d offset commits of a written batch rejected, want 1: the lost commit did not bite", lost)
	}
	total := 0
	for _, d := range daemons {
		total += aborts(d, "copy")
	}
	t.Logf("%s: %d requests faulted, %d batches aborted across instances", guarantee, hits, total)
	return e, rep, total
}

func TestExactlyOnceUnderFaultsRestartsAndRebalances(t *testing.T) {
	const n = 20000
	e, rep, _ := runSchedule(t, "exactly_once", n)
	must(t, rep, "exactly_once under faults")
	if rep.Expected != n {
		t.Fatalf("expected %d outputs, want %d", rep.Expected, n)
	}
	if v := e.query("SELECT count(*) FROM events WHERE apply_count <> 1"); v != 0 {
		t.Fatalf("%d rows applied more than once", v)
	}
	if d := e.query("SELECT count(*) FROM events_dlq"); d != n/500 {
		t.Fatalf("%d dead-letter rows, want %d", d, n/500)
	}
	if g := e.query("SELECT max(claim_epoch) FROM connectd_offsets"); g < 2 {
		t.Fatalf("max claim epoch %d: the rebalances never reclaimed a partition", g)
	}
}

func TestAtLeastOnceUnderFaultsLosesNothing(t *testing.T) {
	const n = 20000
	_, rep, _ := runSchedule(t, "at_least_once", n)
	t.Logf("at_least_once under faults: %s", rep)
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("at_least_once lost or invented rows: %s", rep)
	}
	// At least the batch whose offset commit was rejected after its
	// rows were written (injectFaults) is written twice.
	if rep.Duplicates == 0 {
		t.Fatalf("at_least_once: no duplicates, though an offset commit of a written batch was rejected: %s", rep)
	}
}
