package kfake_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/e2e"
)

// TestIdleAdvanceOnlyOfHeldPartitions: an instance must not idle-advance
// a partition that has moved to another instance. The one that lost it
// has not seen it for longer than idle_timeout, so to it the partition
// looks idle; if it still counted it as its own, it would load the new
// owner's committed state, close its open window and emit it, while the
// new owner, which holds the window open in memory, emits it again when
// its input closes it: the duplicate windows ci44's
// TestWindowedIdleTimeoutUnderFaults found (k2-*/49000 with the oracle's
// 7 records from the idle log and with all 20, and k3-*/48000 twice) on
// the two partitions that move when a second instance joins.
//
// Which partitions a task holds comes from the group coordinator
// (DescribeGroups), asked again after each new generation; the test
// fails the daemons' questions from the moment b joins, so a's last
// answer (all four partitions, the generation before b) is all a has,
// deterministically, for the rest of the test. a must then advance
// nothing: its answer is not about the generation it is in.
//
// Input (key k<p> on partition p, event time value.i*10): 1. every
// partition gets records in window [1000, 2000); a alone aggregates them.
// 2. b joins and takes some partitions (moved); they get more records of
// that window, which b loads and aggregates. 3. a's partitions get
// records at 2500: a's watermark passes the window's end, and the moved
// partitions, unseen by a for over idle_timeout, would be raised to it.
// 4. the moved partitions get one more record of the window and one at
// 2500, which close it at b. verify must find every window once, with
// the idle log's decisions replayed.
func TestIdleAdvanceOnlyOfHeldPartitions(t *testing.T) {
	const idleTimeout = 300 * time.Millisecond
	c := newCluster(t)
	cfg := parse(t, c, strings.Replace(windowConfig(""), "late: drop",
		fmt.Sprintf("late: drop\n\t\t\t\twatermark: {idle_timeout: %s}", idleTimeout), 1))
	adm := newAdmin(t, c)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("in"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	produced := 0
	// produce writes n records of event index i to each of partitions.
	produce := func(partitions []int32, i, n int) {
		t.Helper()
		var recs []*kgo.Record
		for _, p := range partitions {
			for range n {
				recs = append(recs, &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "k%d", p),
					Value:   fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, produced+1),
					Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", produced)}}})
				produced++
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		waitCommittedInput(t, adm, produced, time.Minute)
	}

	a := startDaemon(t, cfg, "a")
	produce([]int32{0, 1, 2, 3}, 100, 5) // window [1000, 2000) everywhere
	// a's answer from the coordinator: all four partitions.
	for deadline := time.Now().Add(time.Minute); ; {
		if st, _ := a.Status("win"); len(st.Partitions) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's status never listed the 4 partitions it holds alone")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// From now on the daemons' DescribeGroups fail (kadm asks for the
	// authorized operations); the test's own, which does not, passes.
	frozen := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeGroups}, Group: winGroup, Err: kerr.UnknownServerError, Count: -1,
		When: func(r kmsg.Request) bool { return r.(*kmsg.DescribeGroupsRequest).IncludeAuthorizedOperations }})
	defer frozen.Remove()
	b := startDaemon(t, cfg, "b")
	held := waitSplit(t, c, map[string]string{pipeline.GroupInstanceID("win", "a"): "a", pipeline.GroupInstanceID("win", "b"): "b"})
	kept, moved := held["a"], held["b"]
	t.Logf("a keeps %v, b took %v", kept, moved)

	produce(moved, 110, 5) // b loads the moved partitions' state and aggregates
	// a last saw the moved partitions before the rebalance: make that
	// longer ago than idle_timeout whatever the machine's speed.
	time.Sleep(idleTimeout + 100*time.Millisecond)
	produce(kept, 250, 1) // a's watermark: 2500
	produce(moved, 120, 1)
	produce(moved, 250, 1) // closes the window at b

	if frozen.Hits() == 0 {
		t.Fatal("no daemon asked the coordinator for its partitions after b joined: a's answer was never stale")
	}
	b.Stop()
	a.Stop()
	var advances uint64
	if st, _ := a.Status("win"); st.Window != nil {
		advances = st.Window.IdleAdvances
	}
	frozen.Remove()
	rep := e2e.Check(t, c, cfg, "win")
	if !rep.Clean() || rep.Windows == 0 {
		t.Fatalf("verify: %s (a made %d idle advances), want every window once", rep, advances)
	}
	if advances != 0 {
		t.Fatalf("a made %d idle advances: it held no idle partition the group had given it", advances)
	}
	t.Logf("verify: %s", rep)
}

// waitSplit waits until winGroup is stable with the members named in
// instances (group instance ID → name) each holding some partitions of
// in, and returns the partitions each holds. It does not ask the
// coordinator for the authorized operations (kadm does), which marks the
// test's own questions.
func waitSplit(t *testing.T, c *kfake.Cluster, instances map[string]string) map[string][]int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	last := ""
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = []string{winGroup}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		if err != nil {
			last = err.Error()
			continue
		}
		g := resp.Groups[0]
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil || g.State != "Stable" || len(g.Members) != len(instances) {
			last = fmt.Sprintf("group %s with %d members (%v)", g.State, len(g.Members), err)
			continue
		}
		held := map[string][]int32{}
		for _, m := range g.Members {
			var a kmsg.ConsumerMemberAssignment
			if m.InstanceID == nil || a.ReadFrom(m.MemberAssignment) != nil {
				continue
			}
			for _, tp := range a.Topics {
				if tp.Topic == "in" {
					held[instances[*m.InstanceID]] = append(held[instances[*m.InstanceID]], tp.Partitions...)
				}
			}
		}
		if len(held) == len(instances) {
			for _, ps := range held {
				slices.Sort(ps)
			}
			return held
		}
		last = fmt.Sprintf("assigned %v", held)
	}
	t.Fatalf("the group never split in: %s", last)
	return nil
}
