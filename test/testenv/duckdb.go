package testenv

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// DuckDBVersion is the duckdb Python package the outside witness of the
// files sink runs with; test/services.mk installs it for `make test`.
const DuckDBVersion = "2.0.1"

// duckdbCountScript counts the rows and distinct event IDs of the
// Parquet files under a directory, read as a user would: a
// hive-partitioned glob over the partition directories, which never
// reaches the sink's own _connectd and _dead_letters.
const duckdbCountScript = `
import duckdb, json, sys
src = "read_parquet('%s', hive_partitioning = true)" % (sys.argv[1] + "/*=*/**/*.parquet").replace("'", "''")
rows, ids = duckdb.sql("SELECT count(*), count(DISTINCT event_id) FROM " + src).fetchall()[0]
json.dump({"rows": rows, "ids": ids}, sys.stdout)
`

// DuckDBCount has DuckDB (the duckdb Python package, an outside witness
// written by others) read the Parquet files a files sink wrote under dir,
// partitioned by at least one name=value directory, and returns how many
// rows and distinct event IDs it finds. Without python3 and the package
// the test fails saying how to install it; only -short skips.
func DuckDBCount(t testing.TB, dir string) (rows, ids int) {
	t.Helper()
	py, err := exec.LookPath("python3")
	var raw []byte
	if err == nil {
		raw, err = exec.Command(py, "-c", duckdbCountScript, dir).Output()
	}
	if err != nil {
		msg := "DuckDB could not read " + dir + " (the witness needs python3 with the duckdb package: `python3 -m pip install duckdb==" + DuckDBVersion + "`, which make test installs): " + err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg += ": " + strings.TrimSpace(string(ee.Stderr))
		}
		if testing.Short() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	var got struct{ Rows, IDs int }
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("DuckDB's answer %q: %v", raw, err)
	}
	return got.Rows, got.IDs
}
