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
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
	// "earliest" (default, Kafka's auto.offset.reset=earliest), "latest",
	// or an RFC 3339 time: the first record stamped at or after it (the
	// end if none is), as a Kappa replay "from a timestamp" starts.
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is the group session timeout (Kafka's
	// session.timeout.ms). Default 45s. It is how long the partitions of
	// a member that died and does not come back stay unowned; a static
	// member that restarts takes them back at once, and a clean stop
	// leaves the group, so neither waits for it.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// StaticMembership makes every task a static group member (Kafka's
	// group.instance.id, KIP-345) named by its instance ID: a process
	// restarted with the same instance_id takes its partitions back
	// without a rebalance and without waiting for the session timeout.
	// Default true. Two live processes must never share an instance_id:
	// the broker fences the older one (both keep taking the partitions
	// from each other, and both say so in their logs; the commit
	// protocols' fencing keeps the output exactly-once meanwhile).
	StaticMembership *bool `yaml:"static_membership"`
	// FetchMaxBytes bounds, in bytes, one fetch response across all of a
	// connector's partitions (Kafka's fetch.max.bytes). Default
	// DefaultFetchMaxBytes. A connector with several tasks shares it
	// among them (see ForTasks).
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxPartitionBytes bounds, in bytes, one partition's share of a
	// fetch response (Kafka's max.partition.fetch.bytes). Default
	// DefaultFetchMaxPartitionBytes.
	FetchMaxPartitionBytes int `yaml:"fetch_max_partition_bytes"`
}

// The fetch bounds' defaults. Both count bytes as the broker stores them,
// compressed, while franz-go decompresses a whole response as it arrives
// and keeps it until every record is polled; decompressed, a response is
// up to the compression ratio times larger. Measured with the benchmark
// harness (issue 9), 1,000,000-record backlogs over 12 partitions, one
// round each, two runs per setting:
//
//   - Kafka's 50 MiB total, with 512 KiB per partition (so 6 MiB at 12
//     partitions): 1 KB records padded to compress about 20 times peaked
//     at 247-249 MiB RSS into PostgreSQL (a heap profile showed 78 MB of
//     decompressed batches live), 100 B records at 179-186 MiB.
//   - 4 MiB total: 180-185 and 132-136 MiB.
//   - 2 MiB total: 122-127 and 89-90 MiB, at no cost in drain throughput
//     (Kafka→Kafka exactly_once 237k and 241k records/s against 205k and
//     153k at 50 MiB; PostgreSQL 42k and 45k against 44k and 43k).
//
// A record batch larger than either bound is still returned whole, so a
// bound never stalls a partition.
const (
	DefaultFetchMaxBytes          = 2 << 20
	DefaultFetchMaxPartitionBytes = 512 << 10
)

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
		if _, err := time.Parse(time.RFC3339Nano, c.StartOffset); err != nil {
			return fmt.Errorf("start_offset: %q is not earliest, latest or an RFC 3339 time", c.StartOffset)
		}
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 45 * time.Second
	}
	if c.SessionTimeout < 0 {
		return errors.New("session_timeout: must be positive")
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.FetchMaxPartitionBytes == 0 {
		c.FetchMaxPartitionBytes = DefaultFetchMaxPartitionBytes
	}
	for _, b := range []struct {
		name string
		v    int
	}{{"fetch_max_bytes", c.FetchMaxBytes}, {"fetch_max_partition_bytes", c.FetchMaxPartitionBytes}} {
		if b.v < 1 || b.v > math.MaxInt32 {
			return fmt.Errorf("%s: %d is not a byte count between 1 and %d", b.name, b.v, math.MaxInt32)
		}
	}
	return nil
}

// ForTasks is the config each of a connector's n tasks consumes with:
// fetch_max_bytes shared evenly among them, but never below
// fetch_max_partition_bytes (or the whole bound, if that is smaller), so
// one partition's share of a fetch still fits.
//
// Why share it: each task is its own consumer, and franz-go keeps one
// decompressed fetch response buffered per consumer besides the records
// a batch holds. The bound counts compressed bytes, so at the default
// 2 MiB a task holding 1 KB values that compress about 20 times buffers
// tens of MiB; with the bound per task, two tasks buffered twice that.
// A heap profile at the peak of a two-task run (issue 17, Redis, 1 KB
// records) had 56 of 77 MB live in decompressed fetches, and the
// process peaked at 220-225 MiB RSS; with 1 MiB per task, 34-38 MB and
// 187-193 MiB. One task holds half the partitions, so half the bound
// serves it as the whole bound serves one task.
func (c Config) ForTasks(n int) Config {
	if n > 1 {
		floor := min(c.FetchMaxPartitionBytes, c.FetchMaxBytes)
		c.FetchMaxBytes = max(c.FetchMaxBytes/n, floor)
	}
	return c
}

