package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/test/testenv"
)

// Input record i (inputRecords) has event time i*windowTick ms, key
// k-(i%97) and amount i%1000; windows of windowSize ms hold
// windowSize/windowTick consecutive indexes.
const (
	windowTick = 10
	windowSize = 1000
)

// windowResult is one window as a sink holds it: count, sum, and how many
// times it was applied (or, for Kafka, written).
type windowResult struct {
	n, total float64
	applies  int
}

// windowedSink is a sink under test: its config section and a reader of
// the windows it holds, by event ID.
type windowedSink struct {
	section func(p *pipe) string
	read    func(t *testing.T, p *pipe) map[string]windowResult
}

// TestWindowedSIGKILL: a windowed exactly_once connector (tumbling 1s
// windows, count and sum per key) into Kafka, PostgreSQL and Redis,
// SIGKILLed 10 times while it drains a backlog and new input arrives,
// restarted each time with the same instance_id. Its window state commits
// with the output and the offsets (the compacted state topic in the Kafka
// transaction, the state table in the PostgreSQL transaction, the state
// hash in the Redis script) and is restored from there after every
// restart. In the end every window the input closed must be in the sink
// exactly once, with the count and sum computed here from the input, and
// no window the input cannot have closed may be there.
func TestWindowedSIGKILL(t *testing.T) {
	t.Parallel()
	for name, sink := range windowedSinks() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runWindowedSIGKILL(t, sink)
		})
	}
}

// windowedSinks is every sink a windowed connector is tested against, by
// name: the Kafka output topic, a PostgreSQL table and Redis keys, the
// last two with the test-mode apply counter.
func windowedSinks() map[string]windowedSink {
	return map[string]windowedSink{
		"kafka": {
			section: func(p *pipe) string {
				p.keepForever(p.out) // window results are stamped in 1970
				p.deleteStateTopicAtEnd()
				return "\t\t\ttype: kafka\n\t\t\ttopic: " + p.out
			},
			read: readKafkaWindows,
		},
		"postgres": {
			section: func(p *pipe) string {
				p.dsn = testenv.Postgres(p.t)
				return sinkSection(
					"type: postgres",
					fmt.Sprintf("dsn: %q", p.dsn),
					"table: public.windows",
					"auto_create: true",
					"test_apply_counter: true",
					"columns:",
					"\twkey: json:key",
					"\tn: json:n::bigint",
					"\ttotal: json:total::numeric",
				)
			},
			read: readPostgresWindows,
		},
		"redis": {
			section: func(p *pipe) string {
				p.redisAddr, p.redisPrefix = testenv.Redis(p.t)
				return sinkSection(
					"type: redis",
					fmt.Sprintf("addr: %q", p.redisAddr),
					fmt.Sprintf("key_prefix: %q", p.redisPrefix),
					`key: "win:{event_id}"`,
					"test_apply_counter: true",
				)
			},
			read: readRedisWindows,
		},
	}
}

// writeWindowedConfig writes the config of the windowed exactly_once
// connector into sink: tumbling windowSize windows of count and sum per
// record key, over event time value.i*windowTick, late records dropped.
func (p *pipe) writeWindowedConfig(sink windowedSink) string {
	p.t.Helper()
	return p.writeConfig(connectorConfig{
		guarantee:          "exactly_once",
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     "45s",
		shutdownTimeout:    "10s",
		transforms: "\t\t\t- type: window\n" +
			fmt.Sprintf("\t\t\t\ttime: value.i * %d\n", windowTick) +
			fmt.Sprintf("\t\t\t\twindow: {type: tumbling, size: %dms}\n", windowSize) +
			"\t\t\t\tlate: drop\n" +
			"\t\t\t\taggregate:\n\t\t\t\t\tn: count()\n\t\t\t\t\ttotal: sum(value.amount)",
		sink: sink.section(p),
	})
}

func runWindowedSIGKILL(t *testing.T, sink windowedSink) {
	p := newPipe(t)
	cfg := p.writeWindowedConfig(sink)
	// A backlog, then input streaming while the kills come: every kill
	// finds open windows (asserted), most find a batch in flight.
	const pre = 100_000
	const kills = 10
	p.produce(0, pre)
	id := p.instanceID("win")
	inst := startInstance(t, cfg, id)
	in := p.startStream(pre, streamRate)
	r := rand.New(rand.NewPCG(seed(t), 0))
	for k := 1; k <= kills; k++ {
		killWithOpenWindows(t, inst, r, k)
	}
	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, inst)
	st := inst.mustStatus(connectorName)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	t.Logf("%d kills, %d input records; window status %+v", kills, total, windowStatus(t, st))
	got := sink.read(t, p)
	checkWindows(t, got, total)
}

// checkWindows compares the windows a sink holds with those computed from
// input records 0..total-1.
func checkWindows(t *testing.T, got map[string]windowResult, total int) {
	t.Helper()
	// Key k's records in window w are the i in [w*per, (w+1)*per) with
	// i%97 == k. A partition's watermark is the event time of its last
	// record, and every partition receives a record at least every 97
	// indexes, so every window ending 2 windows before the last event
	// time has closed; none ending after it can have.
	per := windowSize / windowTick
	lastT := int64(total-1) * windowTick
	want := map[string][2]float64{}
	for i := 0; i < total; i++ {
		id := fmt.Sprintf("%s/k-%d/%d", connectorName, i%97, (i/per)*windowSize)
		v := want[id]
		want[id] = [2]float64{v[0] + 1, v[1] + float64(i%1000)}
	}
	checked, twice := 0, 0
	for id, v := range want {
		g, ok := got[id]
		end := windowEnd(id)
		switch {
		case end <= lastT-2*windowSize:
			checked++
			if !ok {
				t.Errorf("window %s closed but missing", id)
			} else if [2]float64{g.n, g.total} != v {
				t.Errorf("window %s: n, total = %v, %v; want %v", id, g.n, g.total, v)
			}
		case end > lastT && ok:
			t.Errorf("window %s ends after the last event time %d but was emitted", id, lastT)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected window %s", id)
		}
		if g.applies != 1 {
			twice++
			if twice <= 10 {
				t.Errorf("window %s applied %d times", id, g.applies)
			}
		}
	}
	if twice > 0 {
		t.Errorf("%d windows applied more than once", twice)
	}
	if checked < 1000 {
		t.Fatalf("only %d closed windows checked: the test did not exercise enough", checked)
	}
	t.Logf("%d windows in the sink, %d closed windows checked value for value, %d applied more than once", len(got), checked, twice)
}

