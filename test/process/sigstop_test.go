package process_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestSIGSTOPZombieIsFenced: two instances (different instance_ids, so
// different transactional IDs) share the partitions of one exactly_once
// connector. One is frozen with SIGSTOP while its transaction is open on the
// broker (records of its batch already produced), then woken with SIGCONT.
// Whatever happened while it slept, the records of that transaction must
// never become visible: the woken zombie reports the batch aborted and
// `connectd verify` is clean after the input drains.
//
//   - session timeout: frozen past the group session timeout (6s), the zombie
//     is expelled and the other instance takes its partitions and commits
//     past where the zombie had read; on waking, the zombie's offset commit
//     carries a stale generation (KIP-447) and its batch aborts.
//   - transaction timeout: frozen past transaction.timeout (7s) but inside a
//     long session timeout, so it keeps its partitions; the broker aborts
//     the open transaction itself and bumps the epoch, and the woken zombie
//     finds itself fenced.
func TestSIGSTOPZombieIsFenced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  connectorConfig
		// expelled: the frozen instance must lose its group membership
		// (else it must lose its transaction to the broker's timeout).
		expelled bool
	}{
		{"session timeout", connectorConfig{
			guarantee:          "exactly_once",
			commitInterval:     "1s", // long batches: a transaction is open most of the time
			transactionTimeout: "15s",
			sessionTimeout:     "6s",
			shutdownTimeout:    "10s",
		}, true},
		{"transaction timeout", connectorConfig{
			guarantee:          "exactly_once",
			commitInterval:     "1s",
			transactionTimeout: "7s", // > commit.interval + 5s, the least connectd accepts
			sessionTimeout:     "45s",
			shutdownTimeout:    "10s",
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runZombie(t, tc.cfg, tc.expelled)
		})
	}
}

func runZombie(t *testing.T, c connectorConfig, expelled bool) {
	p := newPipe(t)
	cfg := p.writeConfig(c)
	rng := rand.New(rand.NewPCG(seed(t), 1))
	start := time.Now()

	p.produce(0, minInput)
	zid, hid := p.instanceID("zombie"), p.instanceID("heir")
	zombie := startInstance(t, cfg, zid)
	heir := startInstance(t, cfg, hid)
	in := p.startStream(minInput, 1000)
	// Both members own partitions and have committed.
	waitFor(t, time.Minute, "both instances commit", func() bool {
		zombie.Alive()
		heir.Alive()
		n, err := p.groupMembers()
		return err == nil && n == 2 &&
			zombie.mustStatus(connectorName).Commits > 0 && heir.mustStatus(connectorName).Commits > 0
	})
	p.waitCommitted(minInput, 2*time.Minute, zombie, heir)
	before := zombie.mustStatus(connectorName)
	t.Logf("%.1fs: zombie before the freeze: %s", time.Since(start).Seconds(), before)

	// Freeze the zombie while its transaction is open on the broker with
	// output partitions in it; if a SIGSTOP lands between transactions,
	// wake it and try again a little later.
	var frozenAt map[int32]int64
	for attempt := 1; ; attempt++ {
		zombie.kill(syscall.SIGSTOP)
		d, err := p.describeTxn(zid)
		if err == nil && d.State == "Ongoing" && len(d.Topics[p.out]) > 0 {
			offs, err := p.committedOffsets()
			if err != nil {
				t.Fatal(err)
			}
			frozenAt = offs
			t.Logf("%.1fs: SIGSTOP (attempt %d): zombie frozen with its transaction %s open (producer %d epoch %d, output partitions %v, started %dms ago); committed offsets %v",
				time.Since(start).Seconds(), attempt, d.TxnID, d.ProducerID, d.ProducerEpoch,
				slices.Sorted(maps.Keys(d.Topics[p.out])), time.Now().UnixMilli()-d.StartTimestamp, offs)
			break
		}
		zombie.kill(syscall.SIGCONT)
		if attempt == 50 {
			t.Fatalf("could not freeze the zombie mid-transaction in %d attempts (last: %+v, %v)", attempt, d, err)
		}
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
	}
	frozen := time.Now()

	if expelled {
		// The heir takes every partition and commits past the zombie's
		// position on each (the input keeps flowing to all six).
		p.waitHeirTakesOver(t, heir, frozenAt)
		t.Logf("%.1fs: the zombie was expelled at most %.1fs after it froze", time.Since(start).Seconds(), time.Since(frozen).Seconds())
		t.Logf("%.1fs: the heir committed past the zombie's position on every partition: %s", time.Since(start).Seconds(), heir.mustStatus(connectorName))
	} else {
		// The broker aborts the transaction at transaction.timeout (its
		// check runs every 10s by default) and bumps the epoch.
		var d any
		waitFor(t, 40*time.Second, "the broker to abort the frozen transaction", func() bool {
			heir.Alive()
			desc, err := p.describeTxn(zid)
			d = desc
			return err == nil && desc.State != "Ongoing"
		})
		t.Logf("%.1fs: after %.1fs frozen the broker ended the zombie's transaction: %+v", time.Since(start).Seconds(), time.Since(frozen).Seconds(), d)
		if n, err := p.groupMembers(); err != nil || n != 2 {
			t.Logf("group members while frozen: %d (%v); the session timeout is 45s", n, err)
		}
	}
	if d, err := p.describeTxn(zid); err == nil {
		t.Logf("zombie's transaction just before SIGCONT: state %s, producer %d epoch %d", d.State, d.ProducerID, d.ProducerEpoch)
	}

	mark := zombie.LogSize()
	zombie.kill(syscall.SIGCONT)
	woke := time.Now()
	t.Logf("%.1fs: SIGCONT after %.1fs frozen", time.Since(start).Seconds(), time.Since(frozen).Seconds())
	// Bounded by the commit timeout (transaction.timeout) at worst: see
	// README.md on an expelled zombie waiting for it.
	var after status
	waitFor(t, 2*time.Minute, "the woken zombie to report its batch aborted", func() bool {
		zombie.Alive()
		st, err := zombie.status(connectorName)
		after = st
		return err == nil && st.aborts() > before.aborts()
	})
	t.Logf("%.1fs: the woken zombie reported its batch aborted %.1fs after SIGCONT: aborts %v -> %v (commits %d -> %d)",
		time.Since(start).Seconds(), time.Since(woke).Seconds(), before.Aborts, after.Aborts, before.Commits, after.Commits)
	waitFor(t, 2*time.Minute, "the zombie to rejoin the group", func() bool {
		zombie.Alive()
		heir.Alive()
		n, err := p.groupMembers()
		return err == nil && n == 2
	})
	t.Logf("%.1fs: the zombie rejoined; its status: %s", time.Since(start).Seconds(), zombie.mustStatus(connectorName))

	total := in.stop(t)
	p.waitCommitted(total, 3*time.Minute, zombie, heir)
	for _, inst := range []*instance{zombie, heir} {
		inst.kill(syscall.SIGTERM)
	}
	for _, inst := range []*instance{zombie, heir} {
		if code := inst.WaitExit(30 * time.Second); code != 0 {
			t.Fatalf("instance %s: exit %d after SIGTERM, want 0", inst.ID(), code)
		}
	}
	t.Logf("the zombie's warnings after SIGCONT:\n%s", zombie.logSince(mark))
	rep := verifyClean(t, cfg, connectorName, total)
	t.Logf("%.1fs: %d events, zombie frozen mid-transaction and woken: %s", time.Since(start).Seconds(), total, rep)
}