// StartAt is where a partition with no checkpoint starts.
func (c Config) StartAt() kgo.Offset {
	switch c.StartOffset {
	case "latest":
		return kgo.NewOffset().AtEnd()
	case "earliest", "":
		return kgo.NewOffset().AtStart()
	}
	if t, ok := c.StartTime(); ok {
		return kgo.NewOffset().AfterMilli(t.UnixMilli())
	}
	return kgo.NewOffset().AtStart()
}

// StartTime is the time start_offset names, if it names one.
func (c Config) StartTime() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, c.StartOffset)
	return t, err == nil
}

// ClientOptions are the consumer-side kgo options for this source: the group,
// read_committed, cooperative-sticky, no autocommit (the commit protocol
// commits), and rebalances held back while a batch is open. instanceID is
// the task's group.instance.id with static membership (ignored without).
func (c Config) ClientOptions(instanceID string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(c.StartAt()),
		kgo.SessionTimeout(c.SessionTimeout),
		// franz-go's defaults, like Java's, are 50 MiB and 1 MiB, and
		// franz-go fetches ahead of what is polled: with a
		// 1,000,000-record backlog over 12 partitions the daemon peaked
		// at 310-345 MiB RSS. Why the smaller defaults are safe for
		// throughput: see DefaultFetchMaxBytes. A batch is at most
		// batch.max.records anyway.
		kgo.FetchMaxBytes(int32(c.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(c.FetchMaxPartitionBytes)),
	}
	if c.Static() && instanceID != "" {
		opts = append(opts, kgo.InstanceID(instanceID))
	}
	return opts
}

// Static reports whether tasks join as static members (the default).
func (c Config) Static() bool { return c.StaticMembership == nil || *c.StaticMembership }

// ErrInstanceIDConflict is returned by Poll when the broker fenced this
// member because a newer one joined with the same group.instance.id.
var ErrInstanceIDConflict = connector.ErrInstanceIDConflict

// Source polls a consumer-group client.
type Source struct {
	client func() *kgo.Client
	log    *slog.Logger

	// ctx ends the questions to the group coordinator (assigned.go) at
	// Close, which waits for them (wg).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	hwms map[connector.TopicPartition]int64 // last stable offsets seen in fetches, of held partitions
	// held is the coordinator's last answer about this member's
	// partitions (Assigned), heldKey the membership it was about.
	held      map[connector.TopicPartition]int64
	heldKey   assignmentKey
	asking    bool // a question is under way
	lastAsked time.Time
	closed    bool

	// Bounded reading (bounded.go): stops per partition, the partitions
	// paused at their stop, and the client they were paused on.
	stops    map[connector.TopicPartition]int64
	reached  map[connector.TopicPartition]bool
	pausedOn *kgo.Client
}

// New returns a source polling through client(), which the commit protocol
// may replace between batches.
func New(client func() *kgo.Client, log *slog.Logger) *Source {
	ctx, cancel := context.WithCancel(context.Background())
	return &Source{client: client, log: log, hwms: map[connector.TopicPartition]int64{}, ctx: ctx, cancel: cancel}
}

var (
	_ connector.Source        = (*Source)(nil)
	_ connector.Lagger        = (*Source)(nil)
	_ connector.RebalanceGate = (*Source)(nil)

	_ connector.AssignmentTracker = (*Source)(nil)
)

