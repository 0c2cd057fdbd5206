package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaNamespace prefixes franz-go's client metrics (connects, bytes and
// records produced and fetched, request latency), exported through kprom:
// connectd_kafka_connects_total, connectd_kafka_produce_records_total, ...
const KafkaNamespace = "connectd_kafka"

// KafkaHook returns the franz-go hook that feeds the client metrics of the
// Kafka clients of one connector in one role; pass it to each of those
// clients with kgo.WithHooks. Every series carries the labels
// connector=<connector> and client=<role> (the daemon's own clients, such
// as the admin API's, have an empty connector). Asking again for the same
// connector and role returns the same hook, so restarting a connector
// continues its counters; Forget drops them.
//
// One hook serves any number of clients, at once or one after another: the
// counters add up their traffic.
func (m *Metrics) KafkaHook(connector, role string) kgo.Hook {
	m.kafkaMu.Lock()
	defer m.kafkaMu.Unlock()
	key := kafkaKey{connector, role}
	if h, ok := m.kafka[key]; ok {
		return h
	}
	reg := &trackingRegisterer{next: prometheus.WrapRegistererWith(
		prometheus.Labels{"connector": connector, "client": role}, m.Registry)}
	h := &kafkaClients{
		Metrics: kprom.NewMetrics(KafkaNamespace,
			kprom.Registerer(reg),
			kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Records, kprom.UncompressedBytes, kprom.ConsistentNaming),
			kprom.Histograms(kprom.RequestDurationE2E),
		),
		reg:  reg,
		live: map[*kgo.Client]struct{}{},
		byRequest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: KafkaNamespace + "_request_seconds",
			Help: "Time from writing a request to a broker to reading its response, by request kind " +
				"(Produce, Fetch, EndTxn, TxnOffsetCommit, Heartbeat, ...): where a commit's time goes.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"request"}),
	}
	// Cannot fail: nothing else registers these names with these labels.
	_ = reg.Register(bufferedCollector{h})
	_ = reg.Register(h.byRequest)
	m.kafka[key] = h
	return h
}

// removeKafka unregisters the client metrics of every role of connector
// (see Forget). A client still open keeps calling its hook harmlessly;
// nothing it counts is exported any more.
func (m *Metrics) removeKafka(connector string) {
	m.kafkaMu.Lock()
	defer m.kafkaMu.Unlock()
	for key, h := range m.kafka {
		if key.connector == connector {
			h.reg.unregisterAll()
			delete(m.kafka, key)
		}
	}
}

type kafkaKey struct{ connector, role string }

// kafkaClients is the hook shared by the Kafka clients of one connector
// role, built on kprom.
//
// kprom.Metrics is made for exactly one client: its OnNewClient creates and
// registers a fresh set of collectors (a second client on the same Metrics
// panics with "duplicate metrics collector registration", and its hooks
// would write to the second set only), its OnClientClosed unregisters them
// all, and its buffered-records gauges read the one client it saw. A
// connector builds several clients from one option list (consumer,
// producer, offsets-topic reader, a new session after fencing), so a hook
// per client is impossible without threading a fresh option through every
// constructor, and the hook callbacks do not say which client calls them.
//
// So kafkaClients shares one kprom.Metrics among all of them: it passes on
// only the first OnNewClient, which registers the collectors once, and
// never OnClientClosed, so the counters sum the traffic of every client
// with these labels, past and present, until Forget unregisters them.
// The embedded Metrics receives every other hook (broker connects, reads,
// writes, produced and fetched batches) unchanged.
//
// kprom's buffered-records gauges are not registered (trackingRegisterer
// drops them): they would read whichever client came first, and their
// names end in _total, which promlint rejects for a gauge. bufferedCollector
// replaces them with gauges summed over the clients still open.
type kafkaClients struct {
	*kprom.Metrics
	reg  *trackingRegisterer
	once sync.Once

	mu   sync.Mutex
	live map[*kgo.Client]struct{}

	// byRequest is request latency by request kind, which kprom's
	// connectd_kafka_request_duration_e2e_seconds (by broker) does not
	// split: a slow commit is a slow Produce (flush), TxnOffsetCommit,
	// Heartbeat or EndTxn, and only the kind says which.
	byRequest *prometheus.HistogramVec
}

// OnBrokerE2E implements kgo.HookBrokerE2E: kprom's per-broker metrics,
// and the latency of every answered request by its kind.
func (k *kafkaClients) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	k.Metrics.OnBrokerE2E(meta, key, e2e)
	if e2e.Err() == nil {
		k.byRequest.WithLabelValues(kmsg.NameForKey(key)).Observe(e2e.DurationE2E().Seconds())
	}
}

