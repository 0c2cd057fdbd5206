package process_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/test/testenv"
)

// TestSIGSTOPZombieKafkaToPostgres: two instances of one exactly_once
// Kafka → PostgreSQL connector share the partitions; one is frozen with
// SIGSTOP past the 6s session timeout while it holds a batch, the other
// takes every partition (its claims raise the claim epochs in the offsets
// table) and commits past it. On SIGCONT the zombie's commit carries a
// stale claim epoch: the offsets compare-and-set fences it (status: a
// "fenced" abort), nothing of its batch lands, and verify stays clean with
// every apply counter at 1.
func TestSIGSTOPZombieKafkaToPostgres(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	runSinkZombie(t, postgresSink(dsn), func(p *pipe) (int64, error) { return pgClaimEpochSum(dsn, p.group) })
}

// TestSIGSTOPZombieKafkaToRedis: the same with the Redis sink, whose Lua
// script checks every partition's claim epoch before writing anything.
func TestSIGSTOPZombieKafkaToRedis(t *testing.T) {
	t.Parallel()
	runSinkZombie(t, redisSink(testenv.Redis(t)), nil)
}

// pgClaimEpochSum is the sum of the claim epochs in the offsets table for
// group (the sink's default offsets_table). Epochs are per partition, so
// the highest may not move when an heir claims partitions still at a
// lower epoch than another; the sum grows with every claim.
func pgClaimEpochSum(dsn, group string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var epoch int64
	err = conn.QueryRow(ctx, "SELECT coalesce(sum(claim_epoch), 0) FROM connectd_offsets WHERE group_id = $1", group).Scan(&epoch)
	return epoch, err
}

