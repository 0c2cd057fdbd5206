// Package metrics exposes connectd's Prometheus metrics on a registry of its
// own (never the global one): Go, process and build-info collectors, every
// connector's counters and state read from the runtime when scraped, and
// commit-duration and end-to-end latency histograms fed by the commit loop,
// and franz-go's client metrics through kprom (see KafkaHook).
// Names follow Prometheus conventions: connectd_ prefix, _total counters,
// _seconds durations; promlint is run on them in the tests.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/connectd/connectd/connector"
)

// Source is what the metrics read from the daemon at scrape time.
type Source interface {
	Names() []string
	Status(name string) (connector.Status, bool)
}

// Metrics is connectd's registry and its histograms.
type Metrics struct {
	Registry      *prometheus.Registry
	commitSeconds *prometheus.HistogramVec
	latency       *batchHistogramVec
	fenced        *prometheus.CounterVec

	kafkaMu sync.Mutex
	kafka   map[kafkaKey]*kafkaClients
}

// New registers connectd's metrics on a new registry; src is read at each
// scrape.
func New(src Source) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connectd_commit_duration_seconds",
			Help:    "Time to commit one batch (output and checkpoint), by connector.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
		}, []string{"connector"}),
		latency: newBatchHistogramVec("connectd_end_to_end_latency_seconds",
			"Time from an input record's timestamp to the commit that made its output visible, by connector.",
			prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. ~33s
			"connector"),
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectd_fenced_total",
			Help: "Times a connector's session was fenced by a newer owner.",
		}, []string{"connector"}),
		kafka: map[kafkaKey]*kafkaClients{},
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		m.commitSeconds, m.latency, m.fenced,
		&statusCollector{src: src},
	)
	return m
}

// Observer returns the connector.Observer that feeds name's histograms.
func (m *Metrics) Observer(name string) connector.Observer {
	return &observer{
		commit:  m.commitSeconds.WithLabelValues(name),
		latency: m.latency.with(name),
	}
}

// Forget drops every series of a deleted connector: its histograms, its
// fencing count and its Kafka clients' metrics, so /metrics stops showing
// it and a connector created later under the same name starts from zero.
// (Its counters and state, read from the daemon at scrape time, go with
// it by themselves.)
func (m *Metrics) Forget(name string) {
	m.commitSeconds.DeleteLabelValues(name)
	m.latency.delete(name)
	m.fenced.DeleteLabelValues(name)
	m.removeKafka(name)
}

// Fenced counts one fencing of name's session.
func (m *Metrics) Fenced(name string) { m.fenced.WithLabelValues(name).Inc() }

type observer struct {
	commit  prometheus.Observer
	latency *batchHistogram
}

func (o *observer) Committed(commit time.Duration, at time.Time, timestamps []time.Time) {
	o.commit.Observe(commit.Seconds())
	o.latency.observeSince(at, timestamps)
}

// statusCollector reads every connector's counters, state and lag when
// scraped, so the commit loop pays nothing for them.
type statusCollector struct{ src Source }

