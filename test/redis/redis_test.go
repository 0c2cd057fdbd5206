// Package redis_test runs Kafka (in-process kfake) → Redis pipelines end to
// end against a real Redis, under broker faults, restarts, rebalances and
// Redis itself being killed. They need `make services` (Redis, and the
// redis-server binary); with -short they are skipped.
package redis_test

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const redisYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: to-redis
		guarantee: GUARANTEE
		commit.interval: 50ms
		batch.max.records: 500
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {stored: true}
		sink:
			type: redis
			addr: ADDR
			key_prefix: "PREFIX"
			key: "order:{event_id}"
			audit_log: true
			test_apply_counter: true
			timeout: 3s
`

// Exactly-once into Redis on the schedule every sink runs
// (e2e.SinkSchedule: consumer-side broker faults, a restart mid-stream and
// a second instance joining and leaving, so partitions move between owners,
// claimed in Redis, each claim raising the claim epoch): the checker sees
// every event applied once, and every apply counter is exactly 1. The same
// at_least_once loses nothing and writes the batch whose offset commit was
// rejected twice (the audit log shows it): proof the faults bit.
func TestKafkaToRedisUnderFaults(t *testing.T) {
	for _, guarantee := range []string{"exactly_once", "at_least_once"} {
		t.Run(guarantee, func(t *testing.T) {
			addr, prefix := testenv.Redis(t)
			c := e2e.Cluster(t)
			const n = 20000
			e2e.Produce(t, c, "in", 0, n)
			cfg := e2e.Parse(t, c, redisYAML, "GUARANTEE", guarantee, "ADDR", addr, "PREFIX", prefix)
			run := e2e.RunSchedule(t, c, cfg, "to-redis", n, e2e.SinkSchedule(11, 0.03))
			if lost := run.Faults.SureHits(e2e.LostCommit); lost != 1 {
				t.Fatalf("%d offset commits of a written batch rejected, want 1: the lost commit did not bite", lost)
			}
			rep := run.Report
			if guarantee == "exactly_once" {
				e2e.MustBeClean(t, rep, "exactly_once into Redis")
				return
			}
			t.Logf("at_least_once into Redis: %s", rep)
			if rep.Missing != 0 || rep.Unexpected != 0 {
				t.Fatalf("at_least_once lost records: %s", rep)
			}
			if rep.Duplicates == 0 {
				t.Fatalf("at_least_once into Redis: no duplicates, though an offset commit of a written batch was rejected: %s", rep)
			}
		})
	}
}

// Redis SIGKILLed and restarted on its AOF while the connector writes, with
// appendfsync always and everysec: data, apply counters and offsets live in
// one script, so whatever the restart keeps of them agrees, and the
// connector resumes from the recovered checkpoint without loss or double
// application.
func TestRedisKilledMidStream(t *testing.T) {
	for _, fsync := range []string{"always", "everysec"} {
		t.Run(fsync, func(t *testing.T) {
			srv := testenv.StartRedisServer(t, fsync)
			c := e2e.Cluster(t)
			const chunk, kills = 6000, 3
			const n = chunk * (kills + 1)
			e2e.Produce(t, c, "in", 0, chunk)
			cfg := e2e.Parse(t, c, redisYAML, "GUARANTEE", "exactly_once", "ADDR", srv.Addr(), "PREFIX", "k:")
			var d *daemon.Daemon = e2e.Start(t, cfg, "a")
			for i := 1; i <= kills; i++ {
				// Caught up, give it a fresh backlog and kill Redis while
				// the connector writes it: batches are in flight, and
				// more are tried while the server is down.
				e2e.WaitExpected(t, c, cfg, "to-redis", i*chunk, 2*time.Minute)
				e2e.Produce(t, c, "in", i*chunk, (i+1)*chunk)
				srv.Kill()
				time.Sleep(300 * time.Millisecond) // longer than commit.interval
				srv.Start()
				t.Logf("kill %d with a backlog of %d events: restarted", i, chunk)
			}
			rep := e2e.WaitExpected(t, c, cfg, "to-redis", n, 2*time.Minute)
			e2e.MustBeClean(t, rep, "after three Redis kills ("+fsync+")")
			st, _ := d.Status("to-redis")
			aborted := uint64(0)
			for k, v := range st.Aborts {
				if !strings.Contains(k, "fatal") {
					aborted += v
				}
			}
			if aborted == 0 {
				t.Fatalf("Redis was killed three times but no batch failed: the kills did not bite (%v)", st.Aborts)
			}
			t.Logf("batches not committed across the kills: %v", st.Aborts)
		})
	}
}