// runSinkZombie freezes one of two instances writing to sink past the
// session timeout, wakes it, and requires its batch fenced and verify
// clean. claimEpoch, if not nil, reads the sink's claim epochs (a sum
// that every claim raises).
func runSinkZombie(t *testing.T, sink string, claimEpoch func(*pipe) (int64, error)) {
	p := newPipe(t)
	cfg := p.writeConfig(connectorConfig{
		guarantee:          "exactly_once",
		commitInterval:     "1s", // long batches: the zombie holds one most of the time
		transactionTimeout: "15s",
		sessionTimeout:     "6s",
		shutdownTimeout:    "10s",
		sink:               sink,
	})
	rng := rand.New(rand.NewPCG(seed(t), 2))
	start := time.Now()
	const pre = 10_000

	p.produce(0, pre)
	zid, hid := p.instanceID("zombie"), p.instanceID("heir")
	zombie := startInstance(t, cfg, zid)
	heir := startInstance(t, cfg, hid)
	in := p.startStream(pre, 1000)
	waitFor(t, time.Minute, "both instances commit", func() bool {
		zombie.Alive()
		heir.Alive()
		n, err := p.groupMembers()
		return err == nil && n == 2 &&
			zombie.mustStatus(connectorName).Commits > 0 && heir.mustStatus(connectorName).Commits > 0
	})
	p.waitCommitted(pre, 2*time.Minute, zombie, heir)
	// A random point inside a batch (commit.interval 1s).
	time.Sleep(time.Duration(rng.Int64N(int64(time.Second))))
	before := zombie.mustStatus(connectorName)
	var epochBefore int64
	if claimEpoch != nil {
		g, err := claimEpoch(p)
		if err != nil {
			t.Fatalf("read the claim epoch: %v", err)
		}
		epochBefore = g
	}
	zombie.kill(syscall.SIGSTOP)
	frozen := time.Now()
	frozenAt, err := p.committedOffsets()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.1fs: SIGSTOP zombie (records_in %d, commits %d; claim epochs, sum %d); committed offsets %v",
		time.Since(start).Seconds(), before.RecordsIn, before.Commits, epochBefore, frozenAt)

	p.waitHeirTakesOver(t, heir, frozenAt)
	t.Logf("%.1fs: the zombie was expelled at most %.1fs after it froze", time.Since(start).Seconds(), time.Since(frozen).Seconds())
	if claimEpoch != nil {
		g, err := claimEpoch(p)
		if err != nil {
			t.Fatalf("read the claim epoch: %v", err)
		}
		t.Logf("claim epochs in the sink (sum): %d before the freeze, %d after the heir took over", epochBefore, g)
		if g <= epochBefore {
			t.Errorf("the heir's claims did not raise the claim epochs in the sink (sum %d -> %d)", epochBefore, g)
		}
	}
	t.Logf("%.1fs: the heir committed past the zombie on every partition: %s", time.Since(start).Seconds(), heir.mustStatus(connectorName))

	mark := zombie.LogSize()
	zombie.kill(syscall.SIGCONT)
	woke := time.Now()
	var after status
	waitFor(t, 2*time.Minute, "the woken zombie to report its batch aborted", func() bool {
		zombie.Alive()
		st, err := zombie.status(connectorName)
		after = st
		return err == nil && st.aborts() > before.aborts()
	})
	logged := zombie.logSince(mark)
	t.Logf("%.1fs: the woken zombie aborted %.1fs after SIGCONT: aborts %v -> %v (commits %d -> %d); its warnings:\n%s",
		time.Since(start).Seconds(), time.Since(woke).Seconds(), before.Aborts, after.Aborts, before.Commits, after.Commits, logged)
	// Fenced by the claim epochs, or, into PostgreSQL, ended by the server
	// first: a zombie frozen inside its batch's transaction past
	// idle_in_transaction_session_timeout (10s, shorter than the freeze)
	// has that transaction terminated, so it cannot hold its row locks
	// against the heir; it then aborts as abortable and re-claims. Either
	// way it committed nothing (verify below).
	endedByServer := strings.Contains(logged, "idle-in-transaction timeout")
	if after.Aborts["fenced"] <= before.Aborts["fenced"] && !strings.Contains(logged, "fenced") && !endedByServer {
		t.Errorf("the zombie's batch aborted but was neither fenced nor ended by the server: aborts %v -> %v", before.Aborts, after.Aborts)
	}
	checkNoCommitAfterFreeze(t, before, after, frozen, woke)
	waitFor(t, 2*time.Minute, "the zombie to rejoin the group", func() bool {
		zombie.Alive()
		heir.Alive()
		n, err := p.groupMembers()
		return err == nil && n == 2
	})

	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, zombie, heir)
	for _, inst := range []*instance{zombie, heir} {
		inst.kill(syscall.SIGTERM)
	}
	for _, inst := range []*instance{zombie, heir} {
		if code := inst.WaitExit(30 * time.Second); code != 0 {
			t.Fatalf("instance %s: exit %d after SIGTERM, want 0", inst.ID(), code)
		}
	}
	rep := verifyClean(t, cfg, connectorName, total)
	t.Logf("%.1fs: %d events, zombie frozen past the session timeout and woken: %s", time.Since(start).Seconds(), total, rep)
}

// checkNoCommitAfterFreeze fails t if a zombie frozen at frozen and woken
// at woke committed after the freeze, by its status before the SIGSTOP
// and after it aborted. The status read before the SIGSTOP can miss a
// commit that ended between that read and the signal; a commit after the
// freeze is one stamped after it. One exception: the SIGSTOP can land
// inside a commit that already passed its fence (the sink write passed
// the claim-epoch check, or the transaction committed and its answer was
// not yet read); it is stamped only once the process runs again, right
// after SIGCONT (CI run 56 saw one 0.1s after into Redis, run 59 one into
// PostgreSQL). A commit that really passed the fence after the heir took
// over would show in verify's apply counts.
func checkNoCommitAfterFreeze(t *testing.T, before, after status, frozen, woke time.Time) {
	t.Helper()
	inFlight := after.Commits == before.Commits+1 && after.LastCommit.Sub(woke) < 2*time.Second
	if after.Commits != before.Commits && after.LastCommit.After(frozen) && !inFlight {
		t.Errorf("the woken zombie committed %d batches, the last at %s, after it froze at %s",
			after.Commits-before.Commits, after.LastCommit.Format(time.RFC3339Nano), frozen.Format(time.RFC3339Nano))
	}
	if inFlight && after.LastCommit.After(frozen) {
		t.Logf("a commit in flight at the SIGSTOP completed on SIGCONT, stamped %s", after.LastCommit.Format(time.RFC3339Nano))
	}
}
