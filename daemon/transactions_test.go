package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/metrics"
	"github.com/connectd/connectd/pipeline"
)

// abandonTransaction begins a transaction with a fresh transactional ID,
// produces one record into it on topic and leaves it open, as a producer
// that hung or crashed mid-transaction would (its timeout is long, so the
// broker does not abort it meanwhile). It returns the ID and the producer,
// which the caller may use to try to commit later.
func abandonTransaction(t *testing.T, brokers []string, id, topic string) *kgo.Client {
	t.Helper()
	p, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id),
		kgo.TransactionTimeout(5*time.Minute), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(context.Background(), &kgo.Record{Value: []byte("in an abandoned transaction")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return p
}

func find(ts []admin.Transaction, id string) (admin.Transaction, bool) {
	i := slices.IndexFunc(ts, func(t admin.Transaction) bool { return t.TransactionalID == id })
	if i < 0 {
		return admin.Transaction{}, false
	}
	return ts[i], true
}

// The daemon's view of transactions on kfake: its connector's
// transactional ID, an abandoned transaction found open and (with a
// threshold) hanging, the abort refused for a running connector and for
// an unknown ID, and an abort that fences the abandoned producer.
func TestTransactionsReportAndAbort(t *testing.T) {
	c, cfg := setup(t, 100)
	cfg.InstanceID = "t1"
	d := start(t, cfg)
	ctx := context.Background()
	ownID := pipeline.TransactionalID("copy", "t1")
	eventually(t, "a commit", func() bool { st, _ := d.Status("copy"); return st.Commits > 0 })

	p := abandonTransaction(t, c.ListenAddrs(), "stuck", "stuck-topic")
	rep, err := d.Transactions(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Connectors) != 1 || rep.Connectors[0].TransactionalID != ownID || rep.Connectors[0].Connector != "copy" ||
		rep.Connectors[0].ConnectorState != "RUNNING" || rep.Connectors[0].State == "" {
		t.Fatalf("connectors = %+v, want copy's %s, RUNNING, known to the coordinator", rep.Connectors, ownID)
	}
	stuck, ok := find(rep.Cluster, "stuck")
	if !ok || !stuck.Open || stuck.State != "Ongoing" || stuck.Since == nil || stuck.TimeoutMS != 300000 ||
		len(stuck.Partitions) != 1 || stuck.Partitions[0].Topic != "stuck-topic" {
		t.Fatalf("cluster = %+v, want stuck open on one partition of stuck-topic", rep.Cluster)
	}
	rep, err = d.Transactions(ctx, 0) // every open transaction counts as hanging
	if err != nil {
		t.Fatal(err)
	}
	if stuck, _ := find(rep.Cluster, "stuck"); !stuck.Hanging || !slices.Contains(rep.Hanging, "stuck") {
		t.Fatalf("with a zero threshold stuck is not hanging: %+v", rep)
	}

	if _, err := d.AbortTransaction(ctx, ownID, false); !errors.Is(err, admin.ErrTransactionOwned) {
		t.Fatalf("abort of the running connector's transaction: %v, want ErrTransactionOwned", err)
	}
	if _, err := d.AbortTransaction(ctx, "never-used", false); !errors.Is(err, admin.ErrTransactionNotFound) {
		t.Fatalf("abort of an unknown ID: %v, want ErrTransactionNotFound", err)
	}
	after, err := d.AbortTransaction(ctx, "stuck", false)
	if err != nil {
		t.Fatal(err)
	}
	if after.Open || after.State == "Ongoing" || after.ProducerEpoch <= stuck.ProducerEpoch {
		t.Fatalf("after the abort: %+v (before: epoch %d)", after, stuck.ProducerEpoch)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the fenced producer committed its transaction")
	}
	if _, err := d.AbortTransaction(ctx, "stuck", false); !errors.Is(err, admin.ErrTransactionNotOpen) {
		t.Fatalf("second abort: %v, want ErrTransactionNotOpen", err)
	}

	// A STOPPED connector has no producer left: its ID may be fenced
	// without force (here nothing is open, so there is nothing to abort).
	if err := d.StopConnector(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AbortTransaction(ctx, ownID, false); !errors.Is(err, admin.ErrTransactionNotOpen) {
		t.Fatalf("abort for a STOPPED connector: %v, want ErrTransactionNotOpen", err)
	}
}

// Client metrics through the admin API's /metrics while a connector is
// created, deleted and created again under the same name: every scrape
// succeeds and lints clean, the deleted connector's series go, and the
// new one's come back.
func TestKafkaClientMetricsAcrossRecreate(t *testing.T) {
	_, cfg := setup(t, 0)
	d, err := daemon.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.Metrics = metrics.New(d)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	srv := httptest.NewServer(admin.New(d.API(), nil, admin.WithToken("tok"),
		admin.WithMetrics(d.Metrics.Registry), admin.WithTransactions(d.API())).Handler())
	t.Cleanup(srv.Close)

	call := func(method, path, body string, want int) string {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
		}
		return string(b)
	}
	scrape := func() string {
		t.Helper()
		if _, err := d.Metrics.Registry.Gather(); err != nil {
			t.Fatalf("gather: %v", err)
		}
		problems, err := testutil.GatherAndLint(d.Metrics.Registry)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
		return call("GET", "/metrics", "", 200)
	}
	genSeries := `connectd_kafka_produce_records_total{client="pipeline",connector="gen"`
	create := func(round int) {
		t.Helper()
		body := fmt.Sprintf(`{"name": "gen", "config": {"source": {"type": "generator", "count": %d}, "sink": {"type": "kafka", "topic": "gen-out"}}}`, 10*(round+1))
		call("POST", "/connectors", body, 201)
		eventually(t, "gen's records produced", func() bool {
			st, _ := d.Status("gen")
			return st.State == connector.Running && st.Commits > 0 && strings.Contains(scrape(), genSeries)
		})
	}

	for round := range 3 {
		create(round)
		call("GET", "/transactions", "", 200)
		if m := scrape(); !strings.Contains(m, `connectd_kafka_connects_total{client="admin",connector="",node_id=`) {
			t.Fatalf("round %d: no client metrics of the transactions admin client:\n%s", round, grepLines(m, "connectd_kafka_connects_total"))
		}
		call("DELETE", "/connectors/gen", "", 204)
		if m := scrape(); strings.Contains(m, `connector="gen"`) {
			t.Fatalf("round %d: gen's series outlive its deletion:\n%s", round, grepLines(m, `connector="gen"`))
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
