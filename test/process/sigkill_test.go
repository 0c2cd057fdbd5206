package process_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/connectd/connectd/txn"
)

// Kill schedule of the SIGKILL tests.
const (
	minKills = 10
	maxKills = 30 // a bound on the loop, far above what the pacing allows
	// preproduced input records exist before the first start; the rest
	// arrive concurrently at streamRate a second, so the connector is busy
	// (open batches, records in flight) whenever it is killed.
	preproduced = 10_000
	streamRate  = 800
)

// seed is the seed of a test's random schedule (kills, freezes, stops): CONNECTD_PROCESS_SEED replays a run,
// otherwise the clock picks one. Either way it is logged.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("CONNECTD_PROCESS_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CONNECTD_PROCESS_SEED=%q: %v", v, err)
		}
	}
	t.Logf("random schedule seed %d (replay with CONNECTD_PROCESS_SEED=%d)", s, s)
	return s
}

// killResult is what a SIGKILL run did.
type killResult struct {
	kills int
	// selfKills counts the kills (among kills) the process sent itself at
	// a fail point (runSIGKILLScheduleAt).
	selfKills int
	// openAtKill counts kills that left a transaction open on the broker
	// (exactly_once only): work the restart's fencing had to abort.
	openAtKill int
	input      int
	cfgPath    string
}

// runSIGKILLSchedule runs one connector of the given guarantee over at
// least minInput events, SIGKILLs it each time it has committed another
// 3-8% of minInput (plus a random 0-150ms), at least minKills times,
// restarting it each time with the same instance_id, then lets it drain
// and stops it with SIGTERM.
func runSIGKILLSchedule(t *testing.T, guarantee string) killResult {
	return runSIGKILLScheduleTo(t, guarantee, nil)
}

// runSIGKILLScheduleTo is runSIGKILLSchedule with the sink section sink
// returns for the test's pipe (nil: the Kafka output topic).
func runSIGKILLScheduleTo(t *testing.T, guarantee string, sink func(*pipe) string) killResult {
	return runSIGKILLScheduleWith(t, guarantee, func(p *pipe, c *connectorConfig) {
		if sink != nil {
			c.sink = sink(p)
		}
	})
}

// runSIGKILLScheduleWith is runSIGKILLSchedule with the connector config
// edited by configure.
func runSIGKILLScheduleWith(t *testing.T, guarantee string, configure func(*pipe, *connectorConfig)) killResult {
	return runKillSchedule(t, guarantee, configure, "")
}

// selfKillEvery: with a fail point, every selfKillEvery-th kill is the
// process's own, at the point.
const selfKillEvery = 3

// runSIGKILLScheduleAt is runSIGKILLScheduleTo where every selfKillEvery-th
// kill is not sent from outside: the process is restarted with the fail
// point (txn.KillPointEnv) set to point, at its 1st to 5th time there, and
// SIGKILLs itself when it gets there. A point can be a window too short
// for an outside kill to hit reliably.
func runSIGKILLScheduleAt(t *testing.T, guarantee string, sink func(*pipe) string, point string) killResult {
	return runKillSchedule(t, guarantee, func(p *pipe, c *connectorConfig) { c.sink = sink(p) }, point)
}

