package daemon_test

// Transactions against the real Apache Kafka that `make services` starts
// (testenv.Kafka): skipped with -short, failing when Kafka is not there.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/metrics"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

// kafkaCopyYAML is an exactly-once Kafka → Kafka connector whose gate can
// freeze it inside an open transaction. Its batch closes at 11 records;
// the long commit interval keeps a batch open until then.
const kafkaCopyYAML = `
instance_id: INSTANCE
kafka:
  brokers: [BROKERS]
connectors:
  - name: copy
    commit.interval: 20s
    batch.max.records: 11
    source: {type: kafka, topics: [IN], group: GROUP}
    transforms:
      - type: test_gate
        name: GATE
    sink: {type: kafka, topic: OUT}
`

const kafkaToken = "kafka-test-token"

// kafkaRig is a daemon on the real Kafka with the admin API in front.
type kafkaRig struct {
	brokers []string
	in, out string
	cfg     *config.Config
	d       *daemon.Daemon
	api     http.Handler
	gate    *e2e.Gate
	adm     *kadm.Client
}

func newKafkaRig(t *testing.T, gateFrom int64) *kafkaRig {
	t.Helper()
	brokers := testenv.Kafka(t)
	topics := testenv.KafkaTopics(t, brokers, 2, 1)
	r := &kafkaRig{brokers: brokers, in: topics[0], out: topics[1]}
	gateName := testenv.UniqueName(t, "gate", "-", 100)
	r.gate = e2e.NewGate(gateName, gateFrom)
	t.Cleanup(r.gate.Release)
	yaml := strings.NewReplacer("INSTANCE", testenv.UniqueName(t, "i", "-", 60), "BROKERS", strings.Join(brokers, ","),
		"IN", r.in, "OUT", r.out, "GROUP", testenv.UniqueName(t, "g", "-", 200), "GATE", gateName).Replace(kafkaCopyYAML)
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r.cfg = cfg
	r.d, err = daemon.New(cfg, e2e.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.d.Metrics = metrics.New(r.d)
	if err := r.d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.d.Stop)
	r.api = admin.New(r.d.API(), slog.New(slog.DiscardHandler), admin.WithToken(kafkaToken),
		admin.WithTransactions(r.d.API()), admin.WithMetrics(r.d.Metrics.Registry)).Handler()
	r.adm = kadm.NewClient(testenv.KafkaClient(t, brokers))
	return r
}

// call sends an authenticated request to the admin API and checks its
// status code; out, if not nil, receives the JSON body.
func (r *kafkaRig) call(t *testing.T, method, path string, want int, out any) {
	t.Helper()
	rec := send(r.api, method, path, "Bearer "+kafkaToken)
	if rec.Code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, rec.Code, want, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
		}
	}
}

// produceInput writes records i in [from, to) to the input topic, as JSON
// {"i": n} with a unique event-id header.
func (r *kafkaRig) produceInput(t *testing.T, from, to int) {
	t.Helper()
	cl := testenv.KafkaClient(t, r.brokers, kgo.DefaultProduceTopic(r.in))
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "%s-%d", r.in, i)}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// stableOffsets returns partition 0's last stable offset (how far
// read_committed consumers may read) and high watermark.
func (r *kafkaRig) stableOffsets(t *testing.T, topic string) (lso, hwm int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	committed, err := r.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	l, _ := committed.Lookup(topic, 0)
	h, _ := ends.Lookup(topic, 0)
	return l.Offset, h.Offset
}

