package pg_test

import (
	"testing"
	"time"
)

// The sink's database connections are killed (pg_terminate_backend) again
// and again while the connector runs: each batch caught by it is classified
// (abortable before COMMIT, unknown during it), the connector rejoins and
// re-reads the checkpoint from the table, and the result is exactly once.
func TestTerminatedBackendsRecover(t *testing.T) {
	const n = 20000
	e := newEnv(t)
	e.produce("in", 0, n)
	cfg := e.copyConfig("exactly_once")
	d := e.startDaemon(cfg, "a", fastClient)
	e.waitExpected(cfg, "copy", 1, time.Minute)
	killed := int64(0)
	for i := 0; i < 40 && aborts(d, "copy") < 3; i++ {
		killed += e.query("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity" +
			" WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend') k")
		time.Sleep(time.Duration(20+i*5) * time.Millisecond)
	}
	t.Logf("terminated %d backends; %d batches aborted", killed, aborts(d, "copy"))
	if aborts(d, "copy") == 0 {
		t.Fatal("no batch was aborted: the terminations did not bite")
	}
	rep := e.waitExpected(cfg, "copy", n, 2*time.Minute)
	must(t, rep, "exactly_once after terminated backends")
	if v := e.query("SELECT count(*) FROM events WHERE apply_count <> 1"); v != 0 {
		t.Fatalf("%d rows applied more than once", v)
	}
}