var (
	descRecordsIn   = prometheus.NewDesc("connectd_records_in_total", "Input records in committed batches.", []string{"connector"}, nil)
	descRecordsOut  = prometheus.NewDesc("connectd_records_out_total", "Output records in committed batches (dead-lettered records included).", []string{"connector"}, nil)
	descBatches     = prometheus.NewDesc("connectd_batches_committed_total", "Committed batches (Kafka transactions or sink transactions).", []string{"connector"}, nil)
	descAborts      = prometheus.NewDesc("connectd_batches_aborted_total", "Batches that did not commit, by reason: abortable, fenced, commit_unknown, fatal.", []string{"connector", "reason"}, nil)
	descDLQ         = prometheus.NewDesc("connectd_dead_letter_records_total", "Records routed to the dead-letter queue (in batches processed, committed or not).", []string{"connector"}, nil)
	descLag         = prometheus.NewDesc("connectd_consumer_lag_records", "Offsets between the committed checkpoint and the last stable offset, per input partition.", []string{"connector", "topic", "partition"}, nil)
	descState       = prometheus.NewDesc("connectd_connector_state", "1 for the connector's current state, 0 for the others.", []string{"connector", "state"}, nil)
	descInDoubt     = prometheus.NewDesc("connectd_twophase_in_doubt_transactions", "Prepared transactions of a two-phase connector found by its last recovery and not resolved yet.", []string{"connector"}, nil)
	descWinRecords  = prometheus.NewDesc("connectd_window_records_total", "Records a window stage took, by outcome: aggregated, late (in batches processed, committed or not).", []string{"connector", "outcome"}, nil)
	descWinOpen     = prometheus.NewDesc("connectd_window_open_windows", "Open windows held by a window stage.", []string{"connector"}, nil)
	descWinBytes    = prometheus.NewDesc("connectd_window_state_bytes", "Estimated memory of a window stage's open windows.", []string{"connector"}, nil)
	descWinEmitted  = prometheus.NewDesc("connectd_window_results_total", "Window results emitted (final windows or revisions).", []string{"connector"}, nil)
	descWinRestore  = prometheus.NewDesc("connectd_window_state_restores_total", "Partition states a window stage loaded from its sink (at start, after every abort and rebalance).", []string{"connector"}, nil)
	descWinRestored = prometheus.NewDesc("connectd_window_restored_windows_total", "Windows (open, or kept for late updates) the state loads of a window stage brought back.", []string{"connector"}, nil)
	descWinIdle     = prometheus.NewDesc("connectd_window_idle_advances_total", "Idle partitions whose watermark a window stage raised (watermark.idle_timeout) to close windows.", []string{"connector"}, nil)
	descWinIdleLate = prometheus.NewDesc("connectd_window_idle_late_records_total", "Late records (counted among outcome=late) whose window an idle advance had closed: the input came after its partition was declared idle.", []string{"connector"}, nil)
	descResolved    = prometheus.NewDesc("connectd_twophase_resolved_total", "Prepared transactions a two-phase connector's recovery resolved, by outcome: committed, rolled_back.", []string{"connector", "outcome"}, nil)
)

var states = []connector.State{connector.Unassigned, connector.Running, connector.Paused, connector.Stopped, connector.Failed, connector.Finished}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecordsIn, descRecordsOut, descBatches, descAborts, descDLQ, descLag, descState, descInDoubt, descResolved,
		descWinRecords, descWinOpen, descWinBytes, descWinEmitted, descWinRestore, descWinRestored, descWinIdle, descWinIdleLate} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.src.Names() {
		st, ok := c.src.Status(name)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descRecordsIn, prometheus.CounterValue, float64(st.RecordsIn), name)
		ch <- prometheus.MustNewConstMetric(descRecordsOut, prometheus.CounterValue, float64(st.RecordsOut), name)
		ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(st.Commits), name)
		ch <- prometheus.MustNewConstMetric(descDLQ, prometheus.CounterValue, float64(st.DeadLettered), name)
		for reason, n := range st.Aborts {
			ch <- prometheus.MustNewConstMetric(descAborts, prometheus.CounterValue, float64(n), name, reason)
		}
		for _, p := range st.Partitions {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(p.Lag), name, p.Topic, strconv.Itoa(int(p.Partition)))
		}
		if tp := st.TwoPhase; tp != nil {
			ch <- prometheus.MustNewConstMetric(descInDoubt, prometheus.GaugeValue, float64(tp.InDoubt), name)
			ch <- prometheus.MustNewConstMetric(descResolved, prometheus.CounterValue, float64(tp.ResolvedCommitted), name, "committed")
			ch <- prometheus.MustNewConstMetric(descResolved, prometheus.CounterValue, float64(tp.ResolvedRolledBack), name, "rolled_back")
		}
		if w := st.Window; w != nil {
			ch <- prometheus.MustNewConstMetric(descWinRecords, prometheus.CounterValue, float64(w.Aggregated), name, "aggregated")
			ch <- prometheus.MustNewConstMetric(descWinRecords, prometheus.CounterValue, float64(w.Late), name, "late")
			ch <- prometheus.MustNewConstMetric(descWinOpen, prometheus.GaugeValue, float64(w.OpenWindows), name)
			ch <- prometheus.MustNewConstMetric(descWinBytes, prometheus.GaugeValue, float64(w.StateBytes), name)
			ch <- prometheus.MustNewConstMetric(descWinEmitted, prometheus.CounterValue, float64(w.Emitted), name)
			ch <- prometheus.MustNewConstMetric(descWinRestore, prometheus.CounterValue, float64(w.Restores), name)
			ch <- prometheus.MustNewConstMetric(descWinRestored, prometheus.CounterValue, float64(w.RestoredWindows), name)
			ch <- prometheus.MustNewConstMetric(descWinIdle, prometheus.CounterValue, float64(w.IdleAdvances), name)
			ch <- prometheus.MustNewConstMetric(descWinIdleLate, prometheus.CounterValue, float64(w.IdleLate), name)
		}
		for _, s := range states {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, name, string(s))
		}
	}
}
