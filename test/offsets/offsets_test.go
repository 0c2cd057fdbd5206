// Package offsets_test checks Kafka Connect's offsets API (KIP-875: GET,
// PATCH and DELETE /connectors/{name}/offsets) through connectd's admin API
// for every sink and guarantee, against the real Kafka, PostgreSQL and Redis
// that `make services` starts: GET shows the position the connector really
// resumes from, a change is refused unless the connector is STOPPED, and a
// PATCH or a reset followed by a resume makes the connector read its input
// again from there (the replay is seen in the sink: records written again,
// apply counters raised). With -short every test skips.
package offsets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/test/testenv"
)

const (
	partitions   = 3
	perPartition = 100
	input        = partitions * perPartition
	// rewindTo is where PATCH sets partition 0: the resumed connector
	// reads perPartition-rewindTo of its records again.
	rewindTo = 40
	name     = "offsets"
)

// A sink under test: its config section, and how many times the sink has
// applied input records so far (a replay raises it by the records read
// again).
type sinkCase struct {
	name    string
	section func(t *testing.T, brokers []string, exactlyOnce bool) (yaml string, applied func(t *testing.T) int)
	// keepsCheckpoint: exactly_once keeps the checkpoint in this sink.
	keepsCheckpoint bool
}

var sinks = []sinkCase{
	{name: "kafka", section: kafkaSink},
	{name: "postgres", section: postgresSink, keepsCheckpoint: true},
	{name: "redis", section: redisSink, keepsCheckpoint: true},
	{name: "kafka+postgres", section: fanoutSink},
}

// For every sink and guarantee: drain the input, then through the admin
// API (GET, PATCH, DELETE /connectors/offsets/offsets) check that offsets
// change only while STOPPED, that GET reads the position the connector
// resumes from, and that a rewind of partition 0 and then a reset each
// replay exactly the input they should.
func TestOffsetsAPIReplays(t *testing.T) {
	for _, sc := range sinks {
		for _, guarantee := range []string{"exactly_once", "at_least_once"} {
			t.Run(sc.name+"/"+guarantee, func(t *testing.T) { runCell(t, sc, guarantee) })
		}
	}
}

func runCell(t *testing.T, sc sinkCase, guarantee string) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, partitions)
	produce(t, brokers, in)
	sink, applied := sc.section(t, brokers, guarantee == "exactly_once")
	group := testenv.UniqueName(t, "g", "-", 200)
	cfg := parse(t, brokers, guarantee, in, group, sink)
	spec, err := pipeline.Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pipeline.SinkKeepsCheckpoint(spec), sc.keepsCheckpoint && guarantee == "exactly_once"; got != want {
		t.Fatalf("SinkKeepsCheckpoint = %v, want %v", got, want)
	}
	api := start(t, cfg)
	adm := kadm.NewClient(testenv.KafkaClient(t, brokers))

	full := connector.Checkpoint{}
	for p := range int32(partitions) {
		full[connector.TopicPartition{Topic: in, Partition: p}] = perPartition
	}
	p0 := connector.TopicPartition{Topic: in, Partition: 0}

	// First pass: the whole input, once.
	api.waitOffsets(full, "the first pass")
	if n := applied(t); n != input {
		t.Fatalf("after the first pass the sink applied %d records, want %d", n, input)
	}
	// GET reads where the protocol keeps its checkpoint: the sink's
	// offsets for exactly_once into PostgreSQL or Redis alone, the
	// group's otherwise (the group's are then a lag copy, equal once
	// the asynchronous copy landed).
	if !pipeline.SinkKeepsCheckpoint(spec) {
		if got := groupOffsets(t, adm, group); !maps.Equal(got, full) {
			t.Fatalf("GET shows %v, but the group, where the connector resumes, has %v", full, got)
		}
	}

	// Changes are refused while the connector runs, and change nothing.
	api.expect(http.MethodPatch, offsetsBody(connector.Checkpoint{p0: rewindTo}), http.StatusBadRequest)
	api.expect(http.MethodDelete, nil, http.StatusBadRequest)
	if got := api.offsets(); !maps.Equal(got, full) {
		t.Fatalf("a refused change moved the offsets: %v", got)
	}

	// Rewind partition 0 while STOPPED; resumed, the connector reads
	// partition 0 again from there.
	api.lifecycle("stop", "STOPPED")
	api.expect(http.MethodPatch, offsetsBody(connector.Checkpoint{p0: rewindTo}), http.StatusOK)
	rewound := full.Clone()
	rewound[p0] = rewindTo
	if got := api.offsets(); !maps.Equal(got, rewound) {
		t.Fatalf("GET after PATCH shows %v, want %v", got, rewound)
	}
	// Where the sink keeps the checkpoint, the group's offsets are its
	// copy for lag display, changed with it.
	if got := groupOffsets(t, adm, group); !maps.Equal(got, rewound) {
		t.Fatalf("after PATCH the group has %v, want %v", got, rewound)
	}
	api.lifecycle("resume", "RUNNING")
	api.waitOffsets(full, "the replay of partition 0")
	replayed := perPartition - rewindTo
	if n := applied(t); n != input+replayed {
		t.Fatalf("after rewinding partition 0 to %d the sink applied %d records in all, want %d (%d read again)",
			rewindTo, n, input+replayed, replayed)
	}

	// Reset while STOPPED; resumed, the connector reads everything again.
	api.lifecycle("stop", "STOPPED")
	api.expect(http.MethodDelete, nil, http.StatusOK)
	if got := api.offsets(); len(got) != 0 {
		t.Fatalf("GET after a reset shows %v, want no offsets", got)
	}
	if got := groupOffsets(t, adm, group); len(got) != 0 {
		t.Fatalf("after a reset the group still has %v", got)
	}
	api.lifecycle("resume", "RUNNING")
	api.waitOffsets(full, "the replay after the reset")
	if n := applied(t); n != 2*input+replayed {
		t.Fatalf("after a reset the sink applied %d records in all, want %d (the whole input again)", n, 2*input+replayed)
	}
	t.Logf("%s: applied %d, then %d after rewinding partition 0 to %d, then %d after a reset",
		guarantee, input, input+replayed, rewindTo, 2*input+replayed)
}

