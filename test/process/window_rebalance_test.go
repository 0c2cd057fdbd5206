package process_test

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

// TestWindowedRebalance: the windowed exactly_once connector of
// TestWindowedSIGKILL, into Kafka, PostgreSQL and Redis, run by two
// processes whose partitions move between them while input streams in.
// Every move lands while windows are open and the partitions that move
// have input waiting (a burst of input is being drained; asserted):
//
//  1. b joins while a drains a burst: the partitions split, and b must
//     load the state a committed for its partitions from the sink (the
//     windows open there hold a's records; recomputing them from b's
//     starting offsets would lose those);
//  2. b is SIGKILLed and restarted: its new process loads the state again;
//  3. b is stopped with SIGTERM: its partitions go back to a, the same
//     process that held them before step 1, whose memory of them is stale
//     (b emitted windows and changed others since): a must drop it and
//     load the state b committed;
//  4. b joins again, and 5. a is stopped with SIGTERM: everything moves to b.
//
// Then b drains the input, and every window the input closed must be in
// the sink exactly once, with the count and sum computed from the input.
func TestWindowedRebalance(t *testing.T) {
	t.Parallel()
	for name, sink := range windowedSinks() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runWindowedRebalance(t, sink)
		})
	}
}

// Bursts are sized to the connector's measured drain rate: a kill lands
// within a status poll of its burst's start; a join's burst starts when
// the group has the new member, and the partitions move once the group's
// members have ended their batches and rejoined (twice: cooperative
// rebalancing revokes, then assigns). Either must find the burst still
// draining (asserted).
const (
	killBurst = time.Second / 2
	joinBurst = 5 * time.Second / 2
)

func runWindowedRebalance(t *testing.T, sink windowedSink) {
	p := newPipe(t)
	cfg := p.writeWindowedConfig(sink)
	start := time.Now()
	const pre = 100_000
	p.produce(0, pre)
	a := startInstance(t, cfg, p.instanceID("wa"))
	in := p.startBurstStream(pre)
	idB := p.instanceID("wb")
	logView := func(what string, v holders) {
		t.Helper()
		t.Logf("%6.1fs %s: %s", time.Since(start).Seconds(), what, v)
	}

	// a drains the backlog alone: its rate sizes the bursts.
	var first time.Time
	var firstAt int
	v := p.waitHolders(t, "a to drain the backlog", []*instance{a}, func(v holders) bool {
		if first.IsZero() && v.committed() > 0 {
			first, firstAt = time.Now(), v.committed()
		}
		return len(v.held[0]) == inputPartitions && v.committed() >= pre && v.checkpointsPositive()
	})
	rate := float64(v.committed()-firstAt) / time.Since(first).Seconds()
	burst := func(d time.Duration) int { return max(int(rate*d.Seconds()), 30_000) }
	logView(fmt.Sprintf("a drained the backlog at %.0f records/s", rate), v)

	// 1. b joins while a drains a burst, every partition holding windows
	// that a committed (each holds at least the window of its last record).
	b := newInstance(t, cfg, idB)
	join := func(what string, launch func()) {
		t.Helper()
		logView(what+"; before", p.waitHolders(t, "a's status", []*instance{a}, func(holders) bool { return true }))
		launch()
		waitFor(t, time.Minute, "b to join the group", func() bool {
			a.Alive()
			n, err := p.groupMembers()
			return err == nil && n == 2
		})
		n := burst(joinBurst)
		from := in.burst(n)
		v := p.waitHolders(t, "a and b to split the partitions, b restoring their state", []*instance{a, b}, func(v holders) bool {
			// However long the rebalance takes, a burst stays ahead of
			// the connector until the partitions have moved.
			if in.lastEnd()-v.committed() < n/2 {
				in.burst(n)
			}
			return v.split() && v.win[1].Restores >= uint64(len(v.held[1]))
		})
		logView(fmt.Sprintf("%s during the burst from %d", what, from), v)
		p.stillDraining(t, in, v, what)
		p.waitProgress(t, "b to commit on every partition it took", []*instance{a, b}, 1, v)
	}
	join("b joins", b.Start)

	// 2. b is SIGKILLed with a burst in flight on its partitions and
	// restarted (same instance_id: its static membership takes the same
	// partitions back at once).
	v = p.midBurst(t, in, burst(killBurst), "b's partitions", []*instance{a, b}, 1)
	b.kill(syscall.SIGKILL)
	logView("SIGKILL b", v)
	b.restart()
	v = p.waitHolders(t, "the restarted b to hold partitions and restore their state", []*instance{a, b}, func(v holders) bool {
		return v.split() && v.win[1].Restores >= uint64(len(v.held[1]))
	})
	logView("b restarted", v)
	p.waitProgress(t, "the restarted b to commit on its partitions", []*instance{a, b}, 1, v)

	// 3. b stops: its partitions go back to a, which held them before b
	// joined and must not use what it remembers of them.
	v = p.midBurst(t, in, burst(killBurst), "b's partitions", []*instance{a, b}, 1)
	restoresA := v.win[0].Restores
	b.kill(syscall.SIGTERM)
	logView("SIGTERM b", v)
	if code := b.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("b: exit %d after SIGTERM, want 0\n%s", code, b.LogTail(30))
	}
	movedBack := v.held[1]
	w := p.waitHolders(t, "a to take every partition back and reload their state", []*instance{a}, func(w holders) bool {
		return len(w.held[0]) == inputPartitions && w.win[0].Restores >= restoresA+uint64(len(movedBack))
	})
	logView("b stopped", w)
	p.waitProgress(t, "a to commit past b on the partitions it took back", []*instance{a}, 0, v.only(movedBack))

	// 4. b joins again while a drains a burst.
	join("b joins again", b.restart)

	// 5. a stops: everything moves to b.
	v = p.midBurst(t, in, burst(killBurst), "a's partitions", []*instance{a, b}, 0)
	restoresB := v.win[1].Restores
	movedToB := v.held[0]
	a.kill(syscall.SIGTERM)
	logView("SIGTERM a", v)
	if code := a.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("a: exit %d after SIGTERM, want 0\n%s", code, a.LogTail(30))
	}
	w = p.waitHolders(t, "b to take every partition and reload their state", []*instance{b}, func(w holders) bool {
		return len(w.held[0]) == inputPartitions && w.win[0].Restores >= restoresB+uint64(len(movedToB))
	})
	logView("a stopped", w)
	p.waitProgress(t, "b to commit past a on the partitions it took", []*instance{b}, 0, v.only(movedToB))

	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, b)
	st := b.mustStatus(connectorName)
	b.kill(syscall.SIGTERM)
	if code := b.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("b: exit %d after SIGTERM, want 0", code)
	}
	t.Logf("%d input records drained in %.1fs after 5 moves; b's window status %+v", total, time.Since(start).Seconds(), windowStatus(t, st))
	read := time.Now()
	got := sink.read(t, p)
	t.Logf("read %d windows back in %.1fs", len(got), time.Since(read).Seconds())
	checkWindows(t, got, total)
}

