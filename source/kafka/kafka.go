// Package kafka is connectd's Kafka source: a consumer-group member that
// reads with read_committed isolation (records of aborted transactions are
// never seen) and the cooperative-sticky assignor, so a rebalance moves only
// the partitions that must move.
//
// The source does not own its client. The commit protocol does (package
// txn), because in Kafka→Kafka exactly-once one client both consumes and
// produces, and because after fencing the protocol replaces the client; the
// source always polls through the protocol's current one.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// Config is the `source: {type: kafka}` section.
type Config struct {
	// Topics to consume. Required.
	Topics []string `yaml:"topics"`
	// Group is the consumer group. Default "connectd-<connector name>".
	Group string `yaml:"group"`
	// StartOffset is where a partition with no committed checkpoint starts:
	// "earliest" (default, Kafka's auto.offset.reset=earliest) or "latest".
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is the group session timeout (Kafka's
	// session.timeout.ms). Default 45s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
}

// Validate applies defaults and checks the config.
func (c *Config) Validate(connectorName string) error {
	if len(c.Topics) == 0 {
		return errors.New("topics: at least one topic is required")
	}
	if c.Group == "" {
		c.Group = "connectd-" + connectorName
	}
	switch c.StartOffset {
	case "":
		c.StartOffset = "earliest"
	case "earliest", "latest":
	default:
		return fmt.Errorf("start_offset: %q is not earliest or latest", c.StartOffset)
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 45 * time.Second
	}
	if c.SessionTimeout < 0 {
		return errors.New("session_timeout: must be positive")
	}
	return nil
}

// StartAt is where a partition with no checkpoint starts.
func (c Config) StartAt() kgo.Offset {
	if c.StartOffset == "latest" {
		return kgo.NewOffset().AtEnd()
	}
	return kgo.NewOffset().AtStart()
}

// ClientOptions are the consumer-side kgo options for this source: the group,
// read_committed, cooperative-sticky, no autocommit (the commit protocol
// commits), and rebalances held back while a batch is open.
func (c Config) ClientOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(c.StartAt()),
		kgo.SessionTimeout(c.SessionTimeout),
		// Kafka's max.partition.fetch.bytes; franz-go's default, like
		// Java's, is 1 MiB. franz-go fetches ahead of what is polled, and
		// a 1 MiB compressed fetch per partition of small, compressible
		// records is hundreds of thousands of decoded records: with a
		// 1,000,000-record backlog over 12 partitions the daemon peaked
		// at 310-345 MiB RSS. Measured interleaved (bench/, issue 9):
		// 512 KiB peaks at 183 MiB for about 6% less drain throughput,
		// 256 KiB at 115 MiB for about 12% less. A batch is at most
		// batch.max.records anyway.
		kgo.FetchMaxPartitionBytes(512 << 10),
	}
}

// Source polls a consumer-group client.
type Source struct {
	client func() *kgo.Client
	log    *slog.Logger

	mu   sync.Mutex
	hwms map[connector.TopicPartition]int64 // last stable offsets seen in fetches
}

// New returns a source polling through client(), which the commit protocol
// may replace between batches.
func New(client func() *kgo.Client, log *slog.Logger) *Source {
	return &Source{client: client, log: log, hwms: map[connector.TopicPartition]int64{}}
}

var (
	_ connector.Source        = (*Source)(nil)
	_ connector.Lagger        = (*Source)(nil)
	_ connector.RebalanceGate = (*Source)(nil)
)

// Poll returns up to max records. Fetch errors other than a closed client
// are logged and skipped: they never advance a position, so nothing is lost.
func (s *Source) Poll(ctx context.Context, max int) ([]*connector.Record, error) {
	cl := s.client()
	if cl == nil {
		return nil, errors.New("kafka source: no client (protocol not recovered)")
	}
	fetches := cl.PollRecords(ctx, max)
	if fetches.IsClientClosed() {
		return nil, kgo.ErrClientClosed
	}
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		s.log.Warn("fetch error", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
	}
	out := make([]*connector.Record, 0, fetches.NumRecords())
	s.mu.Lock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err == nil {
			s.hwms[connector.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.LastStableOffset
		}
		for _, r := range p.Records {
			out = append(out, FromKgo(r))
		}
	})
	s.mu.Unlock()
	return out, nil
}

// Seek is a no-op: a group source resumes where its group's committed
// offsets say, and the commit protocol rewinds the client to them after an
// abort (the committed offsets are the checkpoint). Sinks that keep their
// own checkpoint seek partitions through the protocol on assignment.
func (s *Source) Seek(connector.Checkpoint) {}

// Close is a no-op: the protocol owns and closes the client.
func (s *Source) Close() {}

// AllowRebalance lets a pending rebalance proceed; called between batches.
func (s *Source) AllowRebalance() {
	if cl := s.client(); cl != nil {
		cl.AllowRebalance()
	}
}

// HighWatermarks returns the last stable offset last seen per partition.
func (s *Source) HighWatermarks() map[connector.TopicPartition]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[connector.TopicPartition]int64, len(s.hwms))
	for tp, o := range s.hwms {
		out[tp] = o
	}
	return out
}

// FromKgo converts a consumed record. Slices are shared with r, which the
// client never reuses, so no copy is needed.
func FromKgo(r *kgo.Record) *connector.Record {
	rec := &connector.Record{
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: r.Timestamp,
		Origin:    connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
	}
	if len(r.Headers) > 0 {
		rec.Headers = make([]connector.Header, len(r.Headers))
		for i, h := range r.Headers {
			rec.Headers[i] = connector.Header{Key: h.Key, Value: h.Value}
		}
	}
	return rec
}
