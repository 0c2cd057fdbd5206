package process_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/testenv"
)

const (
	// connectorName is the one connector of every config here.
	connectorName = "copy"
	// inputPartitions is the partition count of input and output topics.
	inputPartitions = 6
	// minInput is the least input every test produces.
	minInput = 50_000
)

// pipe is one test's Kafka side: fresh input and output topics, a group of
// its own, and an admin client to watch progress from outside connectd.
type pipe struct {
	t       *testing.T
	brokers []string
	in, out string
	group   string
	adm     *kadm.Client
	dir     string
	// The sinks a test configured, for reading them back.
	dsn                    string
	redisAddr, redisPrefix string
}

// newPipe needs the Kafka of `make services` (the test skips with -short)
// and creates the test's topics, deleted when it ends.
func newPipe(t *testing.T) *pipe {
	t.Helper()
	return newPipeOn(t, testenv.Kafka(t))
}

// newPipeOn is newPipe on the Kafka at brokers.
func newPipeOn(t *testing.T, brokers []string) *pipe {
	t.Helper()
	topics := testenv.KafkaTopics(t, brokers, 2, inputPartitions)
	return &pipe{
		t:       t,
		brokers: brokers,
		in:      topics[0],
		out:     topics[1],
		group:   testenv.UniqueName(t, "g", "-", 200),
		adm:     kadm.NewClient(testenv.KafkaClient(t, brokers)),
		dir:     t.TempDir(),
	}
}

// connectorConfig is the knobs of the copy connector that differ by test.
type connectorConfig struct {
	guarantee          string // exactly_once or at_least_once
	commitInterval     string
	transactionTimeout string
	sessionTimeout     string
	shutdownTimeout    string
	// sink is the connector's sink section, the lines under "sink:"
	// indented with three tabs; empty means the Kafka output topic.
	sink string
	// batchMaxRecords is batch.max.records; 0 keeps the default.
	batchMaxRecords int
	// sinks, when set, replaces sink: the list under "sinks:", its items
	// indented with three tabs.
	sinks string
	// transforms, when set, replaces the set transform: the items under
	// "transforms:", indented with three tabs.
	transforms string
	// extra lines at the connector's level (two tabs), e.g. a dead-letter queue.
	extra string
}

// writeConfig writes the daemon config: input → set {copied: true} →
// output (the output topic, or c.sink), admin on a free loopback port, instance_id from the environment.
func (p *pipe) writeConfig(c connectorConfig) string {
	p.t.Helper()
	quoted := make([]string, len(p.brokers))
	for i, b := range p.brokers {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	sink := c.sink
	if sink == "" {
		sink = "\t\t\ttype: kafka\n\t\t\ttopic: " + p.out
	}
	batchMax := c.batchMaxRecords
	if batchMax == 0 {
		batchMax = 10_000
	}
	transforms := c.transforms
	if transforms == "" {
		transforms = "\t\t\t- type: set\n\t\t\t\tfields: {copied: true}"
	}
	sinkKey := "sink:"
	if c.sinks != "" {
		sinkKey, sink = "sinks:", c.sinks
	}
	yaml := fmt.Sprintf(`
instance_id: ${%s:verify}
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [%s]
connectors:
	- name: %s
		guarantee: %s
		commit.interval: %s
		transaction.timeout: %s
		shutdown_timeout: %s
		batch.max.records: %d
		event_id: {from: header}
		source:
			type: kafka
			topics: [%s]
			group: %s
			session_timeout: %s
		transforms:
%s
%s		%s
%s
`, testenv.InstanceIDEnv, strings.Join(quoted, ", "), connectorName, c.guarantee, c.commitInterval,
		c.transactionTimeout, c.shutdownTimeout, batchMax, p.in, p.group, c.sessionTimeout, transforms, c.extra, sinkKey, sink)
	path := writeFile(p.t, p.dir, "connectd.yaml", yaml)
	p.t.Logf("config %s:%s", path, strings.ReplaceAll(yaml, "\t", "  "))
	return path
}

// instanceID returns a fresh instance_id (so transactional IDs never
// collide with another test's on the shared broker).
func (p *pipe) instanceID(label string) string {
	return testenv.UniqueName(p.t, label, "-", 80)
}

// transactionalID is the transactional ID connectd uses for instance id:
// connectd-<connector>-<instance_id>, as README.md documents.
func transactionalID(id string) string {
	return "connectd-" + connectorName + "-" + id
}

// inputRecords builds input records from..to-1: unique event-id headers
// ("in-<i>"), 97 repeating keys (spreading them over the partitions) and
// JSON values the set transform can edit.
func inputRecords(from, to int) []*kgo.Record {
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{
			Key:     fmt.Appendf(nil, "k-%d", i%97),
			Value:   fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i%1000),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
		})
	}
	return recs
}

// producer returns an idempotent producer (franz-go's default, acks=all)
// for the input topic, closed when the test ends. A topic just created may
// not be known to every broker yet: unknown-topic answers are retried
// until the produce's own deadline rather than four times.
func (p *pipe) producer() *kgo.Client {
	return testenv.KafkaClient(p.t, p.brokers, kgo.DefaultProduceTopic(p.in), kgo.UnknownTopicRetries(-1))
}

