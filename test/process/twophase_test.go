package process_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/txn"
)

// Two-phase commit (issue 6): one batch lands in the Kafka output topic AND
// a PostgreSQL table, or in neither. The rows are prepared (PREPARE
// TRANSACTION), the Kafka transaction commits the output, the offsets and a
// decision record naming the prepared transaction, then COMMIT PREPARED.
// These tests kill and freeze real connectd processes at each step and
// check both sinks with `connectd verify` (every sink of the connector),
// plus that no prepared transaction is left once the pipeline is quiet.

// twoPhaseSinks is the sinks section: the Kafka output topic and the
// PostgreSQL table of postgresSink (apply counter on).
func twoPhaseSinks(p *pipe, dsn string) string {
	kafka := "\t\t\t- type: kafka\n\t\t\t\ttopic: " + p.out
	pg := strings.Replace(postgresSink(dsn), "\t\t\t", "\t\t\t- ", 1)
	pg = strings.ReplaceAll(pg, "\n\t\t\t", "\n\t\t\t\t")
	return kafka + "\n" + pg
}

// twoPhasePipe is a pipe with a two-phase connector writing to it and to a
// fresh database; guarantee picks exactly_once or at_least_once.
type twoPhasePipe struct {
	*pipe
	dsn string
	cfg string
}

// newTwoPhasePipe writes to a fresh database of the shared PostgreSQL, or
// to dsn if given.
func newTwoPhasePipe(t *testing.T, guarantee, sessionTimeout string, dsn ...string) *twoPhasePipe {
	return newTwoPhasePipeOn(t, newPipe(t), guarantee, sessionTimeout, dsn...)
}

// newTwoPhasePipeOn is newTwoPhasePipe on the pipe p.
func newTwoPhasePipeOn(t *testing.T, p *pipe, guarantee, sessionTimeout string, dsn ...string) *twoPhasePipe {
	if len(dsn) == 0 {
		dsn = []string{testenv.Postgres(t)}
	}
	cfg := p.writeConfig(connectorConfig{
		guarantee:          guarantee,
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     sessionTimeout,
		shutdownTimeout:    "10s",
		batchMaxRecords:    500, // many batches, so the fail points' counts are reached
		sinks:              twoPhaseSinks(p, dsn[0]),
	})
	return &twoPhasePipe{pipe: p, dsn: dsn[0], cfg: cfg}
}

// prepared counts the connector's prepared transactions in the database.
func (tp *twoPhasePipe) prepared() int {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, tp.dsn)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)",
		txn.GIDPrefix(connectorName)).Scan(&n); err != nil {
		tp.t.Fatal(err)
	}
	return n
}

// checkQuiet verifies both sinks exactly once for want events and no
// prepared transaction left.
func (tp *twoPhasePipe) checkQuiet(want int) report {
	tp.t.Helper()
	rep := verifyClean(tp.t, tp.cfg, connectorName, 2*want) // every event in both sinks
	if n := tp.prepared(); n != 0 {
		tp.t.Fatalf("%d prepared transactions left on a quiet pipeline", n)
	}
	return rep
}

