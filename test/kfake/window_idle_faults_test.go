package kfake_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/test/e2e"
)

// TestWindowedIdleTimeoutUnderFaults: the windowed connector with
// watermark.idle_timeout (300ms) under the fault schedule, a restart and a
// second instance joining and leaving, while input streams in. Partitions
// 0-2 get input all the time; partition 3 gets bursts (100ms of input,
// then 600ms of silence) whose event times run 1.5 windows behind the
// others'. Each silence makes partition 3 idle, its watermark is raised to
// the others', its windows close without input on it, and the next burst
// starts with records for windows so closed: late because of the idle
// advance (dropped, counted). Those decisions depend on timing; the batch
// oracle replays them from the idle log the stage committed with its
// state, and must find every result exactly, after aborts, restores and
// moves. The test asserts that idle advances and idle-late records
// happened, and that batches were aborted.
func TestWindowedIdleTimeoutUnderFaults(t *testing.T) {
	c := newCluster(t)
	cfg := parse(t, c, strings.Replace(windowConfig(""), "late: drop", "late: drop\n\t\t\t\twatermark: {idle_timeout: 300ms}", 1))
	adm := newAdmin(t, c)
	in := streamIdleInput(t, c)

	began := time.Now()
	faults := e2e.Inject(c, windowFaults, 7, 0.02)
	var daemons []*daemon.Daemon
	start := func(id string) *daemon.Daemon {
		d := startDaemon(t, cfg, id)
		daemons = append(daemons, d)
		return d
	}
	idle := func() (advances, late uint64) {
		for _, d := range daemons {
			if st, _ := d.Status("win"); st.Window != nil {
				advances += st.Window.IdleAdvances
				late += st.Window.IdleLate
			}
		}
		return advances, late
	}
	// waitIdle waits until the instances together made more idle
	// advances and idle-late records than before.
	waitIdle := func(what string) {
		t.Helper()
		a0, l0 := idle()
		deadline := time.Now().Add(time.Minute)
		for {
			if a, l := idle(); a > a0 && l > l0 {
				t.Logf("%s (%.1fs): idle advances %d, idle-late records %d", what, time.Since(began).Seconds(), a, l)
				return
			}
			if time.Now().After(deadline) {
				a, l := idle()
				t.Fatalf("%s: no new idle advance and idle-late record within 1m (advances %d, idle-late %d)", what, a, l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := start("a")
	waitIdle("first instance")
	a.Stop() // graceful restart: state restored from the state topic
	a = start("a")
	waitIdle("after the restart")
	b := start("b") // cooperative rebalance: partitions and their state move
	waitIdle("with two instances")
	b.Stop()
	waitIdle("after b left")
	n := in.stop(t)
	hits, summary := faults.Stop()
	waitCommittedInput(t, adm, n, 2*time.Minute)
	a.Stop()
	t.Logf("faults: %s", summary)

	aborts := 0
	for _, d := range daemons {
		st, _ := d.Status("win")
		for _, v := range st.Aborts {
			aborts += int(v)
		}
	}
	advances, late := idle()
	t.Logf("%d input records, %d requests faulted, %d batches aborted, %d idle advances, %d idle-late records", n, hits, aborts, advances, late)
	if aborts == 0 {
		t.Fatal("faults fired but no batch aborted: the faults did not bite")
	}
	rep := e2e.Check(t, c, cfg, "win")
	if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 {
		t.Fatalf("verify: %s, want clean over windows and idle-late records", rep)
	}
	t.Logf("verify: %s", rep)
}

// streamIdleInput streams the input of TestWindowedIdleTimeoutUnderFaults
// until stopped: every 10ms, 3 records to each of partitions 0-2 (value.i
// rising), and, in the first 10 of every 70 rounds, 3 to partition 3 with
// i 150 behind.
func streamIdleInput(t *testing.T, c *kfake.Cluster) *inputStream {
	i, round := 2000, 0
	return streamRecords(t, c, 0, []kgo.Opt{kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.ManualPartitioner())},
		func(seq int) []*kgo.Record {
			var recs []*kgo.Record
			add := func(p int32, at int) {
				recs = append(recs, &kgo.Record{Partition: p,
					Key:     fmt.Appendf(nil, "k%d-%d", p, seq%5),
					Value:   fmt.Appendf(nil, `{"i":%d,"amount":%d}`, at, seq%1000),
					Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", seq)}}})
				seq++
			}
			for range 3 {
				for p := range int32(3) {
					add(p, i)
				}
				if round%70 < 10 {
					add(3, i-150)
				}
				i++
			}
			round++
			return recs
		})
}