// Poll returns up to max records. Fetch errors other than a closed client
// are logged and skipped: they never advance a position, so nothing is lost.
func (s *Source) Poll(ctx context.Context, max int) ([]*connector.Record, error) {
	cl := s.client()
	if cl == nil {
		return nil, errors.New("kafka source: no client (protocol not recovered)")
	}
	bounded := s.bounded()
	if bounded {
		s.mu.Lock()
		s.resumeRewound(cl)
		s.mu.Unlock()
	}
	fetches := cl.PollRecords(ctx, max)
	if fetches.IsClientClosed() {
		return nil, kgo.ErrClientClosed
	}
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		if errors.Is(fe.Err, kerr.FencedInstanceID) {
			// The group gave our instance ID to a newer member: another
			// live process runs with the same instance_id. Nothing of
			// the open batch may commit (its partitions are no longer
			// ours); the connector aborts it and rejoins, which fences
			// the other process in turn, until one of them is stopped.
			err := fmt.Errorf("%w: another live process joined the group with this task's instance ID %q; "+
				"every process needs its own instance_id (the commit protocols keep the output exactly-once meanwhile)",
				ErrInstanceIDConflict, cl.OptValue(kgo.InstanceID))
			s.log.Error("instance_id conflict", "err", err)
			return nil, err
		}
		s.log.Warn("fetch error", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
	}
	// The records of one poll are carved out of one slice: one allocation
	// per poll instead of one per record (they live and die with their
	// batch anyway).
	n := fetches.NumRecords()
	out, slab := make([]*connector.Record, 0, n), make([]connector.Record, n)
	var headers headerSlab
	var over map[connector.TopicPartition]bool // partitions the poll ran past their stop
	if bounded {
		over = map[connector.TopicPartition]bool{}
	}
	s.mu.Lock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		tp := connector.TopicPartition{Topic: p.Topic, Partition: p.Partition}
		if p.Err == nil {
			s.hwms[tp] = p.LastStableOffset
		}
		for _, r := range p.Records {
			if bounded && s.pastStop(tp, r) {
				if !over[tp] && s.stops[tp] > 0 {
					// The first record at or past the stop: everything a
					// read_committed consumer can read below it is read.
					out = append(out, stopMarker(tp, s.stops[tp]))
				}
				over[tp] = true
				continue
			}
			rec := &slab[len(out)]
			headers.fromKgo(rec, r, n-len(out))
			if r.Attrs.IsControl() { // bounded runs keep them (KeepControlRecords)
				rec.Kind = connector.ControlRecord
			}
			out = append(out, rec)
		}
	})
	if len(over) > 0 {
		s.holdAtStops(cl, over)
	}
	s.mu.Unlock()
	// Polls run between rebalances (BlockRebalanceOnPoll), so this sees
	// each new generation soon after it began.
	s.watchAssignment(s.membership())
	return out, nil
}

// bounded reports whether SetStops was called.
func (s *Source) bounded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stops != nil
}

// assignmentID identifies one group membership of one client: a new
// client or a new generation may hold other partitions.
type assignmentID struct {
	client     *kgo.Client
	memberID   string
	generation int32
}

// Assignment implements connector.AssignmentTracker.
func (s *Source) Assignment() any {
	cl := s.client()
	if cl == nil {
		return nil
	}
	member, gen := cl.GroupMetadata()
	return assignmentID{client: cl, memberID: member, generation: gen}
}

// Seek is a no-op: a group source resumes where its group's committed
// offsets say, and the commit protocol rewinds the client to them after an
// abort (the committed offsets are the checkpoint). Sinks that keep their
// own checkpoint seek partitions through the protocol on assignment.
func (s *Source) Seek(connector.Checkpoint) {}

// Close ends a question to the group coordinator still under way and
// waits for it; the protocol owns and closes the client.
func (s *Source) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

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
	rec := &connector.Record{}
	var hs headerSlab
	hs.fromKgo(rec, r, 0)
	return rec
}

// headerSlab carves consumed records' headers out of shared slices: with
// event IDs in a header (the default), every record has one, and a slice
// each was an allocation per record.
type headerSlab struct{ free []connector.Header }

// maxSlabHeaders bounds a slab (about 40 KB): sized from the first
// record's header count times the records to come, a poll whose first
// record has headers and whose others have none would otherwise allocate
// room that is never used, held as long as that record lives.
const maxSlabHeaders = 1024

// fromKgo converts r into rec, a record the caller allocated; more is how
// many records of the poll are still to come, to size the next slab.
// Each record's headers are capped at their length, so a transform that
// appends a header to one record copies them instead of writing over the
// next record's.
func (hs *headerSlab) fromKgo(rec *connector.Record, r *kgo.Record, more int) {
	*rec = connector.Record{
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: r.Timestamp,
		Origin:    connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
	}
	k := len(r.Headers)
	if k == 0 {
		return
	}
	if cap(hs.free)-len(hs.free) < k {
		hs.free = make([]connector.Header, 0, max(k, min(k*more, maxSlabHeaders)))
	}
	start := len(hs.free)
	for _, h := range r.Headers {
		hs.free = append(hs.free, connector.Header{Key: h.Key, Value: h.Value})
	}
	rec.Headers = hs.free[start:len(hs.free):len(hs.free)]
}