// holders is what the statuses of some instances said at one moment: the
// partitions each holds with its checkpoint and lag, and its window
// section. Index i is the i-th instance asked.
type holders struct {
	held []map[int32]connector.PartitionStatus
	win  []connector.WindowStatus
}

// holdersOf reads the status of each instance; false if one did not answer.
func holdersOf(t *testing.T, ins []*instance) (holders, bool) {
	var v holders
	for _, in := range ins {
		in.Alive()
		st, err := in.status(connectorName)
		if err != nil {
			return holders{}, false
		}
		held := map[int32]connector.PartitionStatus{}
		for _, ps := range st.Partitions {
			held[ps.Partition] = connector.PartitionStatus{Checkpoint: ps.Checkpoint, Lag: ps.Lag}
		}
		v.held = append(v.held, held)
		v.win = append(v.win, windowStatus(t, st))
	}
	return v, true
}

// split: every partition is held by exactly one instance, and each holds some.
func (v holders) split() bool {
	seen := map[int32]bool{}
	for _, h := range v.held {
		if len(h) == 0 {
			return false
		}
		for part := range h {
			if seen[part] {
				return false
			}
			seen[part] = true
		}
	}
	return len(seen) == inputPartitions
}

// checkpointsPositive: every held partition has a committed checkpoint past 0.
func (v holders) checkpointsPositive() bool {
	for _, h := range v.held {
		for _, ps := range h {
			if ps.Checkpoint <= 0 {
				return false
			}
		}
	}
	return true
}

// committed is the input committed on the held partitions (the input is
// not transactional: offsets count records).
func (v holders) committed() int {
	n := int64(0)
	for _, h := range v.held {
		for _, ps := range h {
			n += ps.Checkpoint
		}
	}
	return int(n)
}