// produce writes input records from..to-1 and waits for every ack.
func (p *pipe) produce(from, to int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := p.producer()
	defer cl.Close()
	if err := cl.ProduceSync(ctx, inputRecords(from, to)...).FirstErr(); err != nil {
		p.t.Fatalf("produce input %d..%d: %v", from, to, err)
	}
}

// stream produces input records concurrently at a steady rate, from a
// first index on, until stopped.
type stream struct {
	next   atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// startStream produces records from..∞ at about perSecond records a second.
// It is stopped when the test ends at the latest.
func (p *pipe) startStream(from, perSecond int) *stream {
	const tick = 50 * time.Millisecond
	per := max(perSecond*int(tick)/int(time.Second), 1)
	return p.startProducing(from, tick, func(int) int { return per })
}

// startProducing produces records from..∞ until stopped (when the test ends
// at the latest): every tick it asks next, given the index of the next
// record, how many records to produce now (0: none this tick).
func (p *pipe) startProducing(from int, tick time.Duration, next func(i int) int) *stream {
	cl := p.producer()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{cancel: cancel, done: make(chan struct{})}
	s.next.Store(int64(from))
	go func() {
		defer close(s.done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			i := int(s.next.Load())
			n := next(i)
			if n <= 0 {
				continue
			}
			pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			err := cl.ProduceSync(pctx, inputRecords(i, i+n)...).FirstErr()
			pcancel()
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			s.next.Store(int64(i + n))
		}
	}()
	p.t.Cleanup(func() { s.cancel(); <-s.done })
	return s
}

// produced is how many records (from 0) have been acknowledged so far.
func (s *stream) produced() int { return int(s.next.Load()) }

// stop ends the stream and returns the total number of input records
// (from 0); every one of them is acknowledged.
func (s *stream) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(90 * time.Second):
		t.Fatal("input producer did not stop within 90s")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("input producer: %v", s.err)
	}
	return s.produced()
}

// committedOffsets is the group's committed offset per input partition
// (what `connectd verify` takes as the checkpoint), read from outside.
func (p *pipe) committedOffsets() (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resps, err := p.adm.FetchOffsetsForTopics(ctx, p.group, p.in)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, r := range resps[p.in] {
		if r.Err != nil {
			return nil, r.Err
		}
		out[r.Partition] = max(r.At, 0)
	}
	return out, nil
}

// committed is the number of input records the group has committed: the
// input is not transactional, so offsets count records.
func (p *pipe) committed() int {
	p.t.Helper()
	var last error
	for range 5 {
		offs, err := p.committedOffsets()
		if err == nil {
			n := int64(0)
			for _, o := range offs {
				n += o
			}
			return int(n)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("fetch committed offsets of group %s: %v", p.group, last)
	return 0
}

// waitCommitted waits until at least n input records are committed, while
// every instance in alive keeps running.
func (p *pipe) waitCommitted(n int, within time.Duration, alive ...*instance) int {
	p.t.Helper()
	within = limit(p.t, within)
	deadline := time.Now().Add(within)
	for {
		c := p.committed()
		if c >= n {
			return c
		}
		for _, in := range alive {
			in.Alive()
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%d of %d input records committed after %v", c, n, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// describeTxn describes instance id's transaction on the broker.
func (p *pipe) describeTxn(id string) (kadm.DescribedTransaction, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	txid := transactionalID(id)
	ds, err := p.adm.DescribeTransactions(ctx, txid)
	if err != nil {
		return kadm.DescribedTransaction{}, err
	}
	d, ok := ds[txid]
	if !ok {
		return kadm.DescribedTransaction{}, fmt.Errorf("no description of %s", txid)
	}
	return d, d.Err
}

// groupMembers is the number of members of the group.
func (p *pipe) groupMembers() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := p.adm.DescribeGroups(ctx, p.group)
	if err != nil {
		return 0, err
	}
	g, ok := gs[p.group]
	if !ok {
		return 0, fmt.Errorf("group %s not described", p.group)
	}
	if g.Err != nil {
		return 0, g.Err
	}
	return len(g.Members), nil
}

// waitHeirTakesOver waits until the group has expelled a frozen member
// (one member left) and the heir holds every partition and has committed
// past frozenAt, the committed offsets when the zombie froze, on each.
func (p *pipe) waitHeirTakesOver(t *testing.T, heir *instance, frozenAt map[int32]int64) {
	t.Helper()
	waitFor(t, 2*time.Minute, "the group to expel the frozen zombie", func() bool {
		heir.Alive()
		n, err := p.groupMembers()
		return err == nil && n == 1
	})
	// The group's committed offsets alone are not enough: frozenAt may be
	// read while the zombie's last offset commit is still in flight, and
	// then the heir may look past it before it has even been assigned the
	// zombie's partitions. The heir's own status lists only the partitions
	// it holds, with the checkpoint it committed, so it also must show
	// every partition past frozenAt: only then has the heir claimed them
	// and the zombie's batch become stale.
	waitFor(t, 2*time.Minute, "the heir to commit past the zombie on every partition", func() bool {
		heir.Alive()
		offs, err := p.committedOffsets()
		if err != nil {
			return false
		}
		st, err := heir.status(connectorName)
		if err != nil {
			return false
		}
		held := map[int32]int64{}
		for _, ps := range st.Partitions {
			held[ps.Partition] = ps.Checkpoint
		}
		for part, o := range frozenAt {
			if offs[part] <= o {
				return false
			}
			if c, ok := held[part]; !ok || c <= o {
				return false
			}
		}
		return true
	})
}
