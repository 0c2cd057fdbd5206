package process_test

import (
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMStaticMemberLeavesGroup: a static group member does not leave
// its group when its client closes (so a restart gets its partitions back
// without a rebalance), but a clean stop must not leave its partitions
// unowned until its session times out. Two instances share the partitions
// with a 45 s session timeout; one gets SIGTERM while records stream in;
// the other must hold and commit past every partition well before the
// session timeout could have expired the stopped member. The bound is half
// the session timeout: the observable difference between a leave and an
// expiry, not a speed target.
func TestSIGTERMStaticMemberLeavesGroup(t *testing.T) {
	t.Parallel()
	const sessionTimeout = 45 * time.Second
	p := newPipe(t)
	cfg := p.writeConfig(connectorConfig{
		guarantee:          "exactly_once",
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     sessionTimeout.String(),
		shutdownTimeout:    "10s",
	})
	const pre = 10_000
	p.produce(0, pre)
	a := startInstance(t, cfg, p.instanceID("a"))
	b := startInstance(t, cfg, p.instanceID("b"))
	in := p.startStream(pre, 1000)
	waitFor(t, time.Minute, "both instances to hold partitions and commit", func() bool {
		a.Alive()
		b.Alive()
		sa, sb := a.mustStatus(connectorName), b.mustStatus(connectorName)
		n, err := p.groupMembers()
		return err == nil && n == 2 && sa.Commits > 0 && sb.Commits > 0 && len(sa.Partitions) > 0 && len(sb.Partitions) > 0
	})
	frozenAt, err := p.committedOffsets()
	if err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	a.kill(syscall.SIGTERM)
	if code := a.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, a.LogTail(30))
	}
	exited := time.Since(stopped)
	p.waitHeirTakesOver(t, b, frozenAt)
	took := time.Since(stopped)
	t.Logf("SIGTERM: the stopped member exited after %v; the other held and committed past every partition %v after the SIGTERM (session timeout %v)",
		exited.Round(time.Millisecond), took.Round(time.Millisecond), sessionTimeout)
	if took >= sessionTimeout/2 {
		t.Errorf("the partitions of a cleanly stopped static member moved after %v: it did not leave the group", took.Round(time.Millisecond))
	}
	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, b)
	b.kill(syscall.SIGTERM)
	if code := b.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	verifyClean(t, cfg, connectorName, total)
}