// only is v's checkpoints of parts, as if one instance held them.
func (v holders) only(parts map[int32]connector.PartitionStatus) holders {
	out := map[int32]connector.PartitionStatus{}
	for _, h := range v.held {
		for part, ps := range h {
			if _, ok := parts[part]; ok {
				out[part] = ps
			}
		}
	}
	return holders{held: []map[int32]connector.PartitionStatus{out}, win: []connector.WindowStatus{{}}}
}

func (v holders) String() string {
	s := ""
	for i, h := range v.held {
		parts := slices.Sorted(maps.Keys(h))
		s += fmt.Sprintf("[%d: partitions %v, ", i, parts)
		for _, part := range parts {
			s += fmt.Sprintf("%d@%d+%d ", part, h[part].Checkpoint, h[part].Lag)
		}
		w := v.win[i]
		s += fmt.Sprintf("open windows %d, restores %d, emitted %d] ", w.OpenWindows, w.Restores, w.Emitted)
	}
	return s
}

// waitHolders polls the statuses of ins until cond holds and returns them.
func (p *pipe) waitHolders(t *testing.T, what string, ins []*instance, cond func(holders) bool) holders {
	t.Helper()
	var v holders
	waitFor(t, 2*time.Minute, what, func() bool {
		var ok bool
		v, ok = holdersOf(t, ins)
		return ok && cond(v)
	})
	return v
}

// waitProgress waits until instance i of ins commits past every
// checkpoint of from's instance i on each partition.
func (p *pipe) waitProgress(t *testing.T, what string, ins []*instance, i int, from holders) {
	t.Helper()
	p.waitHolders(t, what, ins, func(v holders) bool {
		for part, ps := range from.held[i] {
			now, ok := v.held[i][part]
			if !ok || now.Checkpoint <= ps.Checkpoint {
				return false
			}
		}
		return true
	})
}

// midBurst adds a burst of n records to the input and returns the
// statuses of ins once instance i has begun on it: its partitions have
// committed part of the burst but have input waiting (lag), and it has
// windows open. The caller's fault then lands on work in flight.
func (p *pipe) midBurst(t *testing.T, in *burstStream, n int, whose string, ins []*instance, i int) holders {
	t.Helper()
	from := in.burst(n)
	var v holders
	waitFor(t, 2*time.Minute, fmt.Sprintf("%s to be part-way through the burst of %d input records from %d", whose, n, from), func() bool {
		var ok bool
		v, ok = holdersOf(t, ins)
		if !ok {
			return false
		}
		if v.committed() >= from+n {
			t.Fatalf("%s drained the burst of %d records before the fault could land in it (%s)", whose, n, v)
		}
		lag := int64(0)
		for _, ps := range v.held[i] {
			lag += ps.Lag
		}
		return v.committed() > from+n/20 && lag > 0 && len(v.held[i]) > 0 && v.win[i].OpenWindows > 0
	})
	return v
}

// stillDraining fails the test unless the input committed when v was read
// is short of the last burst's end: the move that v shows took effect
// with the burst still draining.
func (p *pipe) stillDraining(t *testing.T, in *burstStream, v holders, what string) {
	t.Helper()
	if end := in.lastEnd(); v.committed() >= end {
		t.Fatalf("the burst (input up to %d) was drained before %s took effect (%d committed): the move found no work in flight", end, what, v.committed())
	}
}

// burstStream is startStream's input at streamRate plus bursts on demand,
// in one sequence of record indexes.
type burstStream struct {
	*stream
	extra atomic.Int64 // records to add at the next tick
	end   atomic.Int64 // the last burst ends here or later
}

// startBurstStream streams records from..∞ at streamRate a second.
func (p *pipe) startBurstStream(from int) *burstStream {
	const tick = 50 * time.Millisecond
	per := max(streamRate*int(tick)/int(time.Second), 1)
	b := &burstStream{}
	b.stream = p.startProducing(from, tick, func(int) int { return per + int(b.extra.Swap(0)) })
	return b
}

// burst adds n records to the stream, produced from the next tick on
// (while the connector reads them) after any burst still pending, and
// returns the index of the first one at the earliest.
func (b *burstStream) burst(n int) int {
	from := max(b.produced()+int(b.extra.Load()), b.lastEnd())
	b.end.Store(int64(from + n))
	b.extra.Add(int64(n))
	return from
}

// lastEnd is the end of the last burst, at the earliest.
func (b *burstStream) lastEnd() int { return int(b.end.Load()) }
