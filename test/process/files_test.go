package process_test

import (
	"testing"

	"github.com/connectd/connectd/test/testenv"
)

// filesSink is a files sink section writing Parquet under dir, rolling
// files every second or 1 MiB of staged rows, so that kills land between
// rolls, inside them and inside the renames that publish them.
func filesSink(dir string) func(*pipe) string {
	return func(*pipe) string {
		return sinkSection(
			"type: files",
			"path: "+dir,
			"format: parquet",
			"roll: {max_bytes: 1MiB, max_interval: 1s}",
		)
	}
}

// TestSIGKILLExactlyOnceKafkaToFiles: SIGKILLs at random points of an
// exactly_once Kafka → files connector, every third kill the process's own
// at one of the sink's commit steps (CONNECTD_KILL_AT, its 1st to 5th time
// there): after the rows are staged, after rolled files are written to
// their temporary names, before the manifest's rename (the commit point:
// the batch is lost whole and read again; the temporaries are orphans
// that recovery deletes), right after it (the batch is committed, its
// files not yet renamed: the restart's claim finishes the renames), and
// after the first of several renames (the claim finishes the others). verify then finds every event once through
// the sink's probe, and DuckDB, reading the directory as a user would,
// finds as many rows as events, each event ID once (the last SIGTERM
// rolls what was staged into files).
func TestSIGKILLExactlyOnceKafkaToFiles(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"files-staged", "files-rolled", "files-before-manifest-rename", "files-committed", "files-published-one"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := runSIGKILLScheduleAt(t, "exactly_once", filesSink(dir), point)
			if r.selfKills == 0 {
				t.Fatalf("no kill at %s: the schedule proves nothing about that step", point)
			}
			checkExactlyOnce(t, "files", r)
			rows, ids := testenv.DuckDBCount(t, dir)
			t.Logf("DuckDB: %d rows, %d distinct event IDs, %d events", rows, ids, r.input)
			if rows != r.input || ids != r.input {
				t.Fatalf("DuckDB read %d rows with %d distinct event IDs; want %d of each", rows, ids, r.input)
			}
		})
	}
}