// TestTwoPhaseKilledAtEachPoint: a process SIGKILLs itself at each named
// point of the two-phase commit in turn, restarted each time: after the
// prepare (a prepared transaction no decision names: rolled back), during
// recovery of it (recovery starts over), after the decision (a prepared
// transaction the committed decision names: committed). Both sinks verify
// clean, each row applied once, and no prepared transaction is left.
func TestTwoPhaseKilledAtEachPoint(t *testing.T) {
	t.Parallel()
	tp := newTwoPhasePipe(t, "exactly_once", "6s")
	const n = 20_000
	tp.produce(0, n)
	id := tp.instanceID("2pc")
	inst := newInstance(t, tp.cfg, id)

	steps := []struct {
		point string
		// leaves: what the dead process leaves in PostgreSQL.
		leaves string
	}{
		{"after-prepare:3", "a prepared transaction without a decision"},
		{"during-recovery:1", "the same, recovery interrupted"},
		{"after-decision:5", "a prepared transaction its committed decision names"},
		{"during-recovery:1", "the same, recovery interrupted"},
		{"after-prepare:10", "a prepared transaction without a decision"},
	}
	for _, s := range steps {
		inst.SetEnv(txn.KillPointEnv + "=" + s.point)
		committedBefore := tp.committed()
		inst.startMayDie()
		code := inst.WaitExit(2 * time.Minute)
		if st := inst.ExitState(); code != -1 || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: the process exited with %v, want killed by SIGKILL at the point\n%s", s.point, st, inst.LogTail(40))
		}
		left := tp.prepared()
		t.Logf("killed at %-18s committed %d -> %d; %d prepared left (%s)", s.point, committedBefore, tp.committed(), left, s.leaves)
		if left == 0 {
			t.Fatalf("killed at %s but no prepared transaction was left: the point is not between the phases", s.point)
		}
	}
	inst.SetEnv()
	inst.Start()
	tp.waitDrained(n, 3*time.Minute, inst)
	st := inst.mustStatus(connectorName)
	// The last run started with the fifth kill's undecided transaction.
	if !strings.Contains(st.raw, `"two_phase":{"in_doubt":0,"resolved_committed":0,"resolved_rolled_back":1`) {
		t.Errorf("status does not show the rolled-back in-doubt transaction and none left: %s", st)
	}
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	rep := tp.checkQuiet(n)
	t.Logf("after %d kills at named points: %s; last status: %s", len(steps), rep, st)
}

// TestSIGKILLTwoPhase: SIGKILLs at random points (at least 10 over at least
// 50,000 events) of a two-phase connector leave both sinks exactly once,
// each row applied once, and no prepared transaction behind.
func TestSIGKILLTwoPhase(t *testing.T) {
	t.Parallel()
	var dsn string
	r := runSIGKILLScheduleWith(t, "exactly_once", func(p *pipe, c *connectorConfig) {
		dsn = testenv.Postgres(t)
		c.sinks = twoPhaseSinks(p, dsn)
	})
	tp := &twoPhasePipe{dsn: dsn, cfg: r.cfgPath, pipe: &pipe{t: t}}
	rep := tp.checkQuiet(r.input)
	t.Logf("two-phase exactly_once: %d SIGKILLs over %d events: %s", r.kills, r.input, rep)
}

// TestSIGKILLTwoPhaseAtLeastOnce: the same connector at_least_once (each
// sink written in turn, then the group offsets) loses nothing in either
// sink; duplicates are counted.
func TestSIGKILLTwoPhaseAtLeastOnce(t *testing.T) {
	t.Parallel()
	r := runSIGKILLScheduleWith(t, "at_least_once", func(p *pipe, c *connectorConfig) {
		c.sinks = twoPhaseSinks(p, testenv.Postgres(t))
	})
	rep := runVerify(t, r.cfgPath, connectorName).report
	t.Logf("kafka+postgres at_least_once: %d SIGKILLs over %d events: %s", r.kills, r.input, rep)
	if rep.Expected != 2*r.input {
		t.Errorf("verify expected %d outputs, want %d (all input drained, in both sinks)", rep.Expected, 2*r.input)
	}
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Errorf("at_least_once lost or invented records: %s", rep)
	}
}