// send serves one request, with auth as its Authorization header if set.
func send(h http.Handler, method, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A producer that hangs inside a transaction holds every read_committed
// consumer of its partition at the transaction's first offset. GET
// /transactions finds it on the cluster, and the abort fences it: the last
// stable offset moves past it, a read_committed consumer reads on (without
// the aborted record), and the hung producer can no longer commit.
func TestHangingTransactionOnKafka(t *testing.T) {
	r := newKafkaRig(t, 1<<62) // the gate never closes here
	ctx := context.Background()
	stuckTopic := testenv.KafkaTopic(t, r.brokers, 1)
	id := testenv.UniqueTransactionalID(t)
	hung := abandonTransaction(t, r.brokers, id, stuckTopic)
	plain := testenv.KafkaClient(t, r.brokers, kgo.DefaultProduceTopic(stuckTopic))
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("after the hung transaction")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if lso, hwm := r.stableOffsets(t, stuckTopic); lso != 0 || hwm != 2 {
		t.Fatalf("before the abort: last stable offset %d, high watermark %d; want 0 and 2 (held by the open transaction)", lso, hwm)
	}

	if rec := send(r.api, "GET", "/transactions", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /transactions without the token: %d", rec.Code)
	}
	if rec := send(r.api, "POST", "/transactions/"+url.PathEscape(id)+"/abort", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("abort without the token: %d", rec.Code)
	}

	var rep admin.TransactionsReport
	r.call(t, "GET", "/transactions", 200, &rep)
	listed, ok := find(rep.Cluster, id)
	if !ok || !listed.Open || listed.State != "Ongoing" || listed.Since == nil || listed.TimeoutMS != 300000 ||
		len(listed.Partitions) != 1 || listed.Partitions[0] != (admin.TxnPartition{Topic: stuckTopic, Partition: 0}) {
		t.Fatalf("GET /transactions: %s is %+v, want Ongoing on %s/0 with a 5m timeout", id, listed, stuckTopic)
	}
	if len(rep.Connectors) != 1 || rep.Connectors[0].Connector != "copy" ||
		rep.Connectors[0].TransactionalID != pipeline.TransactionalID("copy", r.cfg.InstanceID) {
		t.Fatalf("GET /transactions: connectors %+v, want copy's transactional ID", rep.Connectors)
	}
	r.call(t, "GET", "/transactions?older_than_ms=0", 200, &rep)
	if h, _ := find(rep.Cluster, id); !h.Hanging || !slices.Contains(rep.Hanging, id) {
		t.Fatalf("with older_than_ms=0 the open transaction is not hanging: %+v", rep)
	}

	var after admin.Transaction
	r.call(t, "POST", "/transactions/"+url.PathEscape(id)+"/abort", 200, &after)
	if after.TransactionalID != id || after.Open || after.ProducerID != listed.ProducerID || after.ProducerEpoch <= listed.ProducerEpoch {
		t.Fatalf("after the abort: %+v, want not open, same producer ID %d, epoch above %d", after, listed.ProducerID, listed.ProducerEpoch)
	}
	// The abort marker makes 3 offsets, and the stable offset passes it.
	waitFor(t, "the last stable offset past the aborted transaction", func() bool {
		lso, hwm := r.stableOffsets(t, stuckTopic)
		return lso == 3 && hwm == 3
	})
	consumer := testenv.KafkaClient(t, r.brokers, kgo.ConsumeTopics(stuckTopic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var read []string
	for len(read) == 0 {
		fs := consumer.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatal("a read_committed consumer made no progress past the aborted transaction")
		}
		fs.EachRecord(func(rec *kgo.Record) { read = append(read, string(rec.Value)) })
	}
	if len(read) != 1 || read[0] != "after the hung transaction" {
		t.Fatalf("read_committed read %q, want only the record after the aborted transaction", read)
	}
	if err := hung.EndTransaction(ctx, kgo.TryCommit); !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the hung producer's commit after the abort: %v, want PRODUCER_FENCED", err)
	}

	r.call(t, "POST", "/transactions/"+url.PathEscape(id)+"/abort", http.StatusConflict, nil)
	r.call(t, "POST", "/transactions/"+url.PathEscape(id+"-never-used")+"/abort", http.StatusNotFound, nil)
}

// A running connector's own transaction is listed with it, and is not
// aborted without force. Forced, the connector's producer is fenced: the
// batch in flight fails to commit, the connector rejoins and re-reads it,
// and the output stays exactly once.
func TestForcedAbortOfRunningConnectorOnKafka(t *testing.T) {
	const n = 11 // one batch: batch.max.records
	r := newKafkaRig(t, 10)
	r.produceInput(t, 0, 10)
	e2e.WaitClosed(t, r.gate.Started(), "the connector read its first records")
	// Records 0..9 are in the open transaction; record 10 freezes the
	// connector inside it.
	r.produceInput(t, 10, n)
	e2e.WaitClosed(t, r.gate.Reached(), "the connector frozen mid-transaction")

	ownID := pipeline.TransactionalID("copy", r.cfg.InstanceID)
	var own admin.Transaction
	waitFor(t, "the connector's transaction open on the coordinator", func() bool {
		var rep admin.TransactionsReport
		r.call(t, "GET", "/transactions", 200, &rep)
		own, _ = find(rep.Connectors, ownID)
		return own.Open
	})
	if own.Connector != "copy" || own.ConnectorState != "RUNNING" || len(own.Partitions) == 0 {
		t.Fatalf("the connector's transaction: %+v", own)
	}
	path := "/transactions/" + url.PathEscape(ownID) + "/abort"
	r.call(t, "POST", path, http.StatusConflict, nil)
	r.call(t, "POST", path+"?force=false", http.StatusConflict, nil)
	var after admin.Transaction
	r.call(t, "POST", path+"?force=true", 200, &after)
	if after.Open || after.ProducerEpoch <= own.ProducerEpoch || after.Connector != "copy" {
		t.Fatalf("after the forced abort: %+v (before: epoch %d)", after, own.ProducerEpoch)
	}

	r.gate.Release()
	waitFor(t, "the connector to commit every input after being fenced", func() bool {
		cp, err := r.d.Offsets(context.Background(), "copy")
		return err == nil && cp[connector.TopicPartition{Topic: r.in, Partition: 0}] == n
	})
	st, _ := r.d.Status("copy")
	if st.Aborts["fenced"] == 0 {
		t.Errorf("the fenced batch was not counted as fenced: aborts %v", st.Aborts)
	}
	spec, err := pipeline.Decode(r.cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: r.brokers})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.Expected != n {
		t.Fatalf("after the forced abort: %s, want %d outputs exactly once", rep, n)
	}

	// The client metrics of the connector's sessions, the fenced one and
	// the one after, and of the admin API's clients, lint clean.
	rec := send(r.api, "GET", "/metrics", "Bearer "+kafkaToken)
	for _, want := range []string{
		`connectd_kafka_fetch_records_total{client="pipeline",connector="copy",node_id=`,
		`connectd_kafka_produce_records_total{client="pipeline",connector="copy",node_id=`,
		`connectd_kafka_connects_total{client="abort",connector="",node_id=`,
		`connectd_kafka_connects_total{client="admin",connector="",node_id=`,
	} {
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET /metrics (%d) has no %s", rec.Code, want)
		}
	}
	problems, err := testutil.GatherAndLint(r.d.Metrics.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
