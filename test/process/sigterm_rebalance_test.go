package process_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestSIGTERMDuringRebalance: a SIGTERM that lands while the consumer
// group rebalances stops the instance well within shutdown_timeout, with
// its open batch committed or aborted but never waiting for the other
// members, and every record is exactly once in the output after the last
// member has drained the input.
//
// The rebalance is held open by design. Four instances share the group: h
// keeps its batch open for 120s (commit.interval), x for 45s, w for 2s;
// all hold a rebalance back while their batch is open
// (BlockRebalanceOnPoll), and input streams in all along. When c joins,
// the group stays in PreparingRebalance until h's batch ends or the
// group's rebalance timeout (60s) passes. Meanwhile:
//
//   - w's batch ends, it commits and joins; its next batch meets its
//     JoinGroup in flight (w logs the join, the broker shows its
//     transaction open). SIGTERM: the batch is aborted (a commit would wait
//     for the join, that is for h), and the close removes the member from
//     the group, which answers the JoinGroup (w logs both).
//   - x holds the rebalance with a batch open since before c joined (x
//     logs that the group waits for it; the broker shows the same
//     transaction open, the group still rebalancing). SIGTERM: the batch
//     commits at once, KIP-447 letting a transaction commit while the
//     group rebalances (its transaction ends CompleteCommit).
//
// Before the fix both stops waited for h: the commit let the rebalance
// through and waited in the join, up to shutdown_timeout, and then the
// client's close waited for the same join, up to the rebalance timeout.
// shutdown_timeout is 30s, below the rebalance timeout, so that this
// defect shows as a stop of at least shutdown_timeout; a correct stop takes
// well under a second, so the bound is one of correctness, not speed.
func TestSIGTERMDuringRebalance(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	const shutdownTimeout = 30 * time.Second
	base := connectorConfig{
		guarantee:          "exactly_once",
		transactionTimeout: "180s",
		sessionTimeout:     "6s",
		shutdownTimeout:    shutdownTimeout.String(),
		batchMaxRecords:    1_000_000, // batches end on time only
	}
	cfgFor := func(name, interval string) string {
		c := base
		c.commitInterval = interval
		path := p.writeConfig(c)
		dir := filepath.Join(filepath.Dir(path), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return writeFile(t, dir, "connectd.yaml", readConfig(t, path))
	}
	idH, idX, idW, idC := p.instanceID("h"), p.instanceID("x"), p.instanceID("w"), p.instanceID("c")
	h := startInstance(t, cfgFor("h", "120s"), idH)
	x := startInstance(t, cfgFor("x", "45s"), idX)
	w := startInstance(t, cfgFor("w", "2s"), idW)
	cfgC := cfgFor("c", "500ms")
	alive := func() { h.Alive(); x.Alive(); w.Alive() }
	// Every member assigned: the cooperative rebalances of the group's
	// forming are over before any batch holds one back.
	waitFor(t, time.Minute, "a stable group of h, x and w, each assigned partitions", func() bool {
		alive()
		g := p.describeGroup()
		if g.State != "Stable" || len(g.Members) != 3 {
			return false
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 {
				return false
			}
		}
		return true
	})
	const backlog = 3_000
	p.produce(0, backlog)
	feed := p.startStream(backlog, 500)
	// x's first batch may have seen the group form (a transact session
	// remembers a revoke until its next End): the scene is in its second.
	waitFor(t, 2*time.Minute, "x's first batch to end", func() bool {
		alive()
		st, err := x.status(connectorName)
		return err == nil && st.Commits+st.aborts() > 0
	})
	waitFor(t, time.Minute, "x's next transaction to be open with output in it", func() bool {
		alive()
		return p.openWithOutput(idX)
	})
	xOpen, err := p.describeTxn(idX)
	if err != nil {
		t.Fatal(err)
	}
	if !p.openWithOutput(idH) {
		t.Fatal("h's first batch is not open with output in it: no member to hold the rebalance")
	}

	markX, markW := x.LogSize(), w.LogSize()
	c := startInstance(t, cfgC, idC)
	waitFor(t, time.Minute, "c's join to start a rebalance", func() bool {
		c.Alive()
		return p.describeGroup().State == "PreparingRebalance"
	})
	waitFor(t, time.Minute, "x to hold the rebalance for its open batch", func() bool {
		alive()
		return strings.Contains(string(x.LogFrom(markX)), `msg="the consumer group waits for the open batch to end`)
	})
	waitFor(t, time.Minute, "w to commit, join, and have a batch open with its JoinGroup in flight", func() bool {
		alive()
		return strings.Contains(string(w.LogFrom(markW)), `msg="joining the consumer group`) && p.openWithOutput(idW)
	})

	stop := func(in *instance, id string) string {
		t.Helper()
		if g := p.describeGroup(); g.State != "PreparingRebalance" {
			t.Fatalf("the rebalance ended before the SIGTERM to %s (group %s): no overlap", id, g.State)
		}
		mark := in.LogSize()
		in.kill(syscall.SIGTERM)
		sent := time.Now()
		code := in.WaitExit(2*shutdownTimeout + 30*time.Second)
		took := time.Since(sent)
		t.Logf("SIGTERM to %s during a rebalance with a batch open: exit %d after %v (shutdown_timeout %v)",
			id, code, took.Round(time.Millisecond), shutdownTimeout)
		logged := string(in.LogFrom(mark))
		if code != 0 {
			t.Fatalf("%s: exit %d after SIGTERM, want 0\n%s", id, code, logged)
		}
		if took >= shutdownTimeout {
			t.Fatalf("%s: the stop took %v, at least shutdown_timeout %v: it waited for the group's rebalance\n%s", id, took, shutdownTimeout, logged)
		}
		return logged
	}

	logged := stop(w, idW)
	for _, want := range []string{`msg="stopping during a consumer-group rebalance`, `msg="left the consumer group while it was rebalancing"`} {
		if !strings.Contains(logged, want) {
			t.Fatalf("%s: the stop did not log %s: it did not meet the join as built\n%s", idW, want, logged)
		}
	}
	if d := p.waitTxnEnded(idW); d.State != "CompleteAbort" {
		t.Fatalf("%s: after the stop its transaction is %s, want CompleteAbort", idW, d.State)
	}

	if now, err := p.describeTxn(idX); err != nil || now.State != "Ongoing" || now.ProducerEpoch != xOpen.ProducerEpoch {
		t.Fatalf("x's batch ended before the SIGTERM (transaction %s, epoch %d then %d, %v): no overlap", now.State, xOpen.ProducerEpoch, now.ProducerEpoch, err)
	}
	logged = stop(x, idX)
	if strings.Contains(logged, `msg="stopping during a consumer-group rebalance`) {
		t.Fatalf("%s: the stop aborted its batch, want it committed despite the rebalance\n%s", idX, logged)
	}
	if d := p.waitTxnEnded(idX); d.State != "CompleteCommit" {
		t.Fatalf("%s: after the stop its transaction is %s, want CompleteCommit\n%s", idX, d.State, logged)
	}

	// h still holds the rebalance (its batch is open until its 120s or
	// the rebalance timeout): its stop is the same kind as x's.
	stop(h, idH)

	total := feed.stop(t)
	p.waitCommitted(total, 3*time.Minute, c)
	c.kill(syscall.SIGTERM)
	if code := c.WaitExit(shutdownTimeout + 30*time.Second); code != 0 {
		t.Fatalf("c: exit %d after SIGTERM, want 0", code)
	}
	rep := verifyClean(t, cfgC, connectorName, total)
	t.Logf("%d events after three SIGTERMs during a rebalance, drained by a fourth member: %s", total, rep)
}

// openWithOutput reports whether instance id's transaction is open on the
// broker with output records in it.
func (p *pipe) openWithOutput(id string) bool {
	d, err := p.describeTxn(id)
	return err == nil && d.State == "Ongoing" && len(d.Topics[p.out]) > 0
}

// waitTxnEnded waits out PrepareCommit and PrepareAbort (decided; the
// coordinator writes the markers after answering EndTxn) and returns
// instance id's transaction as the broker then describes it.
func (p *pipe) waitTxnEnded(id string) kadm.DescribedTransaction {
	p.t.Helper()
	d, err := p.describeTxn(id)
	for deadline := time.Now().Add(30 * time.Second); err == nil &&
		(d.State == "PrepareCommit" || d.State == "PrepareAbort") && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		d, err = p.describeTxn(id)
	}
	if err != nil {
		p.t.Fatalf("describe %s: %v", transactionalID(id), err)
	}
	return d
}

// describeGroup is the group as the broker describes it; its State is ""
// if the broker could not be asked.
func (p *pipe) describeGroup() kadm.DescribedGroup {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := p.adm.DescribeGroups(ctx, p.group)
	if err != nil {
		return kadm.DescribedGroup{}
	}
	return gs[p.group]
}

// readConfig reads a config file written by writeConfig.
func readConfig(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
