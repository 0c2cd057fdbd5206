package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func kafkaCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func kafkaClient(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("t")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close) // a second Close is a no-op
	return cl
}

func produce(t *testing.T, cl *kgo.Client, n int) {
	t.Helper()
	for range n {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// gather gathers m's registry, failing on any error (a broken or
// inconsistent collector), and lints it: every metric, franz-go's
// included, must pass promlint.
func gather(t *testing.T, m *Metrics) []*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	return mfs
}

// sum adds the values of name's series whose labels include want.
func sum(mfs []*dto.MetricFamily, name string, want map[string]string) (total float64, series int) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			series++
			switch {
			case m.Counter != nil:
				total += m.GetCounter().GetValue()
			case m.Gauge != nil:
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total, series
}

// waitSum waits until name's series with labels add up to want: kgo calls
// the produce hook after the record's promise, so a count may lag behind
// ProduceSync by a moment.
func waitSum(t *testing.T, m *Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := sum(gather(t, m), name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One hook on several clients, alive together and one after another, as a
// connector builds them: no duplicate registration, the counters add up
// every client's traffic, and closing a client keeps them.
func TestKafkaHookSharedByClients(t *testing.T) {
	c := kafkaCluster(t)
	m := New(fakeSource{})
	copyLabels := map[string]string{"connector": "copy", "client": "pipeline"}
	hook := m.KafkaHook("copy", "pipeline")
	if again := m.KafkaHook("copy", "pipeline"); again != hook {
		t.Fatal("a second KafkaHook for the same labels is a new hook")
	}
	a := kafkaClient(t, c, kgo.WithHooks(hook))
	b := kafkaClient(t, c, kgo.WithHooks(hook))
	other := kafkaClient(t, c, kgo.WithHooks(m.KafkaHook("other", "pipeline")))
	produce(t, a, 2)
	produce(t, b, 3)
	produce(t, other, 1)

	// 2 + 3 from two clients.
	waitSum(t, m, "connectd_kafka_produce_records_total", copyLabels, 5)
	waitSum(t, m, "connectd_kafka_produce_records_total", map[string]string{"connector": "other"}, 1)
	mfs := gather(t, m)
	if _, n := sum(mfs, "connectd_kafka_connects_total", copyLabels); n == 0 {
		t.Fatal("no connectd_kafka_connects_total for copy")
	}
	var produces uint64
	for _, mf := range mfs {
		if name := mf.GetName(); strings.HasPrefix(name, "connectd_kafka_buffered") && strings.HasSuffix(name, "_total") {
			t.Errorf("kprom's buffered gauge %s is exported", name)
		}
		if mf.GetName() != "connectd_kafka_request_seconds" {
			continue
		}
		for _, met := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range met.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["connector"] == "copy" && labels["request"] == "Produce" {
				produces += met.GetHistogram().GetSampleCount()
			}
		}
	}
	// Each of the five records was flushed on its own: a Produce each.
	if produces == 0 {
		t.Error("connectd_kafka_request_seconds{request=\"Produce\"} observed no request of copy's clients")
	}

	a.Close()
	c2 := kafkaClient(t, c, kgo.WithHooks(hook))
	produce(t, c2, 1)
	// After a client closed and another opened.
	waitSum(t, m, "connectd_kafka_produce_records_total", copyLabels, 6)
}

// Buffered gauges sum the open clients: records buffered with manual
// flushing are counted until flushed, and a closed client no longer
// counts.
func TestKafkaHookBufferedGauges(t *testing.T) {
	c := kafkaCluster(t)
	m := New(fakeSource{})
	hook := m.KafkaHook("copy", "pipeline")
	labels := map[string]string{"connector": "copy", "client": "pipeline"}
	a := kafkaClient(t, c, kgo.WithHooks(hook), kgo.ManualFlushing())
	b := kafkaClient(t, c, kgo.WithHooks(hook), kgo.ManualFlushing())
	for range 2 {
		a.Produce(context.Background(), &kgo.Record{Value: []byte("v")}, nil)
	}
	for range 3 {
		b.Produce(context.Background(), &kgo.Record{Value: []byte("v")}, nil)
	}
	if got, n := sum(gather(t, m), "connectd_kafka_buffered_produce_records", labels); got != 5 || n != 1 {
		t.Fatalf("buffered produce records %v in %d series, want 5 in 1", got, n)
	}
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Close() // fails its buffered records; the client no longer counts
	if got, _ := sum(gather(t, m), "connectd_kafka_buffered_produce_records", labels); got != 0 {
		t.Fatalf("buffered produce records %v after flush and close, want 0", got)
	}
}

// Forgetting a connector and creating its client metrics again under the
// same name neither panics nor leaves a stale or broken collector; the new
// counters start from zero, and none of its series, histograms included,
// outlive Forget.
func TestForgetAndRecreate(t *testing.T) {
	c := kafkaCluster(t)
	m := New(fakeSource{})
	labels := map[string]string{"connector": "copy", "client": "pipeline"}
	for round := range 3 {
		hook := m.KafkaHook("copy", "pipeline")
		offsets := m.KafkaHook("copy", "offsets")
		m.Observer("copy").Committed(time.Millisecond, time.Now(), []time.Time{time.Now()})
		m.Fenced("copy")
		cl := kafkaClient(t, c, kgo.WithHooks(hook))
		produce(t, cl, round+1)
		admin := kafkaClient(t, c, kgo.WithHooks(offsets))
		produce(t, admin, 1)
		waitSum(t, m, "connectd_kafka_produce_records_total", labels, float64(round+1))
		if round == 1 {
			// Removed while a client is still open: it goes on
			// calling its hook, which must stay harmless.
			m.Forget("copy")
			produce(t, cl, 1)
		} else {
			cl.Close()
			m.Forget("copy")
		}
		for _, mf := range gather(t, m) {
			if _, n := sum([]*dto.MetricFamily{mf}, mf.GetName(), map[string]string{"connector": "copy"}); n > 0 {
				t.Fatalf("round %d: %s still has copy's series after Forget", round, mf.GetName())
			}
		}
	}
}
