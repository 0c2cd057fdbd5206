package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

// duckdbVersion is the duckdb Python package the witness is run with
// (test/services.mk installs it for `make test`).
const duckdbVersion = "2.0.1"

// python3 returns the interpreter if it can import duckdb. Without it the
// test fails, saying how to install it; only -short skips.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		var out []byte
		out, err = exec.Command(py, "-c", "import duckdb; print(duckdb.__version__)").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		msg := fmt.Sprintf("the outside witness needs python3 with the duckdb package (%v); install it with `python3 -m pip install duckdb==%s` (make test does)", err, duckdbVersion)
		if testing.Short() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return py
}

// witnessScript reads the directory the way a user's query would, with
// DuckDB: every data file through a hive-partitioned glob (which never
// reaches _connectd or _dead_letters), and the dead letters. It prints
// the schema DuckDB sees (DESCRIBE) and every row's identity, partition
// directories and event time, as JSON.
const witnessScript = `
import duckdb, json, sys
root, fmt = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
glob = root + "/dt=*/**/*." + fmt
src = ("read_parquet('%s', hive_partitioning = true)" if fmt == "parquet" else "read_json_auto('%s', hive_partitioning = true)") % glob.replace("'", "''")
out = {
  "describe": [[r[0], r[1]] for r in con.sql("DESCRIBE SELECT * FROM " + src).fetchall()],
  "rows": con.sql('SELECT "event_id", "topic", "partition", "offset", epoch_us("timestamp"), "dt"::VARCHAR, "hour", "country", "n", "amount", "ok", "name", epoch_us("at"), "key" FROM ' + src).fetchall(),
  "dead_letters": [r[0] for r in con.sql("SELECT event_id FROM read_json_auto('%s')" % (root + "/_dead_letters/*.jsonl").replace("'", "''")).fetchall()],
}
json.dump(out, sys.stdout)
`

// TestOutsideWitness writes input through the store as a connector would,
// with a crash after a commit point and a takeover in the middle, then
// has DuckDB read the directory: every event exactly once, in the
// directory of its event hour and country, with the expected columns,
// types and values, and the dead letter in _dead_letters only.
func TestOutsideWitness(t *testing.T) {
	py := python3(t)
	for _, format := range []string{FormatParquet, FormatJSONL} {
		t.Run(format, func(t *testing.T) {
			cfg := testConfig(t, format)
			cfg.PartitionBy.Field = "json:country"
			// 20 rows per partition land in each hour and country: about
			// 4.5 KiB, so each directory gets files by size and at close.
			cfg.Roll.MaxBytes = 1500
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			const perPartition = 300 // five event hours
			dead := rec(tp1, 123)
			dead.Topic = "dlq"
			input := func(tp connector.TopicPartition, from, to int64) []*connector.Record {
				rs := recs(tp, from, min(to, perPartition))
				for i, r := range rs {
					if r.EventID == dead.EventID {
						rs[i] = dead
					}
				}
				return rs
			}
			s := openStore(cfg, "dlq")
			c := claim(t, s, tp0, tp1)
			cp := connector.Checkpoint{}
			crashed := false
			for cp[tp0] < perPartition {
				next := connector.Checkpoint{tp0: min(cp[tp0]+37, perPartition), tp1: min(cp[tp1]+41, perPartition)}
				batch := append(input(tp0, cp[tp0], next[tp0]), input(tp1, cp[tp1], next[tp1])...)
				from := cp.Clone()
				if len(from) > 0 && from[tp0] == 0 {
					from = connector.Checkpoint{}
				}
				if !crashed && cp[tp0] > 100 {
					// The process dies right after a commit point; the heir
					// recovers and resumes at the checkpoint it claims.
					crashed = true
					crashAt(s, "committed")
					if err := s.Commit(tctx(t), testGroup, epochsOf(c), batch, from, next); !errors.Is(err, errCrash) {
						t.Fatalf("crash: %v", err)
					}
					s = openStore(cfg, "dlq")
					c = claim(t, s, tp0, tp1)
					cp = c.Checkpoint()
					continue
				}
				mustCommit(t, s, c, batch, from, next)
				cp = next
			}
			s.Close()

			cmd := exec.Command(py, "-c", witnessScript, cfg.Path, format)
			raw, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("duckdb: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var got struct {
				Describe    [][2]string `json:"describe"`
				Rows        [][]any     `json:"rows"`
				DeadLetters []string    `json:"dead_letters"`
			}
			d := json.NewDecoder(strings.NewReader(string(raw)))
			d.UseNumber()
			if err := d.Decode(&got); err != nil {
				t.Fatalf("duckdb's output: %v\n%.500s", err, raw)
			}
			checkSchema(t, format, got.Describe)
			checkRows(t, got.Rows, dead.EventID, perPartition)
			if !slices.Equal(got.DeadLetters, []string{dead.EventID}) {
				t.Errorf("dead letters DuckDB reads: %v, want [%s]", got.DeadLetters, dead.EventID)
			}
			t.Logf("DuckDB %s found %d rows in %d files, each event once; %d dead letter", duckdbVersion, len(got.Rows), len(visible(t, cfg.Path)), len(got.DeadLetters))
		})
	}
}