// OnNewClient implements kgo.HookNewClient. kgo calls it before the client
// starts any goroutine, so the once also orders the collectors' creation
// before every other hook call of every client.
func (k *kafkaClients) OnNewClient(cl *kgo.Client) {
	k.once.Do(func() { k.Metrics.OnNewClient(cl) })
	k.mu.Lock()
	k.live[cl] = struct{}{}
	k.mu.Unlock()
}

// OnClientClosed implements kgo.HookClientClosed; see kafkaClients for why
// kprom's is not called.
func (k *kafkaClients) OnClientClosed(cl *kgo.Client) {
	k.mu.Lock()
	delete(k.live, cl)
	k.mu.Unlock()
}

func (k *kafkaClients) clients() []*kgo.Client {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]*kgo.Client, 0, len(k.live))
	for cl := range k.live {
		out = append(out, cl)
	}
	return out
}

var (
	descBufferedProduceRecords = prometheus.NewDesc(KafkaNamespace+"_buffered_produce_records",
		"Records buffered in the open clients, not yet produced.", nil, nil)
	descBufferedProduceBytes = prometheus.NewDesc(KafkaNamespace+"_buffered_produce_bytes",
		"Bytes of the records buffered in the open clients, not yet produced.", nil, nil)
	descBufferedFetchRecords = prometheus.NewDesc(KafkaNamespace+"_buffered_fetch_records",
		"Records fetched by the open clients and not yet polled.", nil, nil)
	descBufferedFetchBytes = prometheus.NewDesc(KafkaNamespace+"_buffered_fetch_bytes",
		"Bytes of the records fetched by the open clients and not yet polled.", nil, nil)
)

// bufferedCollector reports the records and bytes buffered in the open
// clients of one kafkaClients, read at scrape time.
type bufferedCollector struct{ k *kafkaClients }

func (b bufferedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBufferedProduceRecords
	ch <- descBufferedProduceBytes
	ch <- descBufferedFetchRecords
	ch <- descBufferedFetchBytes
}

func (b bufferedCollector) Collect(ch chan<- prometheus.Metric) {
	var produceRecs, produceBytes, fetchRecs, fetchBytes int64
	for _, cl := range b.k.clients() {
		produceRecs += cl.BufferedProduceRecords()
		produceBytes += cl.BufferedProduceBytes()
		fetchRecs += cl.BufferedFetchRecords()
		fetchBytes += cl.BufferedFetchBytes()
	}
	ch <- prometheus.MustNewConstMetric(descBufferedProduceRecords, prometheus.GaugeValue, float64(produceRecs))
	ch <- prometheus.MustNewConstMetric(descBufferedProduceBytes, prometheus.GaugeValue, float64(produceBytes))
	ch <- prometheus.MustNewConstMetric(descBufferedFetchRecords, prometheus.GaugeValue, float64(fetchRecs))
	ch <- prometheus.MustNewConstMetric(descBufferedFetchBytes, prometheus.GaugeValue, float64(fetchBytes))
}

// trackingRegisterer registers on next and remembers what it registered, so
// that one connector's client metrics can be unregistered together. It
// drops kprom's buffered-records gauges, the only prometheus.GaugeFunc
// collectors kprom creates (see kafkaClients).
type trackingRegisterer struct {
	next prometheus.Registerer

	mu         sync.Mutex
	registered []prometheus.Collector
}

func (r *trackingRegisterer) Register(c prometheus.Collector) error {
	if _, ok := c.(prometheus.GaugeFunc); ok {
		return nil
	}
	if err := r.next.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.registered = append(r.registered, c)
	r.mu.Unlock()
	return nil
}

// MustRegister registers cs, skipping any that fail rather than panicking
// as the interface suggests: kprom calls it from inside kgo.NewClient, and a
// metrics conflict must never keep a connector's Kafka client from being
// created. (KafkaHook's one-hook-per-label rule means none fails; the tests
// check the registry gathers without error.)
func (r *trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *trackingRegisterer) Unregister(c prometheus.Collector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, have := range r.registered {
		if have == c {
			r.registered = append(r.registered[:i], r.registered[i+1:]...)
			return r.next.Unregister(c)
		}
	}
	return false
}

func (r *trackingRegisterer) unregisterAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.registered {
		r.next.Unregister(c)
	}
	r.registered = nil
}