func readPostgresWindows(t *testing.T, p *pipe) map[string]windowResult {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT event_id, n, total::float8, apply_count FROM public.windows")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]windowResult{}
	for rows.Next() {
		var id string
		var n int64
		var w windowResult
		if err := rows.Scan(&id, &n, &w.total, &w.applies); err != nil {
			t.Fatal(err)
		}
		w.n = float64(n)
		got[id] = w
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func readRedisWindows(t *testing.T, p *pipe) map[string]windowResult {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: p.redisAddr})
	defer rdb.Close()
	got := map[string]windowResult{}
	prefix := p.redisPrefix + "win:"
	// Each page of SCAN is read in one pipeline (a value and an apply
	// counter per key): hundreds of thousands of windows in seconds, not
	// a round trip each.
	for cursor := uint64(0); ; {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 5000).Result()
		if err != nil {
			t.Fatal(err)
		}
		batch := rdb.Pipeline()
		vals := make([]*redis.StringCmd, len(keys))
		counts := make([]*redis.StringCmd, len(keys))
		for i, key := range keys {
			vals[i] = batch.Get(ctx, key)
			counts[i] = batch.Get(ctx, p.redisPrefix+sinkredis.ApplyCounterPrefix+strings.TrimPrefix(key, prefix))
		}
		if _, err := batch.Exec(ctx); err != nil {
			t.Fatalf("reading %d window keys: %v", len(keys), err)
		}
		for i, key := range keys {
			id := strings.TrimPrefix(key, prefix)
			v, err := vals[i].Bytes()
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			w := parseWindow(t, id, v)
			if w.applies, err = counts[i].Int(); err != nil {
				t.Fatalf("apply counter of %s: %v", id, err)
			}
			got[id] = w
		}
		if cursor = next; cursor == 0 {
			return got
		}
	}
}

func readKafkaWindows(t *testing.T, p *pipe) map[string]windowResult {
	got := map[string]windowResult{}
	readCommitted(t, p, p.out, func(r *kgo.Record) {
		var id string
		for _, h := range r.Headers {
			if h.Key == sinkkafka.HeaderEventID {
				id = string(h.Value)
			}
		}
		w := got[id]
		if w.applies == 0 {
			w = parseWindow(t, id, r.Value)
		}
		w.applies++
		got[id] = w
	})
	return got
}

func parseWindow(t *testing.T, id string, v []byte) windowResult {
	t.Helper()
	var w struct{ N, Total float64 }
	if err := json.Unmarshal(v, &w); err != nil {
		t.Fatalf("window %s: value %q: %v", id, v, err)
	}
	return windowResult{n: w.N, total: w.Total}
}

// killWithOpenWindows SIGKILLs inst (kill k of a schedule) at a random
// moment once it holds open windows (a restarted process first rejoins its
// group and restores state), asserts the kill found windows open, restarts
// it and waits until it has restored its state from the sink.
func killWithOpenWindows(t *testing.T, inst *instance, r *rand.Rand, k int) {
	t.Helper()
	waitFor(t, time.Minute, "the process to hold open windows", func() bool {
		inst.Alive()
		st, err := inst.status(connectorName)
		return err == nil && windowStatus(t, st).OpenWindows > 0
	})
	time.Sleep(time.Duration(r.IntN(1000)) * time.Millisecond)
	st := inst.mustStatus(connectorName)
	ws := windowStatus(t, st)
	if ws.OpenWindows == 0 {
		t.Fatalf("kill %d would find no open window: %s", k, st.raw)
	}
	inst.kill(syscall.SIGKILL)
	t.Logf("SIGKILL %d: records_in %d, commits %d, open windows %d", k, st.RecordsIn, st.Commits, ws.OpenWindows)
	inst.restart()
	var restored connector.WindowStatus
	waitFor(t, time.Minute, "the restarted process to restore window state", func() bool {
		inst.Alive()
		st, err := inst.status(connectorName)
		if err != nil {
			return false
		}
		restored = windowStatus(t, st)
		return restored.Restores > 0
	})
	// Logged, not asserted: a kill before the first commit leaves no
	// state to restore. What was lost shows in the value check.
	t.Logf("restart %d: %d state loads brought back %d windows", k, restored.Restores, restored.RestoredWindows)
}

// windowStatus is the window part of a status.
func windowStatus(t *testing.T, st status) connector.WindowStatus {
	t.Helper()
	var v struct {
		Window *connector.WindowStatus `json:"window"`
	}
	if err := json.Unmarshal([]byte(st.raw), &v); err != nil || v.Window == nil {
		t.Fatalf("status without a window section (%v): %s", err, st.raw)
	}
	return *v.Window
}

// windowEnd parses the end (start + size) out of a result's event ID
// <connector>/<key>/<start>.
func windowEnd(id string) int64 {
	var start int64
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '/' {
			fmt.Sscanf(id[i+1:], "%d", &start)
			break
		}
	}
	return start + windowSize
}
