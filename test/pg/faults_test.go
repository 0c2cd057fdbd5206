package pg_test

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/verify"
)

// copyYAML copies topic in to the events table; the set transform fails on
// the non-JSON inputs, which go to the dead-letter table in the same
// transaction.
const copyYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		guarantee: GUARANTEE
		commit.interval: 50ms
		batch.max.records: 400
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {copied: true}
		sink:
			type: postgres
			dsn: DSN
			table: events
			auto_create: true
			test_apply_counter: true
			columns:
				amount: json:amount::bigint
				body: value
				src_topic: topic
				src_partition: partition
				src_offset: offset
`

func (e *env) copyConfig(guarantee string) *config.Config {
	return e.parse(strings.ReplaceAll(copyYAML, "GUARANTEE", guarantee))
}

// runSchedule copies n records on the schedule every sink runs
// (e2e.SinkSchedule: consumer faults, a graceful restart mid-stream, a
// second instance joining and leaving, whose new claims raise claim epochs
// in the offsets table). The sure rejection of a written batch's offset
// commit must have bitten.
func runSchedule(t *testing.T, guarantee string, n int) (*env, verify.Report) {
	e := newEnv(t)
	e.produce("in", 0, n)
	cfg := e.copyConfig(guarantee)
	run := e2e.RunSchedule(t, e.c, cfg, "copy", n, e2e.SinkSchedule(7, 0.05))
	if lost := run.Faults.SureHits(e2e.LostCommit); lost != 1 {
		t.Fatalf("%d offset commits of a written batch rejected, want 1: the lost commit did not bite", lost)
	}
	return e, run.Report
}

func TestExactlyOnceUnderFaultsRestartsAndRebalances(t *testing.T) {
	const n = 20000
	e, rep := runSchedule(t, "exactly_once", n)
	must(t, rep, "exactly_once under faults")
	if rep.Expected != n {
		t.Fatalf("expected %d outputs, want %d", rep.Expected, n)
	}
	if v := e.query("SELECT count(*) FROM events WHERE apply_count <> 1"); v != 0 {
		t.Fatalf("%d rows applied more than once", v)
	}
	if d := e.query("SELECT count(*) FROM events_dlq"); d != n/500 {
		t.Fatalf("%d dead-letter rows, want %d", d, n/500)
	}
	if g := e.query("SELECT max(claim_epoch) FROM connectd_offsets"); g < 2 {
		t.Fatalf("max claim epoch %d: the rebalances never reclaimed a partition", g)
	}
}

func TestAtLeastOnceUnderFaultsLosesNothing(t *testing.T) {
	const n = 20000
	_, rep := runSchedule(t, "at_least_once", n)
	t.Logf("at_least_once under faults: %s", rep)
	if rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("at_least_once lost or invented rows: %s", rep)
	}
	// At least the batch whose offset commit was rejected after its
	// rows were written (e2e.LostCommit) is written twice.
	if rep.Duplicates == 0 {
		t.Fatalf("at_least_once: no duplicates, though an offset commit of a written batch was rejected: %s", rep)
	}
}