// A change is refused while the consumer group has members (the connector
// still runs in another process): the group's offsets cannot be changed
// then, and nor is the sink's checkpoint, so the refused request changes
// nothing. Once the group is empty the same change goes through.
func TestOffsetsRefusedWhileGroupHasMembers(t *testing.T) {
	for _, guarantee := range []string{"exactly_once", "at_least_once"} {
		t.Run(guarantee, func(t *testing.T) {
			brokers := testenv.Kafka(t)
			in := testenv.KafkaTopic(t, brokers, partitions)
			produce(t, brokers, in)
			sink, _ := postgresSink(t, brokers, guarantee == "exactly_once")
			group := testenv.UniqueName(t, "g", "-", 200)
			api := start(t, parse(t, brokers, guarantee, in, group, sink))
			full := connector.Checkpoint{}
			for p := range int32(partitions) {
				full[connector.TopicPartition{Topic: in, Partition: p}] = perPartition
			}
			api.waitOffsets(full, "the first pass")
			api.lifecycle("stop", "STOPPED")

			other := testenv.KafkaClient(t, brokers, kgo.ConsumerGroup(group), kgo.ConsumeTopics(in))
			adm := kadm.NewClient(testenv.KafkaClient(t, brokers))
			api.wait("another member in the group", func() (bool, string) {
				pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				other.PollRecords(pctx, 1) // joins; nothing is left to read
				pcancel()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				groups, err := adm.DescribeGroups(ctx, group)
				if err != nil {
					return false, err.Error()
				}
				g := groups[group]
				return g.State == "Stable" && len(g.Members) == 1, fmt.Sprintf("group %s, %d members", g.State, len(g.Members))
			})
			p0 := connector.TopicPartition{Topic: in, Partition: 0}
			for _, req := range []struct {
				method string
				body   []byte
			}{{http.MethodPatch, offsetsBody(connector.Checkpoint{p0: rewindTo})}, {http.MethodDelete, nil}} {
				code, out := api.do(req.method, "/offsets", req.body)
				if code != http.StatusInternalServerError || !strings.Contains(string(out), "has members, so its offsets cannot be changed") {
					t.Errorf("%s /offsets with another member in the group: %d %s, want 500 saying the group has members", req.method, code, out)
				}
				if got := api.offsets(); !maps.Equal(got, full) {
					t.Fatalf("a refused %s changed the offsets to %v", req.method, got)
				}
			}
			other.LeaveGroup()
			api.wait("the group empty", func() (bool, string) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				groups, err := adm.DescribeGroups(ctx, group)
				if err != nil {
					return false, err.Error()
				}
				return len(groups[group].Members) == 0, fmt.Sprintf("%d members", len(groups[group].Members))
			})
			api.expect(http.MethodPatch, offsetsBody(connector.Checkpoint{p0: rewindTo}), http.StatusOK)
			if got := api.offsets(); got[p0] != rewindTo {
				t.Fatalf("GET after PATCH shows %v, want partition 0 at %d", got, rewindTo)
			}
		})
	}
}

// parse is the config of connector name reading topic in through group
// and writing to sink (a sink: or sinks: section).
func parse(t *testing.T, brokers []string, guarantee, in, group, sink string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`kafka:
  brokers: [%s]
connectors:
  - name: %s
    guarantee: %s
    commit.interval: 100ms
    source: {type: kafka, topics: [%s], group: %s, session_timeout: 10s}
%s
`, strings.Join(brokers, ","), name, guarantee, in, group, sink)
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, yaml)
	}
	return cfg
}

