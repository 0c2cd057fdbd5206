package connector

import (
	"context"
	"time"
)

// PartitionStatus is one source partition's committed position.
type PartitionStatus struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Checkpoint    int64  `json:"checkpoint"`
	HighWatermark int64  `json:"high_watermark,omitempty"`
	Lag           int64  `json:"lag"`
}

// Status is a snapshot of a connector for the admin API.
type Status struct {
	Name       string    `json:"name"`
	State      State     `json:"state"`
	Guarantee  string    `json:"guarantee"`
	Error      string    `json:"error,omitempty"`
	LastCommit time.Time `json:"last_commit,omitzero"`
	RecordsIn  uint64    `json:"records_in"`
	RecordsOut uint64    `json:"records_out"`
	Commits    uint64    `json:"commits"`
	// DeadLettered counts records routed to the dead-letter queue.
	DeadLettered uint64            `json:"dead_lettered"`
	Aborts       map[string]uint64 `json:"aborts"`
	// LastAbort is the last batch that did not commit, if any.
	LastAbort  *AbortInfo        `json:"last_abort,omitempty"`
	Partitions []PartitionStatus `json:"partitions"`
	// TwoPhase is set for a connector committing by two-phase commit.
	TwoPhase *TwoPhaseStatus `json:"two_phase,omitempty"`
	// Window is set for a connector with a window stage.
	Window *WindowStatus `json:"window,omitempty"`
	// Tasks is set for a connector split into tasks (Tasks): each task's
	// state; a single Connector leaves it empty.
	Tasks []TaskStatus `json:"tasks,omitempty"`
	// Message says how a connector in a terminal state that is no
	// failure (Finished) got there.
	Message string `json:"message,omitempty"`
}

// TwoPhaseStatus is what a two-phase connector's recovery saw and did with
// prepared transactions.
type TwoPhaseStatus struct {
	// InDoubt is how many prepared transactions the last recovery found
	// and has not resolved yet (0 once it finished).
	InDoubt int64 `json:"in_doubt"`
	// ResolvedCommitted and ResolvedRolledBack count the prepared
	// transactions recovery resolved, by outcome.
	ResolvedCommitted  uint64 `json:"resolved_committed"`
	ResolvedRolledBack uint64 `json:"resolved_rolled_back"`
	// LastRecovery is when recovery last listed them.
	LastRecovery time.Time `json:"last_recovery,omitzero"`
}

// WindowStatus is a window stage's counters and state size. Records that
// reached the stage = Aggregated + Late (counted in batches processed,
// committed or not).
type WindowStatus struct {
	Aggregated  uint64 `json:"records_aggregated"`
	Late        uint64 `json:"records_late"`
	Emitted     uint64 `json:"results_emitted"`
	OpenWindows int64  `json:"open_windows"`
	// StateBytes estimates the memory of the open windows.
	StateBytes int64 `json:"state_bytes"`
	// Restores counts partition state loads from the sink; LastRestoreMS
	// is how long the last one took.
	Restores      uint64  `json:"state_restores"`
	LastRestoreMS float64 `json:"last_restore_ms"`
	// RestoredWindows counts the windows those loads brought back.
	RestoredWindows uint64 `json:"windows_restored"`
	// IdleAdvances counts idle partitions whose watermark idle_timeout
	// raised to close windows; IdleLate the late records (among Late) of
	// windows such an advance had closed.
	IdleAdvances uint64 `json:"idle_advances"`
	IdleLate     uint64 `json:"records_late_idle"`
}

// WindowReporter is implemented by processors with a window stage.
type WindowReporter interface {
	WindowStatus() WindowStatus
}

// Assigner is implemented by sources whose partitions a consumer group
// hands out: status then lists the partitions the task holds now, not
// every partition it ever committed (one revoked or lost in a rebalance is
// listed by the task or process that took it).
type Assigner interface {
	// Assigned returns the partitions the source holds now, each with the
	// group's committed offset when it was assigned (-1 for none; where
	// the sink keeps the checkpoint, that offset is the group's copy for
	// lag display, and the task's first commit of the partition corrects
	// it).
	Assigned() map[TopicPartition]int64
}

