package process_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/test/testenv"
)

// The PostgreSQL and Redis sinks keep the checkpoint in the sink, next to
// the data: on assignment a member claims its partitions there (the sink
// raises each one's claim epoch), and every commit is a compare-and-set on
// (claim epoch, expected offset). The group's committed offsets follow each sink commit
// for lag display only, so the tests pace themselves on them but judge the
// result with `connectd verify`, which reads the sink's own checkpoint.

// pgTable is the target table of the PostgreSQL sink configs.
const pgTable = "public.events"

// postgresSink is a sink section writing to dsn: auto_create, the
// test-mode apply counter, and columns mapped from the JSON value and the
// record's origin (which lets verify bound at_least_once rows by offset).
func postgresSink(dsn string) string {
	return sinkSection(
		"type: postgres",
		fmt.Sprintf("dsn: %q", dsn),
		"table: "+pgTable,
		"auto_create: true",
		"test_apply_counter: true",
		"columns:",
		"\tamount: json:amount::numeric",
		"\ti: json:i::bigint",
		"\tcopied: json:copied::boolean",
		"\tsrc_topic: topic",
		"\tsrc_partition: partition",
		"\tsrc_offset: offset",
	)
}

// redisSink is a sink section writing to the Redis at addr under prefix,
// with the audit log (what verify reads) and the test-mode apply counter.
func redisSink(addr, prefix string) string {
	return sinkSection(
		"type: redis",
		fmt.Sprintf("addr: %q", addr),
		fmt.Sprintf("key_prefix: %q", prefix),
		`key: "ev:{event_id}"`,
		"audit_log: true",
		"test_apply_counter: true",
	)
}

// sinkSection indents lines under a connector's "sink:" key.
func sinkSection(lines ...string) string {
	return "\t\t\t" + strings.Join(lines, "\n\t\t\t")
}

// sharedPostgresSink: a fresh database on the PostgreSQL of `make services`.
func sharedPostgresSink(t *testing.T) func(*pipe) string {
	return func(*pipe) string { return postgresSink(testenv.Postgres(t)) }
}

// sharedRedisSink: a fresh key prefix on the Redis of `make services`.
func sharedRedisSink(t *testing.T) func(*pipe) string {
	return func(*pipe) string { return redisSink(testenv.Redis(t)) }
}

// sinkCase is one of the sinks a test runs against: section writes its
// "sink:" lines for a pipe (nil: the pipe's Kafka output topic).
type sinkCase struct {
	name    string
	section func(*pipe) string
}

// everySink is Kafka, PostgreSQL and Redis, the sinks with their own
// fencing (producer epoch; claim epochs in the sink).
func everySink(t *testing.T) []sinkCase {
	return []sinkCase{
		{"kafka", nil},
		{"postgres", sharedPostgresSink(t)},
		{"redis", sharedRedisSink(t)},
	}
}

// waitDrained waits until all n input records are committed: the group's
// offsets reach n, or (where they lag the sink's checkpoint, which is the
// real one) the checkpoints the running instances report do, each
// partition counted once.
func (p *pipe) waitDrained(n int, within time.Duration, alive ...*instance) {
	p.t.Helper()
	waitFor(p.t, within, fmt.Sprintf("all %d input records committed", n), func() bool {
		for _, in := range alive {
			in.Alive()
		}
		if p.committed() >= n {
			return true
		}
		// A partition moving between instances may be listed by both
		// for a moment (each status lists what its member holds by the
		// coordinator's last answer): count each partition once, at the
		// furthest checkpoint any instance reports.
		furthest := map[int32]int64{}
		for _, in := range alive {
			st, err := in.status(connectorName)
			if err != nil {
				continue
			}
			for _, ps := range st.Partitions {
				furthest[ps.Partition] = max(furthest[ps.Partition], ps.Checkpoint)
			}
		}
		var sum int64
		for _, c := range furthest {
			sum += c
		}
		return sum >= int64(n)
	})
}