// produce writes perPartition records to each partition of topic, with
// unique event IDs.
func produce(t *testing.T, brokers []string, topic string) {
	t.Helper()
	cl := testenv.KafkaClient(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range input {
		recs = append(recs, &kgo.Record{
			Topic:     topic,
			Partition: int32(i % partitions),
			Key:       fmt.Appendf(nil, "k-%d", i),
			Value:     fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i%1000),
			Headers:   []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func kafkaSink(t *testing.T, brokers []string, _ bool) (string, func(*testing.T) int) {
	out := testenv.KafkaTopic(t, brokers, partitions)
	return fmt.Sprintf("    sink: {type: kafka, topic: %s}", out), func(t *testing.T) int {
		return countOutput(t, brokers, out)
	}
}

func postgresSink(t *testing.T, _ []string, exactlyOnce bool) (string, func(*testing.T) int) {
	dsn := testenv.Postgres(t)
	return fmt.Sprintf("    sink: {type: postgres, dsn: %q, table: public.events, auto_create: true, test_apply_counter: true}", dsn),
		func(t *testing.T) int { return appliedRows(t, dsn, exactlyOnce) }
}

func redisSink(t *testing.T, _ []string, _ bool) (string, func(*testing.T) int) {
	addr, prefix := testenv.Redis(t)
	return fmt.Sprintf("    sink: {type: redis, addr: %q, key_prefix: %q, key: \"ev:{event_id}\", test_apply_counter: true}", addr, prefix),
		func(t *testing.T) int { return appliedKeys(t, addr, prefix) }
}

// fanoutSink writes to Kafka and PostgreSQL: two-phase commit with
// exactly_once, each sink in turn with at_least_once. Every input record is
// applied to both, so applied requires both to agree.
func fanoutSink(t *testing.T, brokers []string, exactlyOnce bool) (string, func(*testing.T) int) {
	out := testenv.KafkaTopic(t, brokers, partitions)
	dsn := testenv.Postgres(t)
	yaml := fmt.Sprintf(`    sinks:
      - {type: kafka, topic: %s}
      - {type: postgres, dsn: %q, table: public.events, auto_create: true, test_apply_counter: true}`, out, dsn)
	return yaml, func(t *testing.T) int {
		k, pg := countOutput(t, brokers, out), appliedRows(t, dsn, exactlyOnce)
		if k != pg {
			t.Fatalf("the Kafka sink has %d records, PostgreSQL applied %d", k, pg)
		}
		return k
	}
}

// countOutput counts the committed records of topic, reading each
// partition with read_committed up to its last stable offset (control
// records are kept, so the end is recognised when it is a marker).
func countOutput(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(testenv.KafkaClient(t, brokers))
	var stable kadm.ListedOffsets
	for {
		highs, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if stable, err = adm.ListCommittedOffsets(ctx, topic); err != nil {
			t.Fatal(err)
		}
		open := false
		stable.Each(func(lo kadm.ListedOffset) {
			if hw, ok := highs.Lookup(lo.Topic, lo.Partition); ok && lo.Offset < hw.Offset {
				open = true
			}
		})
		if !open {
			break
		}
		time.Sleep(100 * time.Millisecond) // a transaction on the output is still open
	}
	remaining := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	stable.Each(func(lo kadm.ListedOffset) {
		if lo.Offset > 0 {
			remaining[lo.Partition], parts[lo.Partition] = lo.Offset, kgo.NewOffset().AtStart()
		}
	})
	if len(remaining) == 0 {
		return 0
	}
	cl := testenv.KafkaClient(t, brokers,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	n := 0
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %d partitions not read to their end: %v", topic, len(remaining), ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok {
				return
			}
			if r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
			if r.Offset < end && !r.Attrs.IsControl() {
				n++
			}
		})
	}
	return n
}

// appliedRows is the PostgreSQL sink's applications: the sum of the
// test-mode apply counters. With exactly_once (upsert) each event has one
// row whatever the replays, an UPSERT keyed on the event ID; with
// at_least_once every application inserts a row.
func appliedRows(t *testing.T, dsn string, upsert bool) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, applied int
	if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(sum(apply_count), 0) FROM public.events").Scan(&rows, &applied); err != nil {
		t.Fatal(err)
	}
	if want := applied; upsert && rows != input || !upsert && rows != want {
		t.Fatalf("%d rows in public.events for %d applications of %d events (upsert %v)", rows, applied, input, upsert)
	}
	return applied
}

