package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// SinkStore, PartitionClaim, NoCheckpoint and Claims are the contract of a
// sink that keeps its checkpoint (see connector.SinkStore); they live in
// package connector so that sinks can register (package component) without
// importing the protocols.
type (
	SinkStore      = connector.SinkStore
	PartitionClaim = connector.PartitionClaim
	Claims         = connector.Claims
)

// NoCheckpoint: see connector.NoCheckpoint.
const NoCheckpoint = connector.NoCheckpoint

// SinkOffsets is the exactly-once protocol for Kafka → a SinkStore. The
// consumer group only distributes partitions; the checkpoint lives in the
// sink.
//
//   - Assignment: for the partitions it is given, the member claims them in
//     the sink (raising their claim epochs) and seeks to the checkpoints
//     stored there (partitions with none start at the source's start_offset, never
//     at the group's offsets, which are for lag display only).
//   - Atomic: the batch's writes and the checkpoint update, in one sink
//     transaction that compares claim epoch and expected start offset per
//     partition (compare-and-set).
//   - Abort and fencing: nothing of the batch is applied. Recover closes the
//     consumer and joins the group again, so the next batch starts from the
//     checkpoints claimed anew from the sink: never from memory.
//   - Unknown outcome (the connection dropped during COMMIT): the same; the
//     new claim reads the stored checkpoint, which says whether the batch
//     committed.
//   - After each commit the group offsets are committed too, asynchronously,
//     so Kafka's lag tools see progress; nothing reads them back. So they
//     can miss a batch the sink holds: its owner crashed between the two
//     commits, or its member was replaced meanwhile (another process with
//     the same instance_id joined) and the broker refused the lag commit.
//     Each claim therefore commits the checkpoints it read to the group
//     too, where they differ from the group's: without that, a partition
//     with no new input showed those records as lag forever. Neither
//     commit takes part in exactly-once: fencing and the checkpoint stay
//     in the sink, and a refused lag commit changes nothing else.
type SinkOffsets struct {
	opts    []kgo.Opt
	group   string
	startAt kgo.Offset
	store   SinkStore
	log     *slog.Logger

	cl  atomic.Pointer[kgo.Client]
	buf []*connector.Record

	mu    sync.Mutex
	owned map[connector.TopicPartition]claim
	// claimFailed is the last failed claim, until one succeeds: while
	// claims fail nothing is read or committed, and the status says why.
	claimFailed *connector.AbortInfo
}

// claim is what this member knows about a partition it owns.
type claim struct {
	epoch int64
	next  int64 // stored checkpoint; valid if has
	has   bool
}

// NewSinkOffsets returns the protocol. opts are the source's consumer
// options plus seed brokers; startAt is where partitions with no stored
// checkpoint start.
func NewSinkOffsets(opts []kgo.Opt, group string, startAt kgo.Offset, store SinkStore, log *slog.Logger) *SinkOffsets {
	return &SinkOffsets{opts: opts, group: group, startAt: startAt, store: store, log: log,
		owned: map[connector.TopicPartition]claim{}}
}

var _ connector.Protocol = (*SinkOffsets)(nil)

// ClaimFailure implements connector.ClaimReporter.
func (s *SinkOffsets) ClaimFailure() *connector.AbortInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimFailed == nil {
		return nil
	}
	a := *s.claimFailed
	return &a
}

// Client is the current consumer, for the source to poll.
func (s *SinkOffsets) Client() *kgo.Client { return s.cl.Load() }

// Begin starts buffering a batch.
func (s *SinkOffsets) Begin(context.Context) error {
	s.buf = s.buf[:0]
	return nil
}

// Write buffers recs; the sink sees them at Commit, in one transaction.
func (s *SinkOffsets) Write(_ context.Context, recs []*connector.Record) error {
	s.buf = append(s.buf, recs...)
	return nil
}

// Commit writes the batch and the checkpoint through the store, atomically.
func (s *SinkOffsets) Commit(ctx context.Context, cp connector.Checkpoint) error {
	epochs := make(map[connector.TopicPartition]int64, len(cp))
	from := connector.Checkpoint{}
	s.mu.Lock()
	for tp := range cp {
		c, ok := s.owned[tp]
		if !ok {
			s.mu.Unlock()
			return connector.NewCommitError(connector.Fenced, "commit",
				fmt.Errorf("partition %s is no longer assigned to this member", tp))
		}
		epochs[tp] = c.epoch
		if c.has {
			from[tp] = c.next
		}
	}
	s.mu.Unlock()

	err := s.store.Commit(ctx, s.group, epochs, s.buf, from, cp)
	s.buf = s.buf[:0]
	if err != nil {
		var ce *connector.CommitError
		if !errors.As(err, &ce) {
			err = connector.NewCommitError(connector.CommitUnknown, "sink commit", err)
		}
		return explainFence(ctx, s.cl.Load(), s.group, err)
	}
	// The group offsets shown for lag cover every partition this member
	// holds, not only those in the batch: a partition claimed after a
	// restart whose group offset was never committed (the process died
	// before its asynchronous lag commit) would otherwise show a stale lag
	// until new input arrives on it.
	lag := connector.Checkpoint{}
	s.mu.Lock()
	for tp, next := range cp {
		if c, ok := s.owned[tp]; ok {
			c.next, c.has = next, true
			s.owned[tp] = c
		}
	}
	for tp, c := range s.owned {
		if c.has {
			lag[tp] = c.next
		}
	}
	s.mu.Unlock()
	s.commitGroupForLag(lag)
	return nil
}

// commitGroupForLag commits the checkpoint to the consumer group, without
// waiting, for lag display. It is never read back: the sink is the truth.
func (s *SinkOffsets) commitGroupForLag(cp connector.Checkpoint) {
	commitGroupForLag(s.cl.Load(), cp, s.log)
}

