package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// State is a connector's lifecycle state, named as in Kafka Connect
// (but for Finished, which Connect lacks).
type State string

const (
	Unassigned State = "UNASSIGNED"
	Running    State = "RUNNING"
	Paused     State = "PAUSED"
	Stopped    State = "STOPPED"
	Failed     State = "FAILED"
	// Finished: a bounded connector (a bounded: block) committed its
	// input up to its stops and stopped itself. Its checkpoint stays;
	// a restart runs it again to its stops of then.
	Finished State = "FINISHED"
)

// Options configure the coordinator loop of one connector.
type Options struct {
	Name      string
	Guarantee string
	// CommitInterval is the cadence of commits: a batch closes
	// CommitInterval after the previous one closed, so a record waits at
	// most about one interval plus one commit before it is committed,
	// however long commits take. A batch stays open at least half an
	// interval, so slow commits lengthen the cadence instead of shrinking
	// batches to nothing. Default 100ms.
	CommitInterval time.Duration
	// MaxBatch bounds the input records of one batch. Default 10000.
	MaxBatch int
	// DueBatchFloor is how long a batch stays open at least when its
	// records made results due (ResultsDue): it ends then, if caught up,
	// instead of at the interval. The floor bounds the commit rate when
	// results fall due all the time (session windows of many keys) to
	// one commit per floor plus commit time. Default CommitInterval/10
	// (a quarter cost the window benchmark about 30 ms of p50 and p99);
	// negative: no floor.
	DueBatchFloor time.Duration
	// CommitTimeout bounds one Commit call while running. Default 30s.
	CommitTimeout time.Duration
	// ShutdownTimeout bounds the commit of the open batch at stop. Default 10s.
	ShutdownTimeout time.Duration
	// RetryTimeout is how long the connector keeps retrying failed batches
	// (with backoff) without a single successful commit before it gives up
	// and goes to FAILED. Default 5m.
	RetryTimeout time.Duration
	// ProgressInterval is how often a progress line is logged. Default 5s;
	// negative disables.
	ProgressInterval time.Duration
	Logger           *slog.Logger
	// Observer, if set, is told about every committed batch (metrics).
	Observer Observer
	// Stops, in a bounded run, is where each input partition's input
	// ends (the first offset not to read). A batch that has read every
	// partition up to its stop ends then instead of at its deadline:
	// nothing more will come, and waiting would add up to a whole
	// interval to the job (atStops).
	Stops Checkpoint
}

// Observer sees each committed batch: how long its commit took and, per
// input record, its timestamp (the producer's, for Kafka input), so that the
// end-to-end latency from production to visibility in the sink can be
// measured. Implementations must be cheap: this runs on the commit path.
type Observer interface {
	Committed(commit time.Duration, committedAt time.Time, timestamps []time.Time)
}

