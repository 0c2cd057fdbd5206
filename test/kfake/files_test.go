package kfake_test

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/sink/files"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
)

const filesYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: tofiles
		commit.interval: 50ms
		batch.max.records: 400
		source: {type: kafka, topics: [in], session_timeout: 6s}
		sink:
			type: files
			path: DIR
			format: parquet
			roll: {max_bytes: 64KiB, max_interval: 300ms}
`

// TestFilesSinkExactlyOnce runs a connector into the files sink, linked
// only through component/all, through a restart (which claims the
// partitions again in the manifest and recovers the directory) and a
// second instance joining and leaving while the input drains: verify
// finds every event once through the sink's probe, the last stop rolls
// what is staged, and DuckDB, reading the directory as a user would (a
// hive-partitioned glob), finds every event ID exactly once.
func TestFilesSinkExactlyOnce(t *testing.T) {
	const n = 8000
	dir := t.TempDir()
	c := newCluster(t)
	produceInput(t, c, "in", n)
	cfg := parse(t, c, strings.ReplaceAll(filesYAML, "DIR", dir))
	run := e2e.RunSchedule(t, c, cfg, "tofiles", n, e2e.Schedule{})
	rep := run.Report
	must(t, rep, "the files sink, exactly_once")
	run.Running.Stop() // the last stop rolls what is staged

	out, err := files.ReadOutput(t.Context(), files.Config{Path: dir}, "tofiles", "connectd-tofiles")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, f := range out.Files {
		rows += len(f.Rows)
	}
	t.Logf("%s; %d files, %d rows in files, %d staged segments, %d unlisted", rep, len(out.Files), rows, len(out.Staged), len(out.Unlisted))
	// Every stop rolled what it staged, so the files hold everything;
	// several files mean the rolls by time and size bit during the run.
	if rows != n || len(out.Staged) != 0 || len(out.Unlisted) != 0 || len(out.Files) < 4 {
		t.Fatalf("after the last stop: %d rows in %d files, %d staged segments, %d unlisted files; want %d rows, all in files (several)", rows, len(out.Files), len(out.Staged), len(out.Unlisted), n)
	}
	// DuckDB reads the directory as a user would (a hive-partitioned
	// glob); the kfake tests skip it under -short only if it is missing.
	rows, ids := testenv.DuckDBCount(t, dir)
	t.Logf("DuckDB: %d rows, %d distinct event IDs", rows, ids)
	if rows != n || ids != n {
		t.Fatalf("DuckDB read %d rows with %d distinct event IDs; want %d of each", rows, ids, n)
	}
}
