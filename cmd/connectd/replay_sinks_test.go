package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
)

// replaySinksYAML: two live windowed connectors (tumbling 1 s windows of
// count and sum per key) into PostgreSQL, whose readers query the view
// "windows", and Redis, whose readers find the key prefix in PREFIXcurrent.
const replaySinksYAML = `
instance_id: replay-sinks
admin:
	listen: ADMIN
	state_file: STATE
kafka:
	brokers: [BROKERS]
connectors:
	- name: pg
		shutdown_timeout: 5s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms: [WINDOW]
		sink: {type: postgres, dsn: "DSN", table: windows_live, view: windows, auto_create: true, test_apply_counter: true,
			columns: {wkey: "json:key", n: "json:n::bigint", total: "json:total::numeric"}}
	- name: rd
		shutdown_timeout: 5s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms: [WINDOW]
		sink: {type: redis, addr: "RADDR", key_prefix: "PREFIX", prefix_key: "PREFIXcurrent", key: "win:{event_id}", test_apply_counter: true, audit_log: true}
`

const windowOf = `{type: window, time: value.i * 10, window: {type: tumbling, size: SIZE}, watermark: {max_out_of_orderness: 5s}, late: drop, aggregate: {n: count(), total: sum(value.amount)}}`

// TestReplayPromoteWindowedSinks is the Kappa proof for the sinks that let
// promote switch readers: live windowed connectors into PostgreSQL and
// Redis, replays with 2 s windows instead of 1 s started beside them while
// input keeps coming, a SIGKILL in mid catch-up, promotes SIGKILLed after
// their decision, finished by the restart; then the view reads the
// replay's table and the prefix key names the replay's prefix, and verify
// is clean on all four outputs.
func TestReplayPromoteWindowedSinks(t *testing.T) {
	dsn := testenv.Postgres(t)
	raddr, prefix := testenv.Redis(t)
	c := newCluster(t)
	const backlog = 100_000
	e2e.Produce(t, c, "in", 0, backlog)
	dir := t.TempDir()
	cfg := strings.NewReplacer("ADMIN", freeAddr(t), "STATE", filepath.Join(dir, "state.json"),
		"BROKERS", strings.Join(c.ListenAddrs(), ","), "DSN", dsn, "RADDR", raddr, "PREFIX", prefix,
		"WINDOW", strings.Replace(windowOf, "SIZE", "1s", 1)).Replace(replaySinksYAML)
	path := writeConfig(t, dir, "replay.yaml", cfg)

	p := startRun(t, path)
	base := p.adminURL(t)
	// The live connectors have drained the backlog, so a replay starts
	// 100,000 records behind.
	waitCommitted(t, base, "pg", backlog)
	waitCommitted(t, base, "rd", backlog)
	produced := int64(backlog)
	feed := func(n int) { // more live input, in event-time order
		e2e.Produce(t, c, "in", int(produced), int(produced)+n)
		produced += int64(n)
	}

	// The new logic: 2 s windows.
	for _, name := range []string{"pg", "rd"} {
		def := filepath.Join(dir, name+"-v2.yaml")
		live := cfgConnector(t, cfg, name)
		writeConfig(t, dir, name+"-v2.yaml", strings.Replace(live, "size: 1s", "size: 2s", 1))
		info := replayCLI(t, "replay", "-c", path, "--connector", name, "--with", def)
		if info.Name != name+"-v2" {
			t.Fatalf("replay of %s started as %+v", name, info)
		}
	}
	feed(5000)
	waitRecordsIn(t, base, "pg-v2", 1)
	waitRecordsIn(t, base, "rd-v2", 1)
	for _, name := range []string{"pg-v2", "rd-v2"} {
		if st := replayCLI(t, "replay", "-c", path, "--connector", name, "--status"); st.Lag == nil || st.Lag.Total == 0 {
			t.Fatalf("%s had caught up before the kill (%+v): the kill did not land mid catch-up", name, st)
		}
	}
	p.signal(t, syscall.SIGKILL)
	<-p.done

	p = startRun(t, path)
	p.adminURL(t)
	feed(5000)
	for _, name := range []string{"pg-v2", "rd-v2"} {
		waitReplayState(t, path, name, "CAUGHT_UP")
	}
	p.stopClean(t)

	// Both promotes decided, the first one killed before any reader
	// moved: the restart finishes both.
	p, base, names := promoteKilled(t, path, "promote-after-intent:2", []string{"pg-v2"}, "rd-v2")
	if strings.Join(names, ",") != "pg-v2,rd-v2" {
		t.Fatalf("after the promotes the daemon runs %v, want [pg-v2 rd-v2]", names)
	}
	feed(2000)
	waitCommitted(t, base, "pg-v2", produced)
	waitCommitted(t, base, "rd-v2", produced)
	p.stopClean(t)

	// Readers moved: the view reads the replay's table, the prefix key
	// names the replay's prefix.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var viewRows, tableRows, liveRows int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM windows), (SELECT count(*) FROM windows_live_v2), (SELECT count(*) FROM windows_live)`).
		Scan(&viewRows, &tableRows, &liveRows); err != nil {
		t.Fatal(err)
	}
	if viewRows != tableRows || viewRows == liveRows {
		t.Fatalf("view windows has %d rows, windows_live_v2 %d, windows_live %d: the view does not read the replay's table", viewRows, tableRows, liveRows)
	}
	rdb := redis.NewClient(&redis.Options{Addr: raddr})
	defer rdb.Close()
	if got, err := rdb.Get(ctx, prefix+"current").Result(); err != nil || got != prefix+"v2:" {
		t.Fatalf("prefix key %scurrent = %q (%v), want %q", prefix, got, err, prefix+"v2:")
	}
	for _, name := range []string{"pg", "rd", "pg-v2", "rd-v2"} {
		rep := verifyClean(t, path, name, "--stopped")
		if rep.Windows == 0 {
			t.Fatalf("verify %s: no windows checked: %s", name, rep)
		}
		t.Logf("verify %s: %s", name, rep)
	}
	t.Logf("view windows: %d rows (2 s windows) over windows_live_v2; windows_live kept with %d rows (1 s windows)", viewRows, liveRows)
}

// cfgConnector is the YAML of connector name in cfg (the list entry, as a
// document of its own).
func cfgConnector(t *testing.T, cfg, name string) string {
	t.Helper()
	start := strings.Index(cfg, "\t- name: "+name+"\n")
	if start < 0 {
		t.Fatalf("no connector %s in the config", name)
	}
	rest := cfg[start+len("\t- "):]
	if end := strings.Index(rest, "\n\t- "); end >= 0 {
		rest = rest[:end+1]
	}
	var b strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		fmt.Fprintln(&b, strings.TrimPrefix(line, "\t\t"))
	}
	return b.String()
}
