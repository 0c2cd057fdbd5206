package pg_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// terminateBites is how many batches the terminations must abort.
const terminateBites = 5

// inFlightQuery terminates the test database's client backends that are
// inside a write transaction past its first statement: a transaction id
// assigned (a row written) and either waiting for the next statement of
// the batch or running one that did not open the transaction. A batch's
// transaction (BEGIN, INSERT chunks, dead letters, the offsets
// compare-and-set, COMMIT) qualifies from its second statement on; a
// claim (one statement in its own transaction, so xact_start =
// query_start) or an idle pooled connection does not. It returns each
// terminated backend and what it was doing (a backend still exiting from
// an earlier poll is listed again).
const inFlightQuery = `
SELECT pid, state, split_part(ltrim(query), ' ', 1), pg_terminate_backend(pid)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND backend_xid IS NOT NULL
  AND (state = 'idle in transaction' OR (state = 'active' AND xact_start < query_start))`

// The sink's database connections are killed (pg_terminate_backend) while
// they are inside a batch's transaction: each batch caught is classified
// (abortable before COMMIT, unknown during it), the connector rejoins and
// re-reads the checkpoint from the table, and the result is exactly once.
//
// The fault bites by construction, not by timing: a feeder keeps the
// connector's backlog several batches long for the whole kill window, so a
// batch is always in flight, and a backend is terminated only while
// pg_stat_activity shows it inside a batch's write transaction. The loop
// ends when terminateBites batches were aborted, or fails after a generous
// deadline saying the terminations did not bite.
func TestTerminatedBackendsRecover(t *testing.T) {
	const backlog = 20000
	e := newEnv(t)
	e.produce("in", 0, backlog)
	cfg := e.copyConfig("exactly_once")
	d := e.startDaemon(cfg, "a")
	in := e.feed("in", backlog, func() int { return checkpointed(d, "copy") })

	// Before the first commit the pool may be creating the tables
	// (auto_create), which is no batch.
	waitUntil(t, 2*time.Minute, "the first commit", func() bool {
		st, _ := d.Status("copy")
		return st.Commits > 0
	})

	const within = 3 * time.Minute
	deadline := time.Now().Add(within)
	ctx, cancel := context.WithTimeout(context.Background(), within+time.Minute)
	defer cancel()
	killer, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(context.Background())

	before := aborts(d, "copy")
	caught := map[string]int{}     // "state/statement" of each terminated backend
	terminated := map[int32]bool{} // their PIDs
	polls := 0
	for aborts(d, "copy")-before < terminateBites {
		if time.Now().After(deadline) {
			t.Fatalf("after %v and %d polls of pg_stat_activity: terminated %d backends inside a batch (%s); %d batches aborted, want %d: the terminations did not bite",
				within, polls, len(terminated), summarize(caught), aborts(d, "copy")-before, terminateBites)
		}
		polls++
		rows, err := killer.Query(ctx, inFlightQuery)
		if err != nil {
			t.Fatal(err)
		}
		var pid int32
		var state, stmt string
		var ok bool
		_, err = pgx.ForEachRow(rows, []any{&pid, &state, &stmt, &ok}, func() error {
			if ok && !terminated[pid] {
				terminated[pid] = true
				caught[state+"/"+strings.ToUpper(stmt)]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	total := in.Stop(t)
	st, _ := d.Status("copy")
	t.Logf("terminated %d backends inside a batch (%s) in %d polls; %d batches aborted (%v); %d records produced",
		len(terminated), summarize(caught), polls, aborts(d, "copy")-before, st.Aborts, total)

	rep := e.waitExpected(cfg, "copy", total, 2*time.Minute)
	must(t, rep, "exactly_once after terminated backends")
	if rep.Expected != total {
		t.Fatalf("expected %d outputs, want %d", rep.Expected, total)
	}
	if v := e.query("SELECT count(*) FROM events WHERE apply_count <> 1"); v != 0 {
		t.Fatalf("%d rows applied more than once", v)
	}
}

// summarize prints counts in key order.
func summarize(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// waitUntil polls cond every 10ms until it holds, failing the test after
// within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
