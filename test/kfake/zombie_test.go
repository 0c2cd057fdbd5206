package kfake_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/test/e2e"
)

const zombieYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		commit.interval: 10s
		batch.max.records: 100000
		transaction.timeout: 30s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: test_gate
				name: GATE
		sink: {type: kafka, topic: out}
`

// An instance frozen in the middle of a transaction, with records already
// produced into it, is replaced by a newer owner; when it wakes up it must
// not make any of its records visible. Two ways to be replaced:
//   - same transactional ID (the instance restarted elsewhere while the old
//     process lived on): the new session's epoch fences the old producer;
//   - another instance (a different transactional ID) takes the partitions
//     after the frozen member is expelled from the group: KIP-447's group
//     generation check rejects the old member's offset commit.
func TestZombieNeverCommits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		newInstance string
	}{
		{"same transactional id", "z"},
		{"group generation", "y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			const n = 3000
			produceInputRange(t, c, "in", 0, 1000)

			zombieGate := e2e.NewGate(t.Name()+"/zombie", 1000)
			e2e.NewGate(t.Name()+"/heir", 1<<62) // never blocks
			defer zombieGate.Release()
			cfgZombie := parse(t, c, strings.ReplaceAll(zombieYAML, "GATE", t.Name()+"/zombie"))
			cfgHeir := parse(t, c, strings.ReplaceAll(zombieYAML, "GATE", t.Name()+"/heir"))

			// A short rebalance timeout, so the frozen member is expelled
			// from the group quickly.
			opts := []kgo.Opt{kgo.RebalanceTimeout(3 * time.Second)}
			zombie := startDaemonOpts(t, cfgZombie, "z", opts)
			e2e.WaitClosed(t, zombieGate.Started(), "zombie started")
			// Records 0..999 are now produced into its open transaction;
			// 1000.. make it freeze inside the same batch.
			produceInputRange(t, c, "in", 1000, n)
			e2e.WaitClosed(t, zombieGate.Reached(), "zombie frozen")

			heir := startDaemonOpts(t, cfgHeir, tc.newInstance, opts)
			rep := waitExpected(t, c, cfgHeir, "copy", n, 2*time.Minute)
			must(t, rep, "heir processed everything")

			zombieGate.Release() // the zombie wakes up and tries to finish its batch
			waitAborted(t, zombie, 30*time.Second)
			if st, _ := zombie.Status("copy"); st.Commits != 0 {
				t.Fatalf("the zombie committed %d batches", st.Commits)
			}
			zombie.Stop()
			must(t, waitExpected(t, c, cfgHeir, "copy", n, time.Minute), "after the zombie woke")
			heir.Stop()
		})
	}
}

// waitAborted waits until d's copy connector has aborted a batch.
func waitAborted(t *testing.T, d *daemon.Daemon, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, _ := d.Status("copy")
		total := uint64(0)
		for _, v := range st.Aborts {
			total += v
		}
		if total > 0 {
			t.Logf("zombie's batch did not commit: aborts %v", st.Aborts)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the zombie's batch neither committed nor aborted")
}

// startDaemonOpts is startDaemon with explicit client options.
func startDaemonOpts(t *testing.T, cfg *config.Config, id string, opts []kgo.Opt) *daemon.Daemon {
	t.Helper()
	return startDaemonWith(t, cfg, id, opts)
}