// checkExactlyOnce runs verify on a SIGKILL run and requires it clean.
func checkExactlyOnce(t *testing.T, sink string, r killResult) {
	t.Helper()
	rep := verifyClean(t, r.cfgPath, connectorName, r.input)
	t.Logf("%s exactly_once: %d SIGKILLs over %d events: %s", sink, r.kills, r.input, rep)
}

// afterSinkWrite is the fail point between an at_least_once sink's write
// of a batch and the commit of its group offsets: a kill there leaves the
// batch written and its checkpoint not, so the restart writes it again.
// Outside kills rarely hit that window (the offset commit follows the
// write within milliseconds), so the at_least_once sink runs add kills at it.
const afterSinkWrite = "after-sink-write"

// checkAtLeastOnce runs verify on an at_least_once SIGKILL run with kills
// at afterSinkWrite: nothing lost or invented, and the batches those kills
// caught were written twice (duplicates).
func checkAtLeastOnce(t *testing.T, sink string, r killResult) {
	t.Helper()
	v := runVerify(t, r.cfgPath, connectorName)
	rep := v.report
	t.Logf("%s at_least_once: %d SIGKILLs (%d at %s) over %d events: %s (re-applied: %d duplicates, %d apply_count violations)",
		sink, r.kills, r.selfKills, afterSinkWrite, r.input, rep, rep.Duplicates, rep.ApplyCountViolations)
	if rep.Expected != r.input {
		t.Errorf("verify expected %d outputs, want %d (all input drained)", rep.Expected, r.input)
	}
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Errorf("at_least_once lost or invented records: %s", rep)
	}
	if r.selfKills == 0 {
		t.Errorf("no kill at %s: the schedule proves nothing about duplicates", afterSinkWrite)
	}
	if rep.Duplicates == 0 {
		t.Errorf("no duplicates after %d kills between a batch's write and its offset commit: the kills did not bite", r.selfKills)
	}
	if v.code != 1 {
		t.Errorf("verify exit %d with duplicates, want 1", v.code)
	}
}

// TestSIGKILLExactlyOnceKafkaToPostgres: SIGKILLs at random points of an
// exactly_once Kafka → PostgreSQL connector (rows and offsets in one
// database transaction; a kill before COMMIT rolls both back) leave every
// event in the table once, each applied once (apply_count = 1).
func TestSIGKILLExactlyOnceKafkaToPostgres(t *testing.T) {
	t.Parallel()
	checkExactlyOnce(t, "postgres", runSIGKILLScheduleTo(t, "exactly_once", sharedPostgresSink(t)))
}

// TestSIGKILLAtLeastOnceKafkaToPostgres: the same at_least_once (plain
// INSERT, then the group offsets), every third kill at afterSinkWrite,
// loses nothing and duplicates the batches those kills caught.
func TestSIGKILLAtLeastOnceKafkaToPostgres(t *testing.T) {
	t.Parallel()
	checkAtLeastOnce(t, "postgres", runSIGKILLScheduleAt(t, "at_least_once", sharedPostgresSink(t), afterSinkWrite))
}

// TestSIGKILLExactlyOnceKafkaToRedis: SIGKILLs at random points of an
// exactly_once Kafka → Redis connector (one Lua script per batch applies
// the writes and the offsets compare-and-set) leave every event applied
// once (audit log and INCR counter).
func TestSIGKILLExactlyOnceKafkaToRedis(t *testing.T) {
	t.Parallel()
	checkExactlyOnce(t, "redis", runSIGKILLScheduleTo(t, "exactly_once", sharedRedisSink(t)))
}

// TestSIGKILLAtLeastOnceKafkaToRedis: the same at_least_once (pipelined
// writes, then the group offsets), every third kill at afterSinkWrite,
// loses nothing and re-applies the batches those kills caught.
func TestSIGKILLAtLeastOnceKafkaToRedis(t *testing.T) {
	t.Parallel()
	checkAtLeastOnce(t, "redis", runSIGKILLScheduleAt(t, "at_least_once", sharedRedisSink(t), afterSinkWrite))
}
