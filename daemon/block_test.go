package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
)

// ends lists the end offsets of topic (its last stable offsets: the test
// writes no transactions).
func ends(t *testing.T, c *kfake.Cluster, topic string) connector.Checkpoint {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lo, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	cp := connector.Checkpoint{}
	lo.Each(func(o kadm.ListedOffset) {
		cp[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	return cp
}

func produce(t *testing.T, c *kfake.Cluster, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "e-%d", i)}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// checkpointIs reports whether the connector's committed checkpoint is
// want, a partition whose stop is 0 (nothing to read) counting as absent.
func checkpointIs(d *daemon.Daemon, name string, want connector.Checkpoint) bool {
	cp, err := d.Offsets(context.Background(), name)
	if err != nil {
		return false
	}
	for tp, o := range want {
		if cp[tp] != o {
			return false
		}
	}
	for tp := range cp {
		if _, ok := want[tp]; !ok {
			return false
		}
	}
	return true
}

func sum(cp connector.Checkpoint) (n int64) {
	for _, o := range cp {
		n += o
	}
	return n
}

// TestBoundedBlock: connectors with a bounded: block in a streaming
// daemon, from the file (until: end; a generator with a count) and
// through POST /connectors (explicit offsets, in JSON), each run until it
// has committed its input up to its stops, then stop themselves: FINISHED
// with a message and no trace, the daemon ready, the checkpoint equal to
// the stops, the output exactly once. A restart of the connector runs it
// again to its stops of then (explicit offsets: the same, so it finishes
// at once); a restart of the daemon runs until: end to the new end. A
// block whose stops cannot be captured (a partition left out) leaves its
// connector FAILED, unstarted, saying why.
func TestBoundedBlock(t *testing.T) {
	c, _ := setup(t, 3000)
	brokers := strings.Join(c.ListenAddrs(), ",")
	cfg, err := config.Parse("block.yaml", []byte(`kafka:
  brokers: [`+brokers+`]
connectors:
  - name: job
    source: {type: kafka, topics: [in], group: job}
    sink: {type: kafka, topic: job-out}
    bounded: {until: end}
  - name: gen
    source: {type: generator, count: 500}
    sink: {type: kafka, topic: gen-out}
    bounded: {until: end}
`))
	if err != nil {
		t.Fatal(err)
	}
	end := ends(t, c, "in")
	d := start(t, cfg)
	api := admin.New(d.API(), slog.New(slog.DiscardHandler)).Handler()
	ctx := context.Background()

	// Half of each partition, through the admin API.
	half := connector.Checkpoint{}
	offsets := map[string]int64{}
	for tp, o := range end {
		half[tp] = o / 2
		offsets[fmt.Sprint(tp.Partition)] = o / 2
	}
	body, _ := json.Marshal(map[string]any{"name": "part", "config": map[string]any{
		"source": map[string]any{"type": "kafka", "topics": []string{"in"}, "group": "part"}, "sink": map[string]any{"type": "kafka", "topic": "part-out"},
		"bounded": map[string]any{"offsets": map[string]any{"in": offsets}}}})
	req := httptest.NewRequest(http.MethodPost, "/connectors", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /connectors: %d %s", rec.Code, rec.Body)
	}

	genStop := connector.Checkpoint{{Topic: "generator:gen"}: 500}
	want := map[string]connector.Checkpoint{"job": end, "gen": genStop, "part": half}
	for name, stops := range want {
		eventually(t, name+" FINISHED", func() bool { return state(d, name) == connector.Finished })
		if !checkpointIs(d, name, stops) {
			cp, err := d.Offsets(ctx, name)
			t.Fatalf("%s: checkpoint %v (%v), want its stops %v", name, cp, err, stops)
		}
		st, _ := d.Status(name)
		if st.Error != "" || !strings.Contains(st.Message, "committed its input up to its stops") {
			t.Errorf("%s: status error %q, message %q", name, st.Error, st.Message)
		}
		cc, _, _ := d.Config(name)
		if rep := checkClean(t, c, cfg, cc); int64(rep.Expected) != sum(stops) {
			t.Errorf("%s: %s, want %d outputs", name, rep, sum(stops))
		}
	}
	if !d.Ready() {
		t.Error("not ready with every connector FINISHED")
	}
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/connectors/job/status", nil))
	var status admin.ConnectorStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &status); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if s := status.Connector; s.State != "FINISHED" || s.Trace != "" || s.Message == "" {
		t.Errorf("GET /connectors/job/status: connector %+v, want FINISHED with a message and no trace", s)
	}

	// More input, then restarts.
	produce(t, c, 3000, 3600)
	if err := d.Restart(ctx, "part"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "part FINISHED again", func() bool { return state(d, "part") == connector.Finished })
	if !checkpointIs(d, "part", half) {
		t.Errorf("part went past its explicit stops after a restart")
	}
	d.Stop()
	newEnd := ends(t, c, "in")
	if sum(newEnd) != 3600 {
		t.Fatalf("input ends %v, want 3600 records", newEnd)
	}
	d = start(t, cfg)
	eventually(t, "job FINISHED at the new end", func() bool {
		return state(d, "job") == connector.Finished && checkpointIs(d, "job", newEnd)
	})
	if rep := checkClean(t, c, cfg, cfg.Connectors[0]); rep.Expected != 3600 {
		t.Errorf("job: %s, want 3600 outputs", rep)
	}

	// Stops that cannot be captured: the connector does not start.
	bad, err := config.ParseConnector("body", []byte(`{"name": "bad", "source": {"type": "kafka", "topics": ["in"], "group": "bad"},
 "sink": {"type": "kafka", "topic": "bad-out"}, "bounded": {"offsets": {"in": {"0": 1}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, *bad, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := d.Status("bad")
	if st.State != connector.Failed || !strings.Contains(st.Error, "in has 3 partitions, not listed: [1 2]") {
		t.Errorf("bad: %s %q, want FAILED naming partitions 1 and 2", st.State, st.Error)
	}
	if cp, err := d.Offsets(ctx, "bad"); err != nil || len(cp) != 0 {
		t.Errorf("bad: checkpoint %v (%v), want none: it must not run", cp, err)
	}
}