func (o *Options) setDefaults() {
	if o.CommitInterval <= 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 10000
	}
	if o.DueBatchFloor == 0 {
		o.DueBatchFloor = o.CommitInterval / 10
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 5 * time.Minute
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// RebalanceGate is implemented by sources that hold consumer-group
// rebalances back while a batch is open (kgo.BlockRebalanceOnPoll). The
// coordinator lets a rebalance through only between batches, so a batch is
// not aborted by every membership change.
type RebalanceGate interface {
	AllowRebalance()
}

// GroupCommitter is implemented by protocols whose commit takes part in a
// consumer group's rebalance: a Kafka transaction commits the consumed
// offsets with the group generation (KIP-447), and franz-go holds group
// offset commits while this member's JoinGroup or SyncGroup is in flight.
// The coordinator answers a JoinGroup only once every member has rejoined
// or the rebalance timeout (60s) has passed, so such a commit can wait for
// the slowest member of the group: one deep in a long batch or commit, or
// paused.
type GroupCommitter interface {
	// GroupRebalance returns nil if a commit now would not wait for the
	// group, or else a channel closed once this member's join and sync
	// have completed.
	GroupRebalance() <-chan struct{}
}

// Connector runs one pipeline: it reads batches from its Source, passes
// them through its Processor, and commits them through its Protocol.
type Connector struct {
	opts  Options
	src   Source
	proc  Processor
	proto Protocol
	log   *slog.Logger

	stats Stats

	mu         sync.Mutex
	state      State
	err        error
	checkpoint Checkpoint // last committed
	lastCommit time.Time
	paused     bool
	resumed    chan struct{} // closed by Resume while paused

	lastAbort *AbortInfo // the last batch not committed, for status

	assignment any // the source's Assignment when the state was last checked

	timestamps []time.Time // of the open batch's input, for the Observer
	lastClose  time.Time   // when the previous batch stopped reading; zero after a failure
}

// Stats are a connector's running counters.
type Stats struct {
	RecordsIn  atomic.Uint64 // input records in committed batches
	RecordsOut atomic.Uint64 // output records in committed batches
	Commits    atomic.Uint64
	Aborts     [Fatal + 1]atomic.Uint64 // by CommitErrorKind
}

// New assembles a connector. It does not start it: call Run.
func New(opts Options, src Source, proc Processor, proto Protocol) *Connector {
	opts.setDefaults()
	return &Connector{
		opts:       opts,
		src:        src,
		proc:       proc,
		proto:      proto,
		log:        opts.Logger.With("connector", opts.Name),
		state:      Unassigned,
		checkpoint: Checkpoint{},
	}
}

// Name returns the connector's name.
func (c *Connector) Name() string { return c.opts.Name }

// Stats returns the connector's live counters.
func (c *Connector) Stats() *Stats { return &c.stats }

// Run runs the connector until ctx is cancelled (then it commits or aborts
// the open batch within ShutdownTimeout and returns nil) or until it fails
// (then it returns the error and the state is FAILED).
func (c *Connector) Run(ctx context.Context) error {
	defer c.src.Close()
	defer c.proto.Close()
	if cl, ok := c.proc.(interface{ Close() }); ok {
		defer cl.Close() // a stateful processor's own connections
	}
	c.setState(Running, nil)
	stopProgress := c.logProgress(ctx)
	defer stopProgress()
	// Writes outlive a stop request by ShutdownTimeout: the batch read
	// before the stop must be able to finish and commit. Writing with ctx
	// itself would fail the records still buffered the moment ctx is
	// cancelled, turning every clean stop into an abort (and, with
	// at_least_once, into duplicates after the restart).
	writeCtx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()
	stopWrites := context.AfterFunc(ctx, func() { time.AfterFunc(c.opts.ShutdownTimeout, cancelWrites) })
	defer stopWrites()

	var (
		cause        error
		needRecover  = true // load the checkpoint before the first batch
		failingSince time.Time
		attempt      int
	)
	for ctx.Err() == nil {
		if !c.waitWhilePaused(ctx) {
			break
		}
		var err error
		if needRecover {
			c.discardState()
			var cp Checkpoint
			cp, err = c.proto.Recover(ctx, cause)
			if err == nil {
				if cp != nil {
					c.src.Seek(cp)
				}
				needRecover = false
			}
		}
		if err == nil {
			err = c.runBatch(ctx, writeCtx)
		}
		if err == nil {
			failingSince, attempt, cause = time.Time{}, 0, nil
			continue
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			break
		}
		kind := KindOf(err)
		c.stats.Aborts[kind].Add(1)
		c.noteAbort(kind, err)
		if kind == Fatal {
			return c.fail(err)
		}
		now := time.Now()
		if failingSince.IsZero() {
			failingSince = now
		} else if now.Sub(failingSince) > c.opts.RetryTimeout {
			return c.fail(errors.Join(errors.New("no successful commit within the retry timeout"), err))
		}
		attempt++
		wait := backoff(attempt)
		c.log.Warn("batch not committed; rewinding to the last committed checkpoint",
			"kind", kind.String(), "err", err, "retry_in", wait)
		cause, needRecover = err, true
		if !sleep(ctx, wait) {
			break
		}
	}
	c.setState(Stopped, nil)
	c.log.Info("connector stopped")
	return nil
}

// runBatch reads, processes and writes one batch, then commits it with the
// input checkpoint after it. The batch closes at its deadline (batchDeadline),
// at MaxBatch input records, or when ctx is cancelled (shutdown: what was
// read is committed within ShutdownTimeout).
//
// ctx governs reading (a stop ends the batch); writeCtx, which outlives a
// stop by ShutdownTimeout, governs writing.
func (c *Connector) runBatch(ctx, writeCtx context.Context) error {
	opened := time.Now()
	deadline := c.batchDeadline(opened)
	// A batch that fails leaves no cadence to keep: the next one, after
	// recovery, gets a whole interval.
	c.lastClose = time.Time{}
	c.timestamps = c.timestamps[:0]
	cp := Checkpoint{}
	began := false
	var in, out int
	for in < c.opts.MaxBatch {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		recs, err := c.src.Poll(pctx, c.opts.MaxBatch-in)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			return c.abort(began, NewCommitError(Abortable, "poll", err))
		}
		all := recs
		recs, marks := splitControl(all)
		if len(all) > 0 {
			// Markers too: a stateful stage's state names the
			// offset its partition's checkpoint is at.
			if err := c.prepareState(writeCtx, all, began); err != nil {
				return c.abort(began, err)
			}
		}
		if len(marks) > 0 && len(recs) == 0 && !began {
			// Markers alone still move the checkpoint: the batch
			// commits them (nothing else).
			if err := c.proto.Begin(writeCtx); err != nil {
				return c.abort(false, err)
			}
			began = true
		}
		for _, m := range marks {
			cp.Advance(m.Origin)
		}
		if len(recs) > 0 {
			processed, err := c.proc.Process(recs)
			if err != nil {
				// A record the error policy says must fail the
				// connector: nothing of this batch commits.
				return c.abort(began, NewCommitError(Fatal, "process", err))
			}
			if !began {
				if err := c.proto.Begin(writeCtx); err != nil {
					return c.abort(false, err)
				}
				began = true
			}
			if err := c.proto.Write(writeCtx, processed); err != nil {
				return c.abort(true, err)
			}
			cp.AdvanceRecords(recs)
			if c.opts.Observer != nil {
				for _, r := range recs {
					c.timestamps = append(c.timestamps, r.Timestamp)
				}
			}
			in += len(recs)
			out += len(processed)
			if c.resultsDue(cp) && !c.rebalancing() {
				// Results are due and their partitions caught up:
				// end the batch now, or at the floor if sooner
				// than the deadline.
				if floor := opened.Add(max(c.opts.DueBatchFloor, 0)); floor.Before(deadline) {
					deadline = floor
				}
			}
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) || (began && c.atStops(cp)) {
			break
		}
	}
	closed := time.Now()
	if !began {
		c.lastClose = closed
		c.allowRebalance()
		return ctx.Err()
	}
	if err := c.advanceIdle(writeCtx, closed, cp); err != nil {
		return c.abort(true, err)
	}

	if st, ok := c.proc.(Stateful); ok {
		// The state changes of the whole batch, written once: closed
		// windows' results and the state they leave, in the same commit.
		flushed, err := st.Flush()
		if err != nil {
			return c.abort(true, NewCommitError(Fatal, "flush state", err))
		}
		if err := c.proto.Write(writeCtx, flushed); err != nil {
			return c.abort(true, err)
		}
		out += countData(flushed)
	}
	if err := c.awaitRebalance(ctx, in); err != nil {
		return err
	}
	timeout := c.opts.CommitTimeout
	if ctx.Err() != nil {
		timeout = c.opts.ShutdownTimeout
	}
	// The commit runs on writeCtx, not ctx: a stop request must not cancel
	// a commit half-way (that would make its outcome unknown for no
	// reason), but a commit under way when the stop comes gets no longer
	// than ShutdownTimeout after it.
	cctx, cancel := context.WithTimeout(writeCtx, timeout)
	defer cancel()
	start := time.Now()
	err := c.proto.Commit(cctx, cp)
	c.allowRebalance()
	if err != nil {
		return err
	}
	if st, ok := c.proc.(Stateful); ok {
		st.Committed()
	}
	c.lastClose = closed
	c.recordCommit(cp, in, out)
	if ctx.Err() != nil {
		// The fault suites count this line as a SIGTERM's bite: the stop
		// came while this batch was open, and the batch committed before
		// the connector stopped (and its process left the group).
		c.log.Info(StopCommittedMsg, "records", in)
	}
	if c.opts.Observer != nil {
		now := time.Now()
		c.opts.Observer.Committed(now.Sub(start), now, c.timestamps)
	}
	return nil
}