// appliedKeys is the Redis sink's applications: the sum of the test-mode
// apply counters (INCRed on every write of an event); each event has one
// data key whatever the replays.
func appliedKeys(t *testing.T, addr, prefix string) int {
	t.Helper()
	// A SCAN walks the whole shared keyspace, other tests' keys too (a
	// test beside this one can hold a million): pages of 10,000, and
	// time for a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	applied, counters := 0, 0
	iter := rdb.Scan(ctx, 0, prefix+sinkredis.ApplyCounterPrefix+"*", 10000).Iterator()
	for iter.Next(ctx) {
		v, err := rdb.Get(ctx, iter.Val()).Int()
		if err != nil {
			t.Fatal(err)
		}
		applied += v
		counters++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	data, err := scanCount(ctx, rdb, prefix+"ev:*")
	if err != nil {
		t.Fatal(err)
	}
	if counters != input || data != input {
		t.Fatalf("%d apply counters and %d data keys under %s, want one of each per event (%d)", counters, data, prefix, input)
	}
	return applied
}

func scanCount(ctx context.Context, rdb *goredis.Client, pattern string) (int, error) {
	n := 0
	iter := rdb.Scan(ctx, 0, pattern, 10000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// groupOffsets reads the consumer group's committed offsets.
func groupOffsets(t *testing.T, adm *kadm.Client, group string) connector.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	cp := connector.Checkpoint{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.At >= 0 {
			cp[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.At
		}
	})
	return cp
}

// adminAPI is a daemon's admin API served over HTTP, as a client uses it.
type adminAPI struct {
	t   *testing.T
	url string
}

// start runs cfg's connectors in a daemon of this process, with its admin
// API on a loopback HTTP server; both stop when the test ends.
func start(t *testing.T, cfg *config.Config) *adminAPI {
	t.Helper()
	cfg.InstanceID = "a"
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := daemon.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	srv := httptest.NewServer(admin.New(d.API(), log).Handler())
	t.Cleanup(srv.Close)
	return &adminAPI{t: t, url: srv.URL + "/connectors/" + name}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (a *adminAPI) do(method, path string, body []byte) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// expect sends method to the offsets endpoint and requires the status code.
func (a *adminAPI) expect(method string, body []byte, code int) {
	a.t.Helper()
	if got, out := a.do(method, "/offsets", body); got != code {
		a.t.Fatalf("%s /offsets %s: %d %s, want %d", method, body, got, out, code)
	}
}

// offsets is GET /offsets.
func (a *adminAPI) offsets() connector.Checkpoint {
	a.t.Helper()
	code, out := a.do(http.MethodGet, "/offsets", nil)
	if code != http.StatusOK {
		a.t.Fatalf("GET /offsets: %d %s", code, out)
	}
	var got admin.Offsets
	if err := json.Unmarshal(out, &got); err != nil {
		a.t.Fatalf("GET /offsets: %v: %s", err, out)
	}
	cp := connector.Checkpoint{}
	for _, po := range got.Offsets {
		cp[connector.TopicPartition{Topic: po.Partition.Topic, Partition: po.Partition.Partition}] = po.Offset.Offset
	}
	return cp
}

// waitOffsets waits until GET /offsets shows want: the connector has
// committed up to there.
func (a *adminAPI) waitOffsets(want connector.Checkpoint, what string) {
	a.t.Helper()
	a.wait(what, func() (bool, string) {
		got := a.offsets()
		return maps.Equal(got, want), fmt.Sprintf("offsets %v, want %v", got, want)
	})
}

// lifecycle sends PUT /{verb} and waits for the connector's state.
func (a *adminAPI) lifecycle(verb, state string) {
	a.t.Helper()
	if code, out := a.do(http.MethodPut, "/"+verb, nil); code/100 != 2 {
		a.t.Fatalf("PUT /%s: %d %s", verb, code, out)
	}
	a.wait("state "+state, func() (bool, string) {
		code, out := a.do(http.MethodGet, "/status", nil)
		var st admin.ConnectorStatus
		if code != http.StatusOK || json.Unmarshal(out, &st) != nil {
			return false, fmt.Sprintf("GET /status: %d %s", code, out)
		}
		return st.Connector.State == state, "state " + st.Connector.State + ": " + st.Connector.Trace
	})
}

// wait polls cond until it holds; the bound only keeps a broken run from
// hanging (a drain of a few hundred records takes seconds).
func (a *adminAPI) wait(what string, cond func() (bool, string)) {
	a.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("waiting for %s: %s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// offsetsBody is a PATCH body setting cp.
func offsetsBody(cp connector.Checkpoint) []byte {
	var b strings.Builder
	b.WriteString(`{"offsets": [`)
	for i, tp := range cp.Partitions() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"partition": {"kafka_topic": %q, "kafka_partition": %d}, "offset": {"kafka_offset": %s}}`,
			tp.Topic, tp.Partition, strconv.FormatInt(cp[tp], 10))
	}
	b.WriteString("]}")
	return []byte(b.String())
}