// commitGroupForLag commits cp through cl (if any) as the member it is
// now; a member replaced or expelled meanwhile is refused by the broker,
// which changes nothing but the lag shown.
func commitGroupForLag(cl *kgo.Client, cp connector.Checkpoint, log *slog.Logger) {
	if cl == nil || len(cp) == 0 {
		return
	}
	cl.CommitOffsets(context.Background(), groupOffsets(cp), func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err := offsetCommitErr(resp, err); err != nil {
			log.Debug("group offset commit for lag display failed", "err", err)
		}
	})
}

// Abort drops the buffered batch; nothing was sent to the sink.
func (s *SinkOffsets) Abort(context.Context) error {
	s.buf = s.buf[:0]
	return nil
}

// Recover starts the consumer, or replaces it after any failure so the next
// batch starts at checkpoints claimed anew from the sink. It returns no
// checkpoint: the claim on assignment (claim) sets each partition's fetch
// offset from the sink's checkpoint.
func (s *SinkOffsets) Recover(_ context.Context, cause error) (connector.Checkpoint, error) {
	if s.cl.Load() != nil && cause == nil {
		return nil, nil
	}
	if old := s.cl.Swap(nil); old != nil {
		s.log.Info("rejoining to re-read the checkpoints from the sink", "cause", cause)
		old.CloseAllowingRebalance()
	}
	s.mu.Lock()
	clear(s.owned)
	s.mu.Unlock()
	// The claim's lag commit goes through the client that claimed, which
	// exists only once NewClient returns; a claim that runs before that
	// (it takes a join and a sync) waits for it.
	var (
		self    *kgo.Client
		created = make(chan struct{})
	)
	claimer := func() *kgo.Client { <-created; return self }
	opts := append(append([]kgo.Opt{}, s.opts...),
		kgo.AdjustFetchOffsetsFn(func(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			return s.claim(ctx, offsets, claimer)
		}),
		kgo.OnPartitionsRevoked(s.release),
		kgo.OnPartitionsLost(s.release),
	)
	cl, err := kgo.NewClient(opts...)
	self = cl
	close(created)
	if err != nil {
		return nil, connector.NewCommitError(connector.Fatal, "new consumer", err)
	}
	s.cl.Store(cl)
	return nil, nil
}

// claim runs on assignment, before fetching starts: it claims the assigned
// partitions in the sink (the store raises their claim epochs) and replaces
// the group's offsets by the sink's checkpoints. Where those differ from
// the group's, it commits them to the group for lag display, through
// claimer's client, without waiting for the answer (see SinkOffsets).
func (s *SinkOffsets) claim(ctx context.Context, offsets map[string]map[int32]kgo.Offset, claimer func() *kgo.Client) (map[string]map[int32]kgo.Offset, error) {
	var tps []connector.TopicPartition
	for t, ps := range offsets {
		for p := range ps {
			tps = append(tps, connector.TopicPartition{Topic: t, Partition: p})
		}
	}
	claims, err := s.store.Claim(ctx, s.group, tps)
	lag, err := s.recordClaim(tps, claims, err, offsets)
	if err != nil {
		return nil, err
	}
	if len(lag) > 0 {
		// Issued here, before fetching starts, so it is ordered before
		// the lag commit of any batch read after this claim (franz-go
		// sends commits in the order they are issued); an older
		// checkpoint never lands after a newer one. Issuing does not
		// wait for the group (a commit waits for a join and sync in
		// flight): this one's are done, and franz-go starts the next
		// only after this function returns.
		commitGroupForLag(claimer(), lag, s.log)
	}
	return offsets, nil
}

// recordClaim records the outcome of the claim of tps (claims, or err):
// the partitions owned, with their epochs and checkpoints, and each one's
// offset in offsets, the sink's checkpoint or else the start offset. It
// returns the checkpoints that differ from the group's offsets (what
// offsets held before).
func (s *SinkOffsets) recordClaim(tps []connector.TopicPartition, claims Claims, err error, offsets map[string]map[int32]kgo.Offset) (connector.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Set before the log line, so a status read once the line
		// is out shows it.
		s.claimFailed = &connector.AbortInfo{Kind: "claim", Error: err.Error(), At: time.Now().UTC()}
		s.log.Warn("claiming partitions in the sink failed; the group will rejoin", "err", err)
		return nil, err
	}
	s.claimFailed = nil
	lag := connector.Checkpoint{}
	for _, tp := range tps {
		c, ok := claims[tp]
		if !ok {
			return nil, fmt.Errorf("claim: the sink answered no claim for %s", tp)
		}
		has := c.Next >= 0
		s.owned[tp] = claim{epoch: c.Epoch, next: c.Next, has: has}
		at := s.startAt
		if has {
			at = kgo.NewOffset().At(c.Next).WithEpoch(-1)
			if offsets[tp.Topic][tp.Partition].EpochOffset().Offset != c.Next {
				lag[tp] = c.Next
			}
		}
		offsets[tp.Topic][tp.Partition] = at
	}
	return lag, nil
}

// release forgets revoked or lost partitions: a batch still holding records
// of them cannot commit (Commit reports it fenced).
func (s *SinkOffsets) release(_ context.Context, _ *kgo.Client, gone map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range gone {
		for _, p := range ps {
			delete(s.owned, connector.TopicPartition{Topic: t, Partition: p})
		}
	}
}

// Close closes the consumer (leaving the group) and the store.
func (s *SinkOffsets) Close() {
	if cl := s.cl.Swap(nil); cl != nil {
		closeGroupClient(cl, s.log)
	}
	s.store.Close()
}

// CheckpointAdmin: see connector.CheckpointAdmin.
type CheckpointAdmin = connector.CheckpointAdmin