// batchDeadline is when a batch starting at now stops reading: one
// CommitInterval after the previous batch stopped, so the time spent
// committing that batch counts against this one's window and a record's
// wait stays near one interval plus one commit (records read during the
// previous commit were buffered by the source all along). The window is
// never shorter than half an interval: when commits take longer than
// that, batches stay large enough to amortise them.
func (c *Connector) batchDeadline(now time.Time) time.Time {
	floor := now.Add(c.opts.CommitInterval / 2)
	if c.lastClose.IsZero() {
		return now.Add(c.opts.CommitInterval)
	}
	if d := c.lastClose.Add(c.opts.CommitInterval); d.After(floor) {
		return d
	}
	return floor
}

// atStops reports whether a bounded run's input is all read: every
// partition with a stop (Options.Stops) is there in the open batch (cp),
// in what this connector committed, or in the group's committed offset
// when the source was assigned it (Assigner). A partition this connector
// never read nor committed, such as one another task holds, keeps the
// batch open to its deadline, as without stops. Only a batch that began
// asks: one that read nothing polls until its deadline, not in a loop.
func (c *Connector) atStops(cp Checkpoint) bool {
	if c.opts.Stops == nil {
		return false
	}
	var held map[TopicPartition]int64
	asked := false
	for tp, stop := range c.opts.Stops {
		if cp[tp] >= stop || c.checkpoint[tp] >= stop { // the coordinator's goroutine alone writes checkpoint
			continue
		}
		if !asked {
			if a, ok := c.src.(Assigner); ok {
				held = a.Assigned()
			}
			asked = true
		}
		if next, ok := held[tp]; !ok || next < stop {
			return false
		}
	}
	return true
}

