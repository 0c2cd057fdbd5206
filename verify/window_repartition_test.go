package verify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
)

// repartitionYAML groups by value.customer, which the input is not
// partitioned by: the connector repartitions through an internal topic.
const repartitionYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: rk
		commit.interval: 50ms
		batch.max.records: 70
		transaction.timeout: 10s
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: window
				time: value.ts
				key: value.customer
				repartition: true
				window: {type: tumbling, size: 1s}
				watermark: {max_out_of_orderness: 2s}
				late: dead_letter
				aggregate:
					n: count()
					total: sum(value.amount)
		sink: SINK
`

// handWindow is one (customer, window) computed by hand from the input.
type handWindow struct {
	n     int64
	total float64
}

// TestRepartitionedWindowsByHand runs a connector grouping by a field its
// input is not partitioned by (every customer in every input partition)
// and checks that every window is computed once, with the values a hand
// computation over the whole input gives, which only holds if each
// customer's records met in one place; that verify's two-stage check is
// clean running and stopped; that records without a customer are
// dead-lettered by the repartition stage and late ones by the window
// stage (into the same topic with a Kafka sink). The window stage writes
// to Kafka (-short, kfake) and to PostgreSQL (the service).
//
// The input comes in rounds of event times [1000r, 1000r+1000), each
// committed by the repartition stage before the next is produced, so with
// 2s of out-of-orderness no record of a round can be late whatever the
// interleaving, and the hand computation needs no watermarks.
func TestRepartitionedWindowsByHand(t *testing.T) {
	t.Run("kafka", func(t *testing.T) {
		runRepartitionedByHand(t, "{type: kafka, topic: out}", func(t *testing.T, c *kfake.Cluster, n int) map[string]handWindow {
			return waitResults(t, c, "out", n)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.Postgres(t) // skips under -short
		sink := fmt.Sprintf(`{type: postgres, dsn: %q, table: wins, auto_create: true, test_apply_counter: true,
			columns: {n: "json:n::bigint", total: "json:total::numeric"}}`, dsn)
		runRepartitionedByHand(t, sink, func(t *testing.T, _ *kfake.Cluster, n int) map[string]handWindow {
			return waitRows(t, dsn, n)
		})
	})
}

func runRepartitionedByHand(t *testing.T, sink string, results func(t *testing.T, c *kfake.Cluster, n int) map[string]handWindow) {
	c := e2e.Cluster(t)
	cfg := e2e.Parse(t, c, repartitionYAML, "SINK", sink)
	kafkaSink := strings.Contains(sink, "kafka")
	rng := rand.New(rand.NewPCG(7, 15))
	customers := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	want := map[string]handWindow{} // "<customer>/<start>"
	partitionsOf := map[string]map[int32]bool{}
	var input []*kgo.Record
	noCustomer, late := 0, 0
	add := func(p int32, value string) {
		input = append(input, &kgo.Record{Topic: "in", Partition: p, Value: []byte(value),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", len(input))}}})
	}

	d := e2e.Start(t, cfg, "a")
	const rounds, perRound = 8, 240
	for r := range rounds {
		from := len(input)
		for i := range perRound {
			p := int32(i % 4)
			ts := int64(r*1000 + rng.IntN(1000))
			amount := float64(rng.IntN(10000)) / 100
			if i%60 == 59 {
				add(p, fmt.Sprintf(`{"ts":%d,"amount":%.2f}`, ts, amount))
				noCustomer++
				continue
			}
			cust := customers[rng.IntN(len(customers))]
			if partitionsOf[cust] == nil {
				partitionsOf[cust] = map[int32]bool{}
			}
			partitionsOf[cust][p] = true
			add(p, fmt.Sprintf(`{"ts":%d,"customer":%q,"amount":%.2f}`, ts, cust, amount))
			w := want[fmt.Sprintf("%s/%d", cust, ts/1000*1000)]
			w.n++
			w.total += amount
			want[fmt.Sprintf("%s/%d", cust, ts/1000*1000)] = w
		}
		produce(t, c, input[from:])
		waitCommitted(t, c, "connectd-rk", len(input))
		if r == rounds/2 {
			rep := check(t, c, cfg, false)
			if !rep.Clean() || len(rep.Sinks) != 2 {
				t.Fatalf("running, after round %d: %s", r, rep)
			}
			t.Logf("running, after round %d: %s", r, rep)
		}
	}
	for cust, ps := range partitionsOf {
		if len(ps) < 2 {
			t.Fatalf("customer %s is in partitions %v only: the input must spread each customer", cust, ps)
		}
	}
	// One record per customer far ahead closes every window above in
	// whichever repartition partition holds it; then records behind every
	// watermark are late.
	from := len(input)
	for i, cust := range customers {
		add(int32(i%4), fmt.Sprintf(`{"ts":100000,"customer":%q,"amount":1}`, cust))
	}
	produce(t, c, input[from:])
	waitCommitted(t, c, "connectd-rk", len(input))
	from = len(input)
	for p := range int32(4) {
		add(p, `{"ts":5,"customer":"alice","amount":1}`)
		late++
	}
	produce(t, c, input[from:])
	waitCommitted(t, c, "connectd-rk", len(input))

	got := results(t, c, len(want))
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("window %s: not emitted", k)
		case g.n != w.n || math.Abs(g.total-w.total) > 1e-9*math.Max(1, math.Abs(w.total)):
			t.Errorf("window %s: n=%d total=%v, want n=%d total=%v", k, g.n, g.total, w.n, w.total)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("window %s: emitted, not in the input", k)
		}
	}

	st, _ := d.Status("rk")
	parts := map[string]bool{}
	for _, ps := range st.Partitions {
		parts[ps.Topic] = true
	}
	if st.Window == nil || st.RecordsIn < uint64(len(input)) || !parts["in"] || !parts[pipeline.RepartitionTopic("connectd-rk")] {
		t.Fatalf("status %+v: want the window section, records_in of the input (%d) and both stages' partitions", st, len(input))
	}
	d.Stop()

	// With a Kafka sink both stages dead-letter into the topic; else the
	// window stage's go to the sink's dead-letter table (verify checks
	// them there).
	wantLate := 0
	if kafkaSink {
		wantLate = late
	}
	letters := readDeadLetters(t, c, "dlq", noCustomer+wantLate)
	if letters["window"] != noCustomer || letters["late"] != wantLate || len(letters) > 2 {
		t.Fatalf("dead letters %v: want %d without a customer (repartition stage) and %d late (window stage)", letters, noCustomer, late)
	}
	for _, stopped := range []bool{false, true} {
		rep := check(t, c, cfg, stopped)
		if !rep.Clean() || rep.Windows != len(want) || rep.Late != late || rep.UncheckedPartitions != 0 {
			t.Fatalf("stopped=%v: %s, want clean over %d windows and %d late records", stopped, rep, len(want), late)
		}
		t.Logf("stopped=%v: %s", stopped, rep)
	}
	t.Logf("%d input records, %d customers over 4 partitions, %d windows emitted, %d dead-lettered without a customer, %d late",
		len(input), len(customers), len(got), noCustomer, late)
}

// waitResults reads topic with read_committed until it holds n window
// results, and returns them by "<key>/<window_start>"; a result seen
// twice fails the test.
func waitResults(t *testing.T, c *kfake.Cluster, topic string, n int) map[string]handWindow {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got := map[string]handWindow{}
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s holds %d of %d results", topic, len(got), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var v struct {
				Key   string    `json:"key"`
				Start time.Time `json:"window_start"`
				N     int64     `json:"n"`
				Total float64   `json:"total"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("result %s: %v", r.Value, err)
			}
			k := fmt.Sprintf("%s/%d", v.Key, v.Start.UnixMilli())
			if string(r.Key) != v.Key {
				t.Errorf("result %s: record key %q", r.Value, r.Key)
			}
			if _, dup := got[k]; dup {
				t.Errorf("window %s emitted twice", k)
			}
			got[k] = handWindow{n: v.N, total: v.Total}
		})
	}
	return got
}

