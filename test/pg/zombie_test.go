package pg_test

import (
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/test/e2e"
	"github.com/twmb/franz-go/pkg/kgo"
)

const zombieYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		commit.interval: 10s
		batch.max.records: 100000
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: test_gate
				name: GATE
		sink:
			type: postgres
			dsn: DSN
			table: events
			auto_create: true
			test_apply_counter: true
			columns: {amount: "json:amount::bigint"}
`

// An instance frozen in the middle of a batch (its records read, not yet
// committed) is expelled from the group; another instance claims the
// partitions (raising their claim epochs) and commits everything. When the frozen
// one wakes up, its commit is fenced: none of its rows land, no row is
// applied twice.
func TestZombieNeverCommits(t *testing.T) {
	const n = 3000
	e := newEnv(t)
	e.produce("in", 0, 1000)
	zombieGate := e2e.NewGate(t.Name()+"/zombie", 1000)
	e2e.NewGate(t.Name()+"/heir", 1<<62) // never blocks
	defer zombieGate.Release()
	cfgZombie := e.parse(strings.ReplaceAll(zombieYAML, "GATE", t.Name()+"/zombie"))
	cfgHeir := e.parse(strings.ReplaceAll(zombieYAML, "GATE", t.Name()+"/heir"))

	// A short rebalance timeout expels the frozen member quickly.
	opts := []kgo.Opt{kgo.RebalanceTimeout(3 * time.Second)}
	zombie := e.startDaemon(cfgZombie, "z", opts...)
	e2e.WaitClosed(t, zombieGate.Started(), "zombie started")
	e.produce("in", 1000, n)
	e2e.WaitClosed(t, zombieGate.Reached(), "zombie frozen")

	heir := e.startDaemon(cfgHeir, "y", opts...)
	must(t, e.waitExpected(cfgHeir, "copy", n, 2*time.Minute), "heir processed everything")

	zombieGate.Release()
	deadline := time.Now().Add(30 * time.Second)
	for aborts(zombie, "copy") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the zombie's batch neither committed nor aborted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _ := zombie.Status("copy")
	t.Logf("zombie: aborts %v, commits %d", st.Aborts, st.Commits)
	if st.Commits != 0 {
		t.Fatalf("the zombie committed %d batches", st.Commits)
	}
	zombie.Stop()
	must(t, e.waitExpected(cfgHeir, "copy", n, time.Minute), "after the zombie woke")
	if v := e.query("SELECT count(*) FROM events WHERE apply_count <> 1"); v != 0 {
		t.Fatalf("%d rows applied more than once", v)
	}
	if rows := e.query("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM events_dlq)"); rows != n {
		t.Fatalf("%d rows and dead letters, want %d", rows, n)
	}
	heir.Stop()
}