// abort discards the open batch and returns cause. The abort itself is best
// effort: whatever it leaves open is aborted by Recover (a new producer
// epoch, a rolled-back database transaction) before the next batch.
func (c *Connector) abort(began bool, cause error) error {
	c.discardState()
	if began {
		actx, cancel := context.WithTimeout(context.Background(), c.opts.ShutdownTimeout)
		if err := c.proto.Abort(actx); err != nil {
			c.log.Warn("abort failed; recovery will fence the open batch", "err", err)
		}
		cancel()
	}
	c.allowRebalance()
	return cause
}

// awaitRebalance keeps the commit of the open batch out of a join of the
// protocol's consumer group (GroupCommitter). Inside the commit, the wait
// for the other members could not be interrupted by a stop, and the
// commit would then fail anyway, carrying the generation before the join.
//
//   - Running: it waits, the batch still open, until the join and sync
//     have completed (up to CommitTimeout); the commit then carries the
//     new generation. If the rebalance took a partition of the batch, the
//     protocol's commit aborts (GroupTransactSession records the revoke).
//   - Stopping, or a stop during that wait: it aborts the batch at once
//     (abortForRebalance).
func (c *Connector) awaitRebalance(ctx context.Context, in int) error {
	g, ok := c.proto.(GroupCommitter)
	if !ok {
		return nil
	}
	done := g.GroupRebalance()
	if done == nil {
		return nil
	}
	if ctx.Err() != nil {
		return c.abortForRebalance(in)
	}
	t := time.NewTimer(c.opts.CommitTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return c.abortForRebalance(in)
	case <-t.C:
		return c.abort(true, NewCommitError(Abortable, "commit",
			fmt.Errorf("the consumer group's rebalance did not complete within %v", c.opts.CommitTimeout)))
	}
}

