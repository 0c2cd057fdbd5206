package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Payload layout: every value is JSON, {"ts":<unix µs, 16 digits>,"i":<n>,
// "pad":"xxx…"}, padded to exactly the scenario's record size. The
// timestamp sits at a fixed place at the front so every system's output can
// be timed the same way, whether or not it keeps the input's record
// timestamp (TransactionalMessageCopier does not), and PostgreSQL can store
// the value as jsonb.
const (
	tsPrefix = `{"ts":`
	tsDigits = 16
)

// minPayload is the smallest record size the layout fits in for sequence
// numbers below 10^12: smaller sizes come out longer.
const minPayload = len(tsPrefix) + tsDigits + len(`,"i":999999999999,"pad":""}`)

// appendPayload appends record i's value of exactly size bytes, stamped ts.
func appendPayload(dst []byte, i int64, size int, ts time.Time) []byte {
	start := len(dst)
	dst = append(dst, tsPrefix...)
	dst = appendPadded(dst, ts.UnixMicro(), tsDigits)
	dst = append(dst, `,"i":`...)
	dst = strconv.AppendInt(dst, i, 10)
	dst = append(dst, `,"pad":"`...)
	for len(dst)-start < size-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

func appendPadded(dst []byte, v int64, width int) []byte {
	s := strconv.FormatInt(v, 10)
	for range width - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// payloadTime reads the timestamp appendPayload wrote.
func payloadTime(v []byte) (time.Time, bool) {
	if len(v) < len(tsPrefix)+tsDigits || string(v[:len(tsPrefix)]) != tsPrefix {
		return time.Time{}, false
	}
	us, err := strconv.ParseInt(string(v[len(tsPrefix):len(tsPrefix)+tsDigits]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// eventIDHeaderKey is the header connectd reads event IDs from by default
// (event_id.from: header).
const eventIDHeaderKey = "event-id"

// eventIDHeader is record i's event-id header in topic: "<topic>-<i>",
// unique across the harness's topics, and about as long as a UUID (36
// bytes), a typical producer-assigned ID.
func eventIDHeader(topic string, i int64) []kgo.RecordHeader {
	v := strconv.AppendInt(append(append(make([]byte, 0, len(topic)+21), topic...), '-'), i, 10)
	return []kgo.RecordHeader{{Key: eventIDHeaderKey, Value: v}}
}

// recordKey spreads records over 1000 keys, so the default partitioners
// of every system spread their output over all partitions.
func recordKey(i int64) []byte { return []byte("k-" + strconv.FormatInt(i%1000, 10)) }

// kafkaEnv holds the harness's own clients: admin and a plain producer
// for pre-loading and live traffic.
type kafkaEnv struct {
	// conn is every client's seed brokers and security (Runner.conn).
	conn []kgo.Opt
	cl   *kgo.Client
	adm  *kadm.Client
	// rf is the replication factor of every topic the harness creates;
	// above 1, min.insync.replicas is rf-1 (3 brokers: 2), so acks=all
	// waits for a real follower, as in production.
	rf int16

	// keyed partitions by key, for the windowed runs (window.go).
	keyedOnce sync.Once
	keyed     *kgo.Client
	keyedErr  error
}

func newKafkaEnv(conn []kgo.Opt) (*kafkaEnv, error) {
	cl, err := kgo.NewClient(append(slices.Clip(conn),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(50000),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
	)...)
	if err != nil {
		return nil, err
	}
	return &kafkaEnv{conn: conn, cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (k *kafkaEnv) Close() {
	if k.keyed != nil {
		k.keyed.Close()
	}
	k.cl.Close()
}

// createTopic creates a fresh topic, deleting a leftover of the same name.
func (k *kafkaEnv) createTopic(ctx context.Context, name string, partitions int) error {
	_ = k.deleteTopics(ctx, name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := k.adm.CreateTopic(ctx, int32(partitions), max(k.rf, 1), k.topicConfigs(), name)
		if err == nil {
			err = resp.Err
		}
		if err == nil {
			return k.waitTopic(ctx, name, partitions)
		}
		// A topic just deleted may still be marked for deletion.
		if !errors.Is(err, kerr.TopicAlreadyExists) || time.Now().After(deadline) {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// topicConfigs are the topic-level settings createTopic sets: the minimum
// in-sync replicas when topics are replicated.
func (k *kafkaEnv) topicConfigs() map[string]*string {
	if k.rf <= 1 {
		return nil
	}
	isr := strconv.Itoa(int(k.rf) - 1)
	return map[string]*string{"min.insync.replicas": &isr}
}

// waitTopic waits until every partition of name has a leader that serves
// it. Metadata can name a leader before that broker serves the partition:
// a producer then gets NOT_LEADER_OR_FOLLOWER and franz-go retries after its
// next metadata refresh, which it spaces by 5 s (MetadataMinAge). One
// bounded run in about 30 lost 5 s of its start-up that way on the output
// topic created just before it; ListOffsets is served only by the leader,
// so a clean answer means producing will not hit that.
func (k *kafkaEnv) waitTopic(ctx context.Context, name string, partitions int) error {
	for range 100 {
		if k.topicServed(ctx, name, partitions) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("topic %s: partitions without a leader", name)
}

func (k *kafkaEnv) topicServed(ctx context.Context, name string, partitions int) bool {
	md, err := k.adm.Metadata(ctx, name)
	if err != nil {
		return false
	}
	t, ok := md.Topics[name]
	if !ok || t.Err != nil || len(t.Partitions) != partitions {
		return false
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 || p.Err != nil {
			return false
		}
	}
	ends, err := k.adm.ListEndOffsets(ctx, name)
	if err != nil || ends.Error() != nil {
		return false
	}
	n := 0
	ends.Each(func(kadm.ListedOffset) { n++ })
	return n == partitions
}

func (k *kafkaEnv) deleteTopics(ctx context.Context, names ...string) error {
	_, err := k.adm.DeleteTopics(ctx, names...)
	return err
}

func (k *kafkaEnv) deleteGroup(ctx context.Context, group string) {
	_, _ = k.adm.DeleteGroups(ctx, group)
}

// preload writes n records of in's size to topic, spread round-robin over
// its partitions, each with an event-id header if in says so, and waits
// until all are acknowledged.
func (k *kafkaEnv) preload(ctx context.Context, topic string, n int64, in Input) error {
	var firstErr error
	done := make(chan struct{}, 1)
	var buf []byte
	for i := range n {
		buf = appendPayload(buf[:0], i, in.RecordSize, time.Now())
		r := &kgo.Record{Topic: topic, Key: recordKey(i), Value: append([]byte(nil), buf...)}
		if in.EventIDHeader {
			r.Headers = eventIDHeader(topic, i)
		}
		k.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && firstErr == nil {
				firstErr = err
				select {
				case done <- struct{}{}:
				default:
				}
			}
		})
	}
	if err := k.cl.Flush(ctx); err != nil {
		return err
	}
	return firstErr
}

// groupFrontier returns group's committed next offsets on topic.
func (k *kafkaEnv) groupFrontier(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resp, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.Err == nil && o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// endOffsets returns topic's end offsets (last stable offsets under
// read_committed) per partition.
func (k *kafkaEnv) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	lo, err := k.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Partition] = o.Offset
		}
	})
	return out, nil
}

// outputWatcher consumes an output topic with read_committed from given
// offsets and records, for each record stamped at or after since, the time
// from its payload stamp to when the harness fetched it: visibility under
// read_committed, the consumer's own fetch delay included (the same for
// every system).
type outputWatcher struct {
	cl     *kgo.Client
	since  time.Time
	done   chan struct{}
	cancel context.CancelFunc

	mu  sync.Mutex
	lat []time.Duration
}

func watchOutput(conn []kgo.Opt, topic string, from map[int32]int64, since time.Time) (*outputWatcher, error) {
	offs := map[int32]kgo.Offset{}
	for p, o := range from {
		offs[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(append(slices.Clip(conn),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &outputWatcher{cl: cl, since: since, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			w.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if ts, ok := payloadTime(r.Value); ok && !ts.Before(since) {
					w.lat = append(w.lat, now.Sub(ts))
				}
			})
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// count is how many stamped records the watcher has seen so far.
func (w *outputWatcher) count() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.lat))
}

// stop ends the watcher and returns the latencies it recorded.
func (w *outputWatcher) stop() []time.Duration {
	w.cancel()
	<-w.done
	w.cl.Close()
	return w.lat
}

// countOutput counts the records of topic visible under read_committed,
// reading until want are seen or nothing new arrives for idle.
func countOutput(ctx context.Context, conn []kgo.Opt, topic string, want int64, idle time.Duration) (int64, error) {
	cl, err := kgo.NewClient(append(slices.Clip(conn),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	last := time.Now()
	for n < want && time.Since(last) < idle && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fs := cl.PollFetches(pctx)
		cancel()
		if c := int64(fs.NumRecords()); c > 0 {
			n += c
			last = time.Now()
		}
	}
	return n, nil
}