// TestTwoPhaseZombieCannotCommitWhatRecoveryRolledBack: instance A freezes
// itself (SIGSTOP) with a batch prepared and its decision not yet
// committed. B joins, gets A's partitions once A's session times out, finds
// A's prepared transaction, fences A's transactional ID and rolls it back.
// Then A resumes (SIGCONT) and tries to commit: its Kafka transaction is
// fenced, so no decision ever names the rolled-back transaction, and
// nothing of A's batch appears in either sink.
func TestTwoPhaseZombieCannotCommitWhatRecoveryRolledBack(t *testing.T) {
	t.Parallel()
	tp := newTwoPhasePipe(t, "exactly_once", "6s")
	const n = 20_000
	tp.produce(0, n)
	idA, idB := tp.instanceID("a"), tp.instanceID("b")
	a := newInstance(t, tp.cfg, idA)
	a.SetEnv(txn.FreezePointEnv + "=after-prepare:4")
	a.Launch()
	waitFor(t, time.Minute, "A frozen after its 4th prepare", func() bool {
		return processState(a.Pid()) == 'T'
	})
	if tp.prepared() != 1 {
		t.Fatalf("A is frozen after a prepare, yet %d prepared transactions exist", tp.prepared())
	}
	frozenAt := tp.committed()

	b := startInstance(t, tp.cfg, idB)
	mark := b.LogSize()
	waitFor(t, 2*time.Minute, "B resolves A's prepared transaction", func() bool {
		b.Alive()
		return strings.Contains(string(b.LogFrom(mark)), "resolved an in-doubt transaction")
	})
	bLog := string(b.LogFrom(mark))
	fenced := strings.Index(bLog, "fenced another instance's transactional ID")
	if fenced < 0 || fenced > strings.Index(bLog, "resolved an in-doubt transaction") ||
		!strings.Contains(bLog, "transactional_id="+transactionalID(idA)) || !strings.Contains(bLog, "committed=false") {
		t.Fatalf("B must fence A, then roll A's undecided transaction back:\n%s", bLog)
	}
	tp.waitDrained(n, 3*time.Minute, b)

	aMark := a.LogSize()
	a.kill(syscall.SIGCONT)
	waitFor(t, time.Minute, "the resumed zombie A fails its commit, fenced", func() bool {
		return strings.Contains(a.logSince(aMark), "kind=fenced")
	})
	t.Logf("the resumed zombie: %s", a.logSince(aMark))
	if n := tp.prepared(); n != 0 {
		t.Fatalf("%d prepared transactions after the zombie resumed", n)
	}
	b.kill(syscall.SIGTERM)
	b.WaitExit(30 * time.Second)
	a.kill(syscall.SIGTERM)
	a.WaitExit(30 * time.Second)
	rep := tp.checkQuiet(n)
	t.Logf("zombie frozen at %d committed, fenced and rolled back by B; resumed and refused: %s", frozenAt, rep)
}