// checkSchema compares DuckDB's DESCRIBE with the columns the sink writes
// and the hive directories (dt, hour, country). JSON Lines has no int32:
// DuckDB infers partition as BIGINT there.
func checkSchema(t *testing.T, format string, describe [][2]string) {
	t.Helper()
	partition := "INTEGER"
	if format == FormatJSONL {
		partition = "BIGINT"
	}
	want := map[string]string{
		"event_id": "VARCHAR", "topic": "VARCHAR", "partition": partition, "offset": "BIGINT",
		"timestamp": "TIMESTAMP WITH TIME ZONE", "n": "BIGINT", "amount": "DOUBLE", "ok": "BOOLEAN",
		"name": "VARCHAR", "at": "TIMESTAMP WITH TIME ZONE", "key": "VARCHAR",
		"dt": "DATE", "hour": "BIGINT", "country": "VARCHAR",
	}
	got := map[string]string{}
	for _, c := range describe {
		got[c[0]] = c[1]
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("column %s: DuckDB sees %q, want %s", name, got[name], typ)
		}
	}
	if len(got) != len(want) {
		t.Errorf("DuckDB sees columns %v, want %d", describe, len(want))
	}
}

// checkRows checks that every event but the dead letter is there once,
// in the directory of its event hour and country, with its values.
func checkRows(t *testing.T, rows [][]any, dead string, perPartition int64) {
	t.Helper()
	seen := map[string]int{}
	bad := 0
	for _, r := range rows {
		id := fmt.Sprint(r[0])
		seen[id]++
		p, _ := strconv.Atoi(fmt.Sprint(r[2]))
		n, _ := strconv.ParseInt(fmt.Sprint(r[3]), 10, 64)
		want := rec(connector.TopicPartition{Topic: "in", Partition: int32(p)}, n)
		ts := want.Timestamp
		got := []string{id, fmt.Sprint(r[1]), fmt.Sprint(r[4]), fmt.Sprint(r[5]), fmt.Sprint(r[6]), fmt.Sprint(r[7]),
			fmt.Sprint(r[8]), fmt.Sprint(r[9]), fmt.Sprint(r[10]), fmt.Sprint(r[11]), fmt.Sprint(r[12]), fmt.Sprint(r[13])}
		exp := []string{want.EventID, "in", fmt.Sprint(ts.UnixMicro()), ts.Format("2006-01-02"), fmt.Sprint(ts.Hour()),
			fmt.Sprintf("c%d", n%3), fmt.Sprint(n), fmt.Sprintf("%d.25", n), fmt.Sprint(n%2 == 0), fmt.Sprintf("e%d", n),
			fmt.Sprint(ts.UnixMicro()), fmt.Sprintf("k%d", n)}
		if !slices.Equal(got, exp) {
			if bad++; bad <= 3 {
				t.Errorf("row %v\nwant %v", got, exp)
			}
		}
	}
	missing, twice := 0, 0
	for _, tp := range []connector.TopicPartition{tp0, tp1} {
		for n := range perPartition {
			id := rec(tp, n).EventID
			switch c := seen[id]; {
			case id == dead && c != 0:
				t.Errorf("the dead letter %s is in the data %d times", id, c)
			case id == dead:
			case c == 0:
				missing++
			case c > 1:
				twice++
			}
			delete(seen, id)
		}
	}
	if missing > 0 || twice > 0 || len(seen) > 0 || bad > 0 {
		t.Errorf("DuckDB: %d rows; %d events missing, %d more than once, %d unexpected, %d with wrong values", len(rows), missing, twice, len(seen), bad)
	}
}
