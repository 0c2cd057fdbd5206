package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// Input record i (inputRecords) has event time i*windowTick ms, key
// k-(i%97) and amount i%1000; windows of windowSize ms hold
// windowSize/windowTick consecutive indexes.
const (
	windowTick = 10
	windowSize = 1000
)

// TestWindowedSIGKILLIntoPostgres: a windowed exactly_once connector
// (tumbling 1s windows, count and sum per key) into PostgreSQL, SIGKILLed
// repeatedly while it drains a backlog and new input arrives, restarted
// each time with the same instance_id. Its window state lives in the
// sink's state table and commits with the rows and offsets; after every
// restart it is restored from there. In the end every window the input
// closed must be in the table exactly once (its apply counter at 1), with
// the count and sum computed here from the input, and no window that the
// input cannot have closed may be there.
func TestWindowedSIGKILLIntoPostgres(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	dsn := testenv.Postgres(t)
	cfg := p.writeConfig(connectorConfig{
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
		sink: sinkSection(
			"type: postgres",
			fmt.Sprintf("dsn: %q", dsn),
			"table: public.windows",
			"auto_create: true",
			"test_apply_counter: true",
			"columns:",
			"\twkey: json:key",
			"\tn: json:n::bigint",
			"\ttotal: json:total::numeric",
		),
	})
	const pre = 60_000
	p.produce(0, pre)
	id := p.instanceID("win")
	inst := startInstance(t, cfg, id)
	in := p.startStream(pre, streamRate)
	r := rand.New(rand.NewPCG(seed(t), 0))
	kills := 0
	for kills < 6 {
		time.Sleep(time.Duration(700+r.IntN(1500)) * time.Millisecond)
		st := inst.mustStatus(connectorName)
		ws := windowStatus(t, st)
		if ws.OpenWindows == 0 {
			t.Fatalf("kill %d would find no open window: %s", kills+1, st.raw)
		}
		inst.kill(syscall.SIGKILL)
		kills++
		t.Logf("SIGKILL %d: records_in %d, commits %d, open windows %d", kills, st.RecordsIn, st.Commits, ws.OpenWindows)
		inst.restart()
		// The restarted process must take its state from the sink.
		waitFor(t, time.Minute, "the restarted process to restore window state", func() bool {
			inst.Alive()
			st, err := inst.status(connectorName)
			return err == nil && windowStatus(t, st).Restores > 0
		})
	}
	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, inst)
	st := inst.mustStatus(connectorName)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	t.Logf("%d kills, %d input records; final status %s", kills, total, st.raw)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT event_id, n, total::float8, apply_count FROM public.windows")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{}
	applied := 0
	for rows.Next() {
		var id string
		var n int64
		var sum float64
		var applies int
		if err := rows.Scan(&id, &n, &sum, &applies); err != nil {
			t.Fatal(err)
		}
		if applies != 1 {
			applied++
			t.Errorf("window %s applied %d times", id, applies)
		}
		got[id] = [2]float64{float64(n), sum}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The expected windows: key k's records in window w are the i in
	// [w*per, (w+1)*per) with i%97 == k. A partition's watermark is the
	// event time of its last record, and every partition receives a
	// record at least every 97 indexes, so every window ending 2 windows
	// before the last event time has closed; none ending after it can
	// have.
	per := windowSize / windowTick
	lastT := int64(total-1) * windowTick
	want := map[string][2]float64{}
	for i := 0; i < total; i++ {
		w := i / per
		key := fmt.Sprintf("k-%d", i%97)
		id := fmt.Sprintf("%s/%s/%d", connectorName, key, w*windowSize)
		v := want[id]
		want[id] = [2]float64{v[0] + 1, v[1] + float64(i%1000)}
	}
	checked := 0
	for id, v := range want {
		g, ok := got[id]
		end := windowEnd(id)
		switch {
		case end <= lastT-2*windowSize:
			checked++
			if !ok {
				t.Errorf("window %s closed but missing", id)
			} else if g != v {
				t.Errorf("window %s: n, total = %v, want %v", id, g, v)
			}
		case end > lastT && ok:
			t.Errorf("window %s ends after the last event time %d but was emitted", id, lastT)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected window %s", id)
		}
	}
	if kills < 6 || checked < 1000 {
		t.Fatalf("%d kills, %d closed windows checked: the test did not exercise enough", kills, checked)
	}
	t.Logf("%d windows in the table, %d closed windows checked value for value, %d applied more than once", len(got), checked, applied)
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
