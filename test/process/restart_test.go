package process_test

import (
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// The restart schedule of TestSIGKILLRestartsInSeconds.
const (
	restartBacklog = 1_000_000 // input before the first start
	restartKills   = 10
	// restartKeepLag is the backlog a feeder keeps ahead of the committed
	// offsets while the kills go on, producing more whenever the lag falls
	// below it: every kill lands in a saturating drain, whatever the
	// machine's speed (Kafka drains about 115,000 records a second here,
	// so the first million alone would be gone before the tenth kill).
	restartKeepLag = 300_000
	// restartMinInFlight is the lag a kill must find to count as biting.
	restartMinInFlight = 100_000
	// restartSessionTimeout is the source's session_timeout: Kafka's
	// default, which a dynamic member restarted after a crash waits out
	// before the group rebalances and it gets partitions again.
	restartSessionTimeout = 45 * time.Second
)

// TestSIGKILLRestartsInSeconds: a connector draining a backlog of at least
// 1,000,000 records at full speed (topped up to keep restartKeepLag ahead
// of it) is SIGKILLed 10 times, 1-4 s after each restart,
// and restarted at once with the same instance_id, for each sink. Static
// group membership gives the restarted process its partitions back without
// waiting for the dead member's session to time out (45 s here, Kafka's
// default), and the sink's claim epoch (PostgreSQL, Redis) or the
// transactional ID's producer epoch (Kafka) fences whatever the dead
// process left. Each restart's time to its first commit is logged with
// the median and the worst; the test requires every one of them below half
// the session timeout (the observable difference between a static rejoin
// and a session expiry, not a speed target), every kill to have found
// records in flight, the drain to finish, and verify to be clean.
func TestSIGKILLRestartsInSeconds(t *testing.T) {
	t.Parallel()
	for _, sink := range everySink(t) {
		t.Run(sink.name, func(t *testing.T) {
			runRestarts(t, sink.section)
		})
	}
}

func runRestarts(t *testing.T, sink func(*pipe) string) {
	p := newPipe(t)
	c := connectorConfig{
		guarantee:          "exactly_once",
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     restartSessionTimeout.String(),
		shutdownTimeout:    "10s",
	}
	if sink != nil {
		c.sink = sink(p)
	}
	cfg := p.writeConfig(c)
	rng := rand.New(rand.NewPCG(seed(t), 0))

	start := time.Now()
	for from := 0; from < restartBacklog; from += 100_000 {
		p.produce(from, min(from+100_000, restartBacklog))
	}
	t.Logf("%.1fs: %d-record backlog produced", time.Since(start).Seconds(), restartBacklog)
	in := p.startFeeder(restartBacklog, restartKeepLag)
	inst := startInstance(t, cfg, p.instanceID("r"))
	firstCommit(t, inst)

	var took []time.Duration
	for kill := 1; kill <= restartKills; kill++ {
		time.Sleep(time.Second + time.Duration(rng.Int64N(int64(3*time.Second))))
		inst.Alive()
		committed := p.committed()
		inflight := in.produced() - committed
		inst.kill(syscall.SIGKILL)
		if inflight < restartMinInFlight {
			t.Fatalf("kill %d found %d records in flight (%d committed), under %d: the feeder fell behind the drain, so the fault did not bite",
				kill, inflight, committed, restartMinInFlight)
		}
		launched := time.Now()
		inst.restart() // returns when the admin API answers
		adminUp := time.Since(launched)
		d := adminUp + firstCommit(t, inst)
		took = append(took, d)
		t.Logf("kill %2d at %5.1fs: %d records in flight; restarted, admin API up after %v, first commit %v after the launch",
			kill, time.Since(start).Seconds(), inflight, adminUp.Round(time.Millisecond), d.Round(time.Millisecond))
		if d >= restartSessionTimeout/2 {
			t.Errorf("restart %d took %v to its first commit: the group waited for the dead member's session (%v)",
				kill, d.Round(time.Millisecond), restartSessionTimeout)
		}
	}
	slices.Sort(took)
	t.Logf("SIGKILL → first commit after the restart, %d restarts: median %v, worst %v",
		len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))

	total := in.stop(t)
	p.waitDrained(total, 5*time.Minute, inst)
	t.Logf("%.1fs: drained %d input records", time.Since(start).Seconds(), total)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	rep := verifyClean(t, cfg, connectorName, total)
	t.Logf("exactly_once after %d SIGKILLs: %s", restartKills, rep)
}

// firstCommit waits until the instance's current process has committed a
// batch and returns how long that took after its admin API answered.
func firstCommit(t *testing.T, inst *instance) time.Duration {
	t.Helper()
	up := time.Now()
	deadline := up.Add(limit(t, 2*time.Minute))
	for {
		if st, err := inst.status(connectorName); err == nil && st.Commits > 0 {
			return time.Since(up)
		}
		inst.Alive()
		if time.Now().After(deadline) {
			t.Fatalf("no commit %v after the start\n%s", time.Since(up).Round(time.Second), inst.LogTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startFeeder produces records from..∞ in chunks whenever fewer than
// keepLag of them are uncommitted (by the group's offsets), until stopped:
// a backlog that lasts however fast the connector drains.
func (p *pipe) startFeeder(from, keepLag int) *stream {
	const chunk = 50_000
	return p.startProducing(from, 100*time.Millisecond, func(i int) int {
		offs, err := p.committedOffsets()
		if err != nil {
			return 0
		}
		var committed int64
		for _, o := range offs {
			committed += o
		}
		if i-int(committed) >= keepLag {
			return 0
		}
		return chunk
	})
}