// waitRows reads the PostgreSQL sink's table until it holds n windows and
// returns them by "<key>/<window_start>" (from the event ID
// <connector>/<key>/<start>); a row applied twice fails the test.
func waitRows(t *testing.T, dsn string, n int) map[string]handWindow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		got := map[string]handWindow{}
		rows, err := conn.Query(ctx, "SELECT event_id, n, total::float8, apply_count FROM wins")
		if err == nil {
			for rows.Next() {
				var id string
				var w handWindow
				var applies int
				if err := rows.Scan(&id, &w.n, &w.total, &applies); err != nil {
					t.Fatal(err)
				}
				if applies != 1 {
					t.Errorf("window %s applied %d times", id, applies)
				}
				got[strings.TrimPrefix(id, "rk/")] = w
			}
			err = rows.Err()
		}
		if err == nil && len(got) >= n {
			return got
		}
		if ctx.Err() != nil {
			t.Fatalf("table wins holds %d of %d windows (%v)", len(got), n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readDeadLetters reads n dead letters of topic and counts them by cause:
// "window" for a record the repartition stage could not key (its window
// transform failed on the input), "late" for a late record (the window
// stage's, from the repartition topic). Letters beyond n are left to
// verify, which counts them unexpected.
func readDeadLetters(t *testing.T, c *kfake.Cluster, topic string, n int) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]int{}
	for seen := 0; seen < n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s holds %d of %d dead letters: %v", topic, seen, n, out)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			var stage, reason, origin string
			for _, h := range r.Headers {
				switch h.Key {
				case connector.HeaderDLQStage:
					stage = string(h.Value)
				case pipeline.HeaderLateReason:
					reason = string(h.Value)
				case connector.HeaderDLQTopic:
					origin = string(h.Value)
				}
			}
			switch {
			case reason == "late" && origin == pipeline.RepartitionTopic("connectd-rk"):
				out["late"]++
			case stage == "transform 0 (window)" && origin == "in":
				out["window"]++
			default:
				out[fmt.Sprintf("stage=%s reason=%s origin=%s", stage, reason, origin)]++
			}
		})
	}
	return out
}
