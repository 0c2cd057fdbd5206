package kfake_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
)

const statusYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		guarantee: GUARANTEE
		commit.interval: 50ms
		source: {type: kafka, topics: [raw], group: status-group, session_timeout: 6s}
		sink: {type: kafka, topic: out}
`

const statusPartitions = 6

// The status of each process lists the partitions its task holds now, at
// the position the group resumes them from: daemon a drains all six
// partitions alone; b joins and takes some (a no longer lists them,
// though it committed them); input arrives while b holds them; b leaves
// and a takes them back at b's checkpoints (not at the older ones a
// committed itself); b joins again. At every step each status lists
// exactly what the group coordinator assigned to that member.
func TestStatusListsHeldPartitions(t *testing.T) {
	for _, guarantee := range []string{"exactly_once", "at_least_once"} {
		t.Run(guarantee, func(t *testing.T) {
			c := newCluster(t, kfake.SeedTopics(statusPartitions, "raw"))
			cfg := parse(t, c, strings.ReplaceAll(statusYAML, "GUARANTEE", guarantee))
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			produceRound := func(round int) {
				t.Helper()
				var recs []*kgo.Record
				for p := range int32(statusPartitions) {
					for i := range 100 {
						id := fmt.Sprintf("r%d-p%d-%d", round, p, i)
						recs = append(recs, &kgo.Record{Topic: "raw", Partition: p, Value: []byte(id),
							Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte(id)}}})
					}
				}
				if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}

			produceRound(1)
			a := startDaemon(t, cfg, "a")
			waitHeld(t, adm, map[string]*daemon.Daemon{"a": a}, 100)

			b := startDaemon(t, cfg, "b")
			split := waitHeld(t, adm, map[string]*daemon.Daemon{"a": a, "b": b}, 100)
			if len(split["a"]) == 0 || len(split["b"]) == 0 {
				t.Fatalf("the partitions did not move: %v", split)
			}

			// b's partitions move on while b holds them; a's own
			// checkpoints for them stay at 100.
			produceRound(2)
			waitHeld(t, adm, map[string]*daemon.Daemon{"a": a, "b": b}, 200)
			b.Stop()
			waitHeld(t, adm, map[string]*daemon.Daemon{"a": a}, 200)

			b = startDaemon(t, cfg, "b")
			split = waitHeld(t, adm, map[string]*daemon.Daemon{"a": a, "b": b}, 200)
			t.Logf("held after b rejoined: a %v, b %v", split["a"], split["b"])
		})
	}
}

// waitHeld waits until the status of each daemon (by instance ID) lists
// exactly the partitions the group coordinator assigned to its member,
// each at checkpoint next with no lag, the daemons together holding every
// partition once. It returns the partitions each holds.
func waitHeld(t *testing.T, adm *kadm.Client, daemons map[string]*daemon.Daemon, next int64) map[string][]int32 {
	t.Helper()
	var last string
	deadline := time.Now().Add(time.Minute)
	for {
		held, why := heldAsAssigned(adm, daemons, next)
		if why == "" {
			return held
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("status never matched the group's assignment at checkpoint %d: %s", next, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heldAsAssigned compares each daemon's status with the coordinator's
// assignment; it returns why they differ, or "" and the partitions held.
func heldAsAssigned(adm *kadm.Client, daemons map[string]*daemon.Daemon, next int64) (map[string][]int32, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	groups, err := adm.DescribeGroups(ctx, "status-group")
	if err != nil {
		return nil, err.Error()
	}
	g := groups["status-group"]
	if g.State != "Stable" || len(g.Members) != len(daemons) {
		return nil, fmt.Sprintf("group %s with %d members", g.State, len(g.Members))
	}
	assigned := map[string][]int32{}
	for _, m := range g.Members {
		a, _ := m.Assigned.AsConsumer()
		for id := range daemons {
			if m.InstanceID != nil && *m.InstanceID == pipeline.GroupInstanceID("copy", id) && a != nil {
				for _, tp := range a.Topics {
					assigned[id] = append(assigned[id], tp.Partitions...)
				}
			}
		}
	}
	held := map[string][]int32{}
	total := 0
	for id, d := range daemons {
		st, _ := d.Status("copy")
		for _, ps := range st.Partitions {
			if ps.Checkpoint != next || ps.Lag != 0 {
				return nil, fmt.Sprintf("%s lists raw/%d at checkpoint %d, lag %d", id, ps.Partition, ps.Checkpoint, ps.Lag)
			}
			held[id] = append(held[id], ps.Partition)
		}
		slices.Sort(held[id])
		slices.Sort(assigned[id])
		if !slices.Equal(held[id], assigned[id]) {
			return nil, fmt.Sprintf("%s lists %v, the coordinator assigned it %v", id, held[id], assigned[id])
		}
		total += len(held[id])
	}
	if total != statusPartitions {
		return nil, fmt.Sprintf("the daemons hold %d partitions between them: %v", total, held)
	}
	return held, ""
}