// runKillSchedule is runSIGKILLScheduleWith, with the process's own kills
// at point if it is not empty (runSIGKILLScheduleAt).
func runKillSchedule(t *testing.T, guarantee string, configure func(*pipe, *connectorConfig), point string) killResult {
	p := newPipe(t)
	c := connectorConfig{
		guarantee:          guarantee,
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     "6s", // the broker's group.min.session.timeout.ms: a killed member is expelled fast
		shutdownTimeout:    "10s",
	}
	configure(p, &c)
	cfg := p.writeConfig(c)
	rng := rand.New(rand.NewPCG(seed(t), 0))
	start := time.Now()

	p.produce(0, preproduced)
	in := p.startStream(preproduced, streamRate)
	id := p.instanceID("k")
	inst := startInstance(t, cfg, id)
	kills, atKill, openAtKill, selfKills := 0, 0, 0, 0
	// armed: the running process was started with the fail point set;
	// awaitSelfKill waits for it to kill itself there.
	armed := ""
	awaitSelfKill := func() {
		t.Helper()
		inst.WaitExit(2 * time.Minute)
		if st := inst.ExitState(); st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("started with %s, the process exited with %v, want killed by SIGKILL there\n%s", armed, st, inst.LogTail(40))
		}
		inst.SetEnv()
		kills++
		selfKills++
		atKill = p.committed()
		t.Logf("kill %2d at %6.1fs: SIGKILL by the process itself at %s; %d committed after it, %d produced",
			kills, time.Since(start).Seconds(), armed, atKill, in.produced())
		armed = ""
	}
	for kills < maxKills && (kills < minKills || in.produced() < minInput) {
		if armed != "" {
			awaitSelfKill()
			inst.restart()
			continue
		}
		step := int(float64(minInput) * (0.03 + 0.05*rng.Float64()))
		delay := time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		reached := p.waitCommitted(atKill+step, 2*time.Minute, inst)
		time.Sleep(delay)
		inst.Alive()
		inst.kill(syscall.SIGKILL)
		kills++
		atKill = p.committed()
		txnState := "-"
		if guarantee == "exactly_once" && c.sink == "" {
			if d, err := p.describeTxn(id); err != nil {
				txnState = "describe: " + err.Error()
			} else {
				txnState = d.State
				if d.State == "Ongoing" {
					openAtKill++
				}
			}
		}
		t.Logf("kill %2d at %6.1fs: SIGKILL after %d committed (+%d, then %v); %d committed after it, %d produced; transaction left %s",
			kills, time.Since(start).Seconds(), reached, step, delay.Round(time.Millisecond), atKill, in.produced(), txnState)
		if point != "" && (kills+1)%selfKillEvery == 0 {
			armed = fmt.Sprintf("%s:%d", point, 1+rng.IntN(5))
			inst.SetEnv(txn.KillPointEnv + "=" + armed)
			inst.startMayDie() // it may get there before its admin API answers
			continue
		}
		inst.restart()
	}
	if armed != "" { // the loop ended with the fail point armed: let it fire
		awaitSelfKill()
		inst.restart()
	}
	if kills < minKills {
		t.Fatalf("only %d kills", kills)
	}
	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, inst)
	st := inst.mustStatus(connectorName)
	t.Logf("drained %d input records in %.1fs; last run's status: %s", total, time.Since(start).Seconds(), st)

	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	return killResult{kills: kills, selfKills: selfKills, openAtKill: openAtKill, input: total, cfgPath: cfg}
}

// TestSIGKILLExactlyOnceKafkaToKafka: SIGKILL at random points of a
// Kafka → set → Kafka exactly_once connector, restarted each time with the
// same instance_id (so its transactional ID fences whatever the dead
// process left open), leaves every input event in the output exactly once.
func TestSIGKILLExactlyOnceKafkaToKafka(t *testing.T) {
	t.Parallel()
	r := runSIGKILLSchedule(t, "exactly_once")
	rep := verifyClean(t, r.cfgPath, connectorName, r.input)
	t.Logf("exactly_once: %d SIGKILLs (%d left a transaction open) over %d events: expected %d, actual %d, duplicates %d, missing %d, unexpected %d",
		r.kills, r.openAtKill, r.input, rep.Expected, rep.Actual, rep.Duplicates, rep.Missing, rep.Unexpected)
}

// TestSIGKILLAtLeastOnceCountsDuplicates: the same schedule at_least_once
// loses nothing but duplicates — proof that the kills land mid-batch.
func TestSIGKILLAtLeastOnceCountsDuplicates(t *testing.T) {
	t.Parallel()
	r := runSIGKILLSchedule(t, "at_least_once")
	v := runVerify(t, r.cfgPath, connectorName)
	rep := v.report
	t.Logf("at_least_once: %d SIGKILLs over %d events: expected %d, actual %d, duplicates %d, missing %d, unexpected %d",
		r.kills, r.input, rep.Expected, rep.Actual, rep.Duplicates, rep.Missing, rep.Unexpected)
	if rep.Expected != r.input {
		t.Errorf("verify expected %d outputs, want %d (all input drained)", rep.Expected, r.input)
	}
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Errorf("at_least_once lost or invented records: %s", rep)
	}
	if rep.Duplicates == 0 {
		t.Errorf("no duplicates after %d SIGKILLs at_least_once: the kills did not bite", r.kills)
	}
	if v.code != 1 {
		t.Errorf("verify exit %d with duplicates, want 1", v.code)
	}
}