// AbortInfo is why a batch did not commit: its kind (abortable, fenced,
// commit_unknown, fatal), the error and when.
type AbortInfo struct {
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// ClaimReporter is implemented by protocols that claim partitions in the
// sink when they are assigned (the sink's own checkpoints). A claim that
// fails (the sink unreachable, a wrong password) makes the group rejoin
// and retry; nothing is read meanwhile, so no batch aborts, and the
// failure is what the status shows as the last abort, kind "claim".
type ClaimReporter interface {
	// ClaimFailure is the last failed claim, nil once one succeeded.
	ClaimFailure() *AbortInfo
}

// TwoPhaseReporter is implemented by protocols that prepare transactions.
type TwoPhaseReporter interface {
	TwoPhaseStatus() TwoPhaseStatus
}

// Status returns a snapshot of the connector's state, checkpoint and lag.
func (c *Connector) Status() Status {
	c.mu.Lock()
	st := Status{
		Name:       c.opts.Name,
		State:      c.state,
		Guarantee:  c.opts.Guarantee,
		LastCommit: c.lastCommit,
	}
	if c.err != nil {
		st.Error = c.err.Error()
	}
	if c.lastAbort != nil {
		a := *c.lastAbort
		st.LastAbort = &a
	}
	cp := c.checkpoint.Clone()
	c.mu.Unlock()
	if r, ok := c.proto.(ClaimReporter); ok {
		if a := r.ClaimFailure(); a != nil && (st.LastAbort == nil || a.At.After(st.LastAbort.At)) {
			st.LastAbort = a
		}
	}

	st.RecordsIn = c.stats.RecordsIn.Load()
	st.RecordsOut = c.stats.RecordsOut.Load()
	st.Commits = c.stats.Commits.Load()
	if d, ok := c.proc.(interface{ DeadLettered() uint64 }); ok {
		st.DeadLettered = d.DeadLettered()
	}
	if w, ok := c.proc.(WindowReporter); ok {
		ws := w.WindowStatus()
		st.Window = &ws
	}
	if r, ok := c.proto.(TwoPhaseReporter); ok {
		tp := r.TwoPhaseStatus()
		st.TwoPhase = &tp
	}
	st.Aborts = map[string]uint64{}
	for k := Abortable; k <= Fatal; k++ {
		st.Aborts[k.String()] = c.stats.Aborts[k].Load()
	}
	var hwms map[TopicPartition]int64
	if l, ok := c.src.(Lagger); ok {
		hwms = l.HighWatermarks()
	}
	if a, ok := c.src.(Assigner); ok {
		cp = heldCheckpoint(cp, a.Assigned())
	} else {
		for tp := range hwms {
			if _, ok := cp[tp]; !ok {
				cp[tp] = 0 // assigned but nothing committed yet: all of it is lag
			}
		}
	}
	for _, tp := range cp.Partitions() {
		ps := PartitionStatus{Topic: tp.Topic, Partition: tp.Partition, Checkpoint: cp[tp]}
		if hwm, ok := hwms[tp]; ok {
			ps.HighWatermark = hwm
			ps.Lag = max(hwm-cp[tp], 0)
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st
}

// heldCheckpoint is the checkpoint of the partitions a task holds now,
// given what it committed itself (committed, which keeps every partition
// it ever committed) and what it holds (held, with the group's committed
// offset when the task took it, -1 for none). A partition the task held
// before, lost and took back starts where its last owner committed, which
// may be past what this task committed then; one nobody committed shows 0,
// all of it lag.
func heldCheckpoint(committed Checkpoint, held map[TopicPartition]int64) Checkpoint {
	cp := make(Checkpoint, len(held))
	for tp, groupNext := range held {
		next := max(groupNext, 0)
		if own, ok := committed[tp]; ok {
			next = max(next, own)
		}
		cp[tp] = next
	}
	return cp
}

// logProgress logs records/s and commits every ProgressInterval until the
// returned stop function is called.
func (c *Connector) logProgress(ctx context.Context) (stop func()) {
	if c.opts.ProgressInterval < 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.opts.ProgressInterval)
		defer t.Stop()
		lastIn, lastAt := c.stats.RecordsIn.Load(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				in := c.stats.RecordsIn.Load()
				rate := float64(in-lastIn) / now.Sub(lastAt).Seconds()
				lastIn, lastAt = in, now
				c.log.Info("progress", "records_per_sec", int64(rate), "records_in", in,
					"records_out", c.stats.RecordsOut.Load(), "commits", c.stats.Commits.Load())
			}
		}
	}()
	return func() { cancel(); <-done }
}
