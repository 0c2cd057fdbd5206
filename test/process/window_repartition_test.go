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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/pipeline"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
	"github.com/connectd/connectd/test/testenv"
)

// Repartitioned windows group by value.i % repartitionKeys, which the input
// (keyed k-(i%97), partitioned by that key's hash) is not partitioned by:
// every grouping key is spread over every input partition.
const (
	repartitionKeys = 89
	repartitionOOO  = 5000 // ms of max_out_of_orderness
)

// TestRepartitionedWindowSIGKILL: an exactly_once windowed connector
// grouping by an expression runs as two stages (repartition into
// <group>-repartition, then the window stage into the Kafka sink), and is
// SIGKILLed 8 times while it drains a backlog and new input arrives. In the
// end:
//   - every window the sink holds is there once, and holds exactly the
//     input records of its (key, window) computed here from the input,
//     minus those dead-lettered as late for it: whatever the interleaving
//     of the input partitions in the repartition topic, a closed tumbling
//     window took every record of its own that was not late;
//   - every window that the input's end closed in every repartition
//     partition is there;
//   - `connectd verify --stopped` is clean, both stages, the window stage
//     value for value against the batch oracle over the repartition topic.
//
// Most of the backlog comes late (about 75% in the runs so far): the
// window stage's watermark is per repartition partition, and a backlog's
// fetches interleave the input partitions in chunks of thousands of
// records, each spanning most of the backlog's event time. That is the
// cost of deciding lateness against the repartition log (see README,
// Keys); the checks above hold whatever the fraction.
func TestRepartitionedWindowSIGKILL(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	dlq := testenv.KafkaTopics(t, p.brokers, 1, inputPartitions)[0]
	p.keepForever(p.out) // window results are stamped in 1970
	repTopic := pipeline.RepartitionTopic(p.group)
	winGroup := pipeline.WindowGroup(p.group)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.adm.DeleteTopics(ctx, repTopic, sinkkafka.StateTopic(winGroup))
	})
	cfg := p.writeConfig(connectorConfig{
		guarantee:          "exactly_once",
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     "45s",
		shutdownTimeout:    "10s",
		transforms: "\t\t\t- type: window\n" +
			fmt.Sprintf("\t\t\t\ttime: value.i * %d\n", windowTick) +
			fmt.Sprintf("\t\t\t\tkey: '\"c\" + string(value.i %% %d)'\n", repartitionKeys) +
			"\t\t\t\trepartition: true\n" +
			fmt.Sprintf("\t\t\t\twindow: {type: tumbling, size: %dms}\n", windowSize) +
			fmt.Sprintf("\t\t\t\twatermark: {max_out_of_orderness: %dms}\n", repartitionOOO) +
			"\t\t\t\tlate: dead_letter\n" +
			"\t\t\t\taggregate:\n\t\t\t\t\tn: count()\n\t\t\t\t\ttotal: sum(value.amount)",
		extra: fmt.Sprintf("\t\tdead_letter_queue: {topic: %s}\n", dlq),
	})
	const pre = 60_000
	const kills = 8
	p.produce(0, pre)
	id := p.instanceID("rpw")
	inst := startInstance(t, cfg, id)
	in := p.startStream(pre, streamRate)
	// The window stage starts once the repartition stage's first batch
	// commits (and its state topic exists): the first kill waits for it.
	waitFor(t, time.Minute, "the window stage to open windows", func() bool {
		inst.Alive()
		st, err := inst.status(connectorName)
		return err == nil && windowStatus(t, st).OpenWindows > 0
	})
	r := rand.New(rand.NewPCG(seed(t), 0))
	for k := 1; k <= kills; k++ {
		killWithOpenWindows(t, inst, r, k)
	}
	total := in.stop(t)
	p.waitCommitted(total, 3*time.Minute, inst) // the repartition stage
	waitFor(t, limit(t, 3*time.Minute), "the window stage to drain the repartition topic", func() bool {
		inst.Alive()
		return p.windowStageDrained(t, repTopic, winGroup)
	})
	st := inst.mustStatus(connectorName)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	t.Logf("%d kills, %d input records; status records_in %d, records_out %d, window %+v", kills, total, st.RecordsIn, st.RecordsOut, windowStatus(t, st))

	got := readKafkaWindows(t, p)
	late := readLateLetters(t, p, dlq)
	checkRepartitionedWindows(t, got, late, total)

	v := runVerify(t, cfg, connectorName)
	var rep struct {
		Windows         int `json:"windows"`
		Late            int `json:"late"`
		ValueMismatches int `json:"value_mismatches"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(v.stdout)), &rep); err != nil {
		t.Fatal(err)
	}
	if v.code != 0 || !v.report.clean() || rep.ValueMismatches != 0 || rep.Windows != len(got) || rep.Late != lateCount(late) {
		t.Fatalf("verify: exit %d, %s, %d windows (%d in the sink), %d late (%d dead-lettered), %d value mismatches",
			v.code, v.report, rep.Windows, len(got), rep.Late, lateCount(late), rep.ValueMismatches)
	}
}

// windowStageDrained reports whether the window group has committed the
// whole repartition topic: each partition's checkpoint at its last
// transaction's marker (the repartition stage ends every transaction with
// one).
func (p *pipe) windowStageDrained(t *testing.T, topic, group string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := p.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	committed, err := p.adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return false
	}
	drained := true
	ends.Each(func(lo kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, lo.Partition)
		if lo.Err != nil || !ok || c.Err != nil || c.At < lo.Offset-1 {
			drained = false
		}
	})
	return drained
}

// readLateLetters reads the dead-letter topic (the connector is stopped)
// and sums its late records (count, amount) per result ID of the window
// they were late for. Any other dead letter fails the test: every input record has a
// key, a time and an amount.
func readLateLetters(t *testing.T, p *pipe, topic string) map[string][2]float64 {
	t.Helper()
	late := map[string][2]float64{}
	readCommitted(t, p, topic, func(r *kgo.Record) {
		var reason string
		for _, h := range r.Headers {
			if h.Key == pipeline.HeaderLateReason {
				reason = string(h.Value)
			}
		}
		var v struct{ I, Amount int }
		if err := json.Unmarshal(r.Value, &v); err != nil || reason != "late" {
			t.Fatalf("dead letter %q (headers %v): not a late input record", r.Value, r.Headers)
		}
		l := late[repartitionedID(v.I)]
		late[repartitionedID(v.I)] = [2]float64{l[0] + 1, l[1] + float64(v.Amount)}
	})
	return late
}

func lateCount(late map[string][2]float64) int {
	n := 0
	for _, c := range late {
		n += int(c[0])
	}
	return n
}

// repartitionedID is the result ID of input record i's window.
func repartitionedID(i int) string {
	per := windowSize / windowTick
	return fmt.Sprintf("%s/c%d/%d", connectorName, i%repartitionKeys, (i/per)*windowSize)
}

// checkRepartitionedWindows compares the sink's windows with those computed
// from input records 0..total-1 and the late ones.
func checkRepartitionedWindows(t *testing.T, got map[string]windowResult, late map[string][2]float64, total int) {
	t.Helper()
	want := map[string][2]float64{}
	for i := range total {
		id := repartitionedID(i)
		v := want[id]
		want[id] = [2]float64{v[0] + 1, v[1] + float64(i%1000)}
	}
	// A repartition partition's watermark is its highest event time
	// minus the out-of-orderness, and each receives a record of some key
	// at least every repartitionKeys indexes: every window ending
	// 2 windows before that has closed everywhere.
	closedBy := int64(total-1)*windowTick - repartitionOOO - 2*windowSize
	checked, exact, lateWindows, allLate := 0, 0, 0, 0
	for id, v := range want {
		g, ok := got[id]
		l := late[id]
		switch {
		case l[0] == v[0]:
			// Every record of the window came after its repartition
			// partition's watermark had closed it: never opened.
			allLate++
			if ok {
				t.Errorf("window %s: emitted, but all its %v records were dead-lettered late", id, v[0])
			}
		case ok:
			checked++
			// The late records of a closed window are exactly the
			// ones it did not take.
			if g.n != v[0]-l[0] || g.total != v[1]-l[1] {
				t.Errorf("window %s: n, total = %v, %v; want %v minus %v late", id, g.n, g.total, v, l)
			}
			if l[0] == 0 {
				exact++
			} else {
				lateWindows++
			}
		case l[0] > 0:
			t.Errorf("window %s: %v records late for it, but it was never emitted", id, l[0])
		case windowEnd(id) <= closedBy:
			t.Errorf("window %s closed everywhere (ends by %d) but missing", id, closedBy)
		}
		if g.applies > 1 {
			t.Errorf("window %s written %d times", id, g.applies)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected window %s", id)
		}
	}
	if exact < 1000 {
		t.Fatalf("only %d windows checked without late records: the test did not exercise enough", exact)
	}
	t.Logf("%d windows in the sink: %d exactly the input's, %d the input's minus late records; %d never opened (all late); %d late records",
		checked, exact, lateWindows, allLate, lateCount(late))
}