// processState is the state letter of /proc/<pid>/stat ('T' stopped).
func processState(pid int) byte {
	b, err := readProcStat(pid)
	if err != nil {
		return 0
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func readProcStat(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return string(b), err
}

// freezeAt starts inst with the fail point FreezePointEnv=point and waits
// until the process has stopped itself there.
func freezeAt(t *testing.T, inst *instance, point string) {
	t.Helper()
	inst.SetEnv(txn.FreezePointEnv + "=" + point)
	inst.Launch()
	waitFor(t, 2*time.Minute, "frozen at "+point, func() bool {
		if inst.ExitState() != nil {
			t.Fatalf("the process exited before reaching %s\n%s", point, inst.LogTail(40))
		}
		return processState(inst.Pid()) == 'T'
	})
	inst.SetEnv()
}

// TestTwoPhasePostgresRestartWithPreparedPending: PostgreSQL crashes and
// restarts while a prepared transaction is pending, once after its decision
// committed (phase two then fails on a dead connection: recovery commits
// it) and once before (the decision then commits, or recovery rolls it
// back). A prepared transaction survives the crash; both sinks verify
// clean and none is left.
func TestTwoPhasePostgresRestartWithPreparedPending(t *testing.T) {
	t.Parallel()
	pg := startPrivatePostgres(t)

	// PostgreSQL's default max_prepared_transactions = 0 cannot prepare:
	// the connector fails at start, saying so, instead of failing every
	// batch.
	tp0 := newTwoPhasePipe(t, "exactly_once", "6s", pg.dsn())
	inst0 := startInstance(t, tp0.cfg, tp0.instanceID("mpt0"))
	waitFor(t, time.Minute, "the connector to fail on max_prepared_transactions = 0", func() bool {
		st, err := inst0.status(connectorName)
		return err == nil && st.Connector.State == "FAILED"
	})
	if st := inst0.mustStatus(connectorName); !strings.Contains(st.Connector.Trace, "max_prepared_transactions = 0") {
		t.Fatalf("FAILED without naming the setting: %s", st)
	}
	inst0.kill(syscall.SIGKILL)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.dsn())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET max_prepared_transactions = 16"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	pg.mustCtl("restart", "-m", "fast")

	tp := newTwoPhasePipe(t, "exactly_once", "6s", pg.dsn())
	id := tp.instanceID("pgr")
	inst := newInstance(t, tp.cfg, id)
	total := 0
	for _, c := range []struct{ point, restart string }{
		{"after-decision:4", "immediate"},
		{"after-prepare:4", "fast"},
	} {
		tp.produce(total, total+10_000)
		total += 10_000
		freezeAt(t, inst, c.point)
		if n := tp.prepared(); n != 1 {
			t.Fatalf("frozen at %s with %d prepared transactions, want 1", c.point, n)
		}
		if err := pg.ctl(2*time.Minute, "restart", "-m", c.restart); err != nil {
			t.Fatal(err)
		}
		if n := tp.prepared(); n != 1 {
			t.Fatalf("after PostgreSQL restart -m %s: %d prepared transactions, want the pending one", c.restart, n)
		}
		mark := inst.LogSize()
		inst.kill(syscall.SIGCONT)
		tp.waitDrained(total, 3*time.Minute, inst)
		t.Logf("frozen at %s, PostgreSQL restart -m %s, resumed: %s", c.point, c.restart, inst.logSince(mark))
		inst.kill(syscall.SIGTERM)
		if code := inst.WaitExit(30 * time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0", code)
		}
	}
	rep := tp.checkQuiet(total)
	t.Logf("two PostgreSQL restarts with a prepared transaction pending: %s", rep)
}

// TestTwoPhaseKafkaBrokerRestartMidCommit: the Kafka broker (a container of
// the test's own) is killed while a batch is prepared and its Kafka commit
// is about to run, and started again only after connectd has resumed and
// is committing against the dead broker: whatever the commit's outcome,
// phase two or recovery (with a new producer epoch when it is unknown)
// resolves the prepared transaction from the decisions. Then the broker is killed once more at a random
// moment mid-stream. Both sinks verify clean and none is left prepared.
func TestTwoPhaseKafkaBrokerRestartMidCommit(t *testing.T) {
	t.Parallel()
	kc := testenv.StartKafkaContainers(t, 1)
	broker := kc.Nodes[0]
	tp := newTwoPhasePipeOn(t, newPipeOn(t, kc.Brokers), "exactly_once", "6s")
	id := tp.instanceID("kr")
	inst := newInstance(t, tp.cfg, id)
	ctx := context.Background()
	stop := func() {
		t.Helper()
		zero := time.Duration(0)
		if err := broker.Stop(ctx, &zero); err != nil { // SIGKILL: no controlled shutdown
			t.Fatalf("kill the broker: %v", err)
		}
	}
	start := func() {
		t.Helper()
		if err := broker.Start(ctx); err != nil {
			t.Fatalf("start the broker: %v", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := testenv.WaitKafka(wctx, kc.Brokers, 1); err != nil {
			t.Fatalf("the restarted broker: %v", err)
		}
	}

	const n = 20_000
	tp.produce(0, n)
	freezeAt(t, inst, "after-prepare:4")
	stop()
	mark := inst.LogSize()
	inst.kill(syscall.SIGCONT)
	// connectd now produces the decision and ends the transaction against
	// a dead broker: franz-go retries, the commit hangs. The batch stays
	// prepared all along.
	waitFor(t, time.Minute, "connectd to try the dead broker", func() bool {
		return strings.Contains(inst.logSince(mark), "connection refused")
	})
	time.Sleep(3 * time.Second)
	if n := tp.prepared(); n != 1 {
		t.Fatalf("%d prepared transactions while the broker is down, want the frozen batch's", n)
	}
	start()
	tp.waitDrained(n/2, 3*time.Minute, inst)
	t.Logf("broker killed mid-commit, restarted: %s", inst.logSince(mark))

	stop()
	time.Sleep(2 * time.Second)
	start()
	tp.waitDrained(n, 3*time.Minute, inst)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	rep := tp.checkQuiet(n)
	t.Logf("two broker kills, one mid-commit: %s", rep)
}
