package kfake_test

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/sink/files"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

// runFilesUnderFaults runs the files connector (guarantee) over n events
// while the broker fails fetches, the group's offset commits (some after
// applying them, as a lost reply) and heartbeats (forcing rebalances), with
// a restart and a second instance joining and leaving on top. It returns
// verify's report once every event is expected, and the output directory.
func runFilesUnderFaults(t *testing.T, guarantee string, n int) (verify.Report, string) {
	dir := t.TempDir()
	c := newCluster(t)
	produceInput(t, c, "in", n)
	yaml := strings.ReplaceAll(filesYAML, "DIR", dir)
	yaml = strings.Replace(yaml, "\t\tcommit.interval:", "\t\tguarantee: "+guarantee+"\n\t\tcommit.interval:", 1)
	cfg := parse(t, c, yaml)
	run := e2e.RunSchedule(t, c, cfg, "tofiles", n, e2e.SinkSchedule(7, 0.05))
	run.Running.Stop() // the last stop rolls what is staged
	// Every fault must have fired in the exactly_once run, which takes a
	// minute (a commit fsyncs). The at_least_once run can drain in
	// seconds, before any member's first heartbeat: its bite is its
	// duplicates, and the sure rejection of a written batch's offset
	// commit.
	if guarantee == "exactly_once" {
		for i, f := range e2e.ConsumerFaults {
			if !run.Faults.Fired(i) {
				t.Errorf("fault %s %s never fired", f.Keys[0].Name(), f.Err.Message)
			}
		}
	}
	if run.Faults.SureHits(e2e.LostCommit) != 1 {
		t.Fatal("no offset commit of a written batch was rejected: the lost commit did not bite")
	}
	return run.Report, dir
}

// TestFilesSinkUnderFaults: exactly once into files while the consumer
// group's requests fail and rebalance (the claim runs again on every
// assignment, the manifest fences the previous owner): verify finds every
// event once through the sink's probe, and DuckDB, reading the directory
// as a user would, finds each event ID once.
func TestFilesSinkUnderFaults(t *testing.T) {
	const n = 8000
	rep, dir := runFilesUnderFaults(t, "exactly_once", n)
	must(t, rep, "the files sink under consumer faults, exactly_once")
	rows, ids := testenv.DuckDBCount(t, dir)
	t.Logf("DuckDB: %d rows, %d distinct event IDs", rows, ids)
	if rows != n || ids != n {
		t.Fatalf("DuckDB read %d rows with %d distinct event IDs; want %d of each", rows, ids, n)
	}
}

// TestFilesSinkAtLeastOnceUnderFaults: the same schedule at_least_once
// loses nothing, and DuckDB sees more rows than events when the faults
// made it write a batch twice (the files are written before the group's
// offsets commit).
func TestFilesSinkAtLeastOnceUnderFaults(t *testing.T) {
	const n = 8000
	rep, dir := runFilesUnderFaults(t, "at_least_once", n)
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("at_least_once lost or invented records: %s", rep)
	}
	// The last stop rolled everything into files DuckDB can see.
	out, err := files.ReadAtLeastOnceOutput(t.Context(), files.Config{Path: dir}, "tofiles")
	if err != nil {
		t.Fatal(err)
	}
	inFiles := 0
	for _, f := range out.Files {
		inFiles += len(f.Rows)
	}
	t.Logf("after the last stop: %d rows in %d files, %d staged segments, %d unlisted files", inFiles, len(out.Files), len(out.Staged), len(out.Unlisted))
	if len(out.Staged) != 0 || len(out.Unlisted) != 0 {
		t.Fatalf("after the last stop: %d staged segments, %d unlisted files; want every row in a listed file", len(out.Staged), len(out.Unlisted))
	}
	rows, ids := testenv.DuckDBCount(t, dir)
	t.Logf("DuckDB: %d rows, %d distinct event IDs; verify: %s", rows, ids, rep)
	if ids != n || rows < n {
		t.Fatalf("DuckDB read %d rows with %d distinct event IDs; want every one of %d at least once", rows, ids, n)
	}
	if rep.Duplicates == 0 {
		t.Fatalf("at_least_once under faults wrote no duplicate: the faults did not bite: %s", rep)
	}
}