// rebalancing reports whether this member's consumer-group join or sync
// is in flight: a batch ended then would only wait for it (awaitRebalance)
// instead of reading on, so results that fell due do not end it early.
func (c *Connector) rebalancing() bool {
	g, ok := c.proto.(GroupCommitter)
	if !ok {
		return false
	}
	done := g.GroupRebalance()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// The log lines of a stop that found a batch open: it committed it
// (runBatch), or aborted it because the group was rebalancing
// (abortForRebalance).
const (
	StopCommittedMsg = "stopping: the open batch the stop found is committed"
	StopAbortedMsg   = "stopping during a consumer-group rebalance: the open batch is aborted, not committed; the partitions' next owner reads it again"
)

// abortForRebalance ends the open batch of a stop that finds this member
// joining its consumer group. Committing would wait for the other members (up to the
// whole ShutdownTimeout, then end as an unknown outcome with the
// transaction left open until the broker's transaction timeout); aborting
// waits for nobody. Nothing of the batch is committed: whoever owns its
// partitions next reads it again from the committed checkpoint, so
// exactly-once holds, and at-least-once writes again what was already
// acknowledged. It counts as an abortable abort and returns
// context.Canceled, a clean stop.
func (c *Connector) abortForRebalance(records int) error {
	c.log.Info(StopAbortedMsg, "records", records)
	c.stats.Aborts[Abortable].Add(1)
	return c.abort(true, context.Canceled)
}

func (c *Connector) allowRebalance() {
	if g, ok := c.src.(RebalanceGate); ok {
		g.AllowRebalance()
	}
}

func (c *Connector) recordCommit(cp Checkpoint, in, out int) {
	c.stats.RecordsIn.Add(uint64(in))
	c.stats.RecordsOut.Add(uint64(out))
	c.stats.Commits.Add(1)
	c.mu.Lock()
	c.checkpoint.Merge(cp)
	c.lastCommit = time.Now()
	c.mu.Unlock()
}

func (c *Connector) fail(err error) error {
	c.setState(Failed, err)
	c.log.Error("connector failed", "err", err)
	return err
}

// noteAbort keeps the last abort for status: a connector that keeps
// retrying (an unreachable sink, a second live process with the same
// instance_id) says why there, not only in its log.
func (c *Connector) noteAbort(kind CommitErrorKind, err error) {
	c.mu.Lock()
	c.lastAbort = &AbortInfo{Kind: kind.String(), Error: err.Error(), At: time.Now().UTC()}
	c.mu.Unlock()
}

func (c *Connector) setState(s State, err error) {
	c.mu.Lock()
	c.state, c.err = s, err
	c.mu.Unlock()
}

// backoff grows 100ms, 200ms, ... up to 5s.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 6)
	return min(d, 5*time.Second)
}

// sleep waits d or until ctx is done; it reports whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// MarkFailed records a failure that happened outside Run's own error
// handling (the daemon uses it for a panic).
func (c *Connector) MarkFailed(err error) { c.setState(Failed, err) }

// Pause makes the connector stop reading after the batch in progress
// commits; it keeps its group membership and resources (Kafka Connect's
// PAUSED). A rebalance while paused proceeds: no batch is open.
func (c *Connector) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		c.paused = true
		c.resumed = make(chan struct{})
	}
}

// Resume undoes Pause.
func (c *Connector) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		c.paused = false
		close(c.resumed)
	}
}

// waitWhilePaused blocks while the connector is paused, between batches;
// it reports false if ctx ended first.
func (c *Connector) waitWhilePaused(ctx context.Context) bool {
	c.mu.Lock()
	if !c.paused {
		c.mu.Unlock()
		return true
	}
	resumed := c.resumed
	if c.state == Running {
		c.state = Paused
	}
	c.mu.Unlock()
	c.allowRebalance()
	c.log.Info("connector paused")
	select {
	case <-resumed:
		c.log.Info("connector resumed")
		c.mu.Lock()
		if c.state == Paused {
			c.state = Running
		}
		c.mu.Unlock()
		return true
	case <-ctx.Done():
		return false
	}
}

// prepareState readies a stateful processor for recs: its state is dropped
// if the source's partitions may have moved since it was loaded (another
// member may have committed them meanwhile), and the committed state of
// the partitions of recs is loaded if not in memory.
//
// A move noticed when the batch already holds records (began) aborts the
// batch instead: franz-go holds back only the revocation, so a join and
// sync can complete between two polls of one batch, and dropping the
// state then would lose the changes of the records read before, which
// the batch's checkpoint would still commit.
func (c *Connector) prepareState(ctx context.Context, recs []*Record, began bool) error {
	st, ok := c.proc.(Stateful)
	if !ok {
		return nil
	}
	if t, ok := c.src.(AssignmentTracker); ok {
		if a := t.Assignment(); a != c.assignment {
			if began && c.assignment != nil {
				return NewCommitError(Abortable, "rebalance", errors.New("the group's assignment changed during the batch; its stateful stage re-reads it from the committed checkpoint"))
			}
			st.Discard()
			c.assignment = a
		}
	}
	if err := st.Prepare(ctx, recs); err != nil {
		var ce *CommitError
		if errors.As(err, &ce) {
			return err
		}
		return NewCommitError(Abortable, "load state", err)
	}
	return nil
}

// resultsDue reports whether the batch holds due results (ResultsDue) of
// partitions that are all caught up. A partition is caught up when the
// batch has read it to at most one offset below the last stable offset
// the source saw: one, because a transactional input ends in a commit
// marker, which is no record.
func (c *Connector) resultsDue(cp Checkpoint) bool {
	rd, ok := c.proc.(ResultsDue)
	if !ok {
		return false
	}
	due := rd.DuePartitions()
	if len(due) == 0 {
		return false
	}
	l, ok := c.src.(Lagger)
	if !ok {
		return false
	}
	hwms := l.HighWatermarks()
	for _, tp := range due {
		hw, seen := hwms[tp]
		next, read := cp[tp]
		if !seen || !read || next+1 < hw {
			return false
		}
	}
	return true
}

// advanceIdle lets an IdleAdvancer raise idle partitions' watermarks at
// the end of a batch, and adds the partitions it changed to cp at their
// unchanged offsets. It does nothing when the group's assignment moved
// during the batch (the view of who holds what is stale; the next batch
// discards the state anyway).
func (c *Connector) advanceIdle(ctx context.Context, now time.Time, cp Checkpoint) error {
	ia, ok := c.proc.(IdleAdvancer)
	if !ok {
		return nil
	}
	var assigned func() map[TopicPartition]int64
	if a, ok := c.src.(Assigner); ok {
		if t, ok := c.src.(AssignmentTracker); ok && t.Assignment() != c.assignment {
			return nil
		}
		// An idle advance writes a partition's state and results in
		// this batch's commit without a record of it, so nothing but
		// the assignment says another member is not reading and
		// committing it meanwhile. The answer must be about the
		// generation this batch was read in (checked just above): a
		// consumer group's Assigned still shows the previous
		// generation's after a rebalance, and from it a member
		// advanced the partitions it had just given away, closing
		// their new owner's windows a second time (ci44). Within the
		// generation, the partition stays this member's until the
		// batch's commit is decided: revocations wait for it
		// (RebalanceGate), and a member expelled meanwhile commits
		// nothing (its offsets carry the old generation).
		held := a.Assigned
		if ca, ok := c.src.(CurrentAssigner); ok {
			held = ca.AssignedNow
		}
		assigned = func() map[TopicPartition]int64 {
			if h := held(); h != nil {
				return h
			}
			return map[TopicPartition]int64{} // not known yet: nothing is held for sure
		}
	}
	idle, err := ia.AdvanceIdle(ctx, now, assigned)
	if err != nil {
		var ce *CommitError
		if errors.As(err, &ce) {
			return err
		}
		return NewCommitError(Abortable, "idle watermarks", err)
	}
	for tp, next := range idle {
		if _, ok := cp[tp]; !ok {
			cp[tp] = next
		}
	}
	return nil
}

// discardState drops a stateful processor's in-memory state: the next
// batch re-reads its input from the committed checkpoint, so its state
// must be the committed one too.
func (c *Connector) discardState() {
	if st, ok := c.proc.(Stateful); ok {
		st.Discard()
	}
	c.assignment = nil
}

// splitControl separates input transaction markers (ControlRecord) from
// the records to process. Without markers it returns recs as they are.
func splitControl(recs []*Record) (data, marks []*Record) {
	n := 0
	for _, r := range recs {
		if r.Kind == ControlRecord {
			n++
		}
	}
	if n == 0 {
		return recs, nil
	}
	data = make([]*Record, 0, len(recs)-n)
	marks = make([]*Record, 0, n)
	for _, r := range recs {
		if r.Kind == ControlRecord {
			marks = append(marks, r)
		} else {
			data = append(data, r)
		}
	}
	return data, marks
}

// countData counts the output records among recs (not state records).
func countData(recs []*Record) int {
	n := 0
	for _, r := range recs {
		if r.Kind == DataRecord {
			n++
		}
	}
	return n
}
