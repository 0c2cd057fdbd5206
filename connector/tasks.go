package connector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Runner is what the daemon runs for one configured connector: a single
// Connector, or Tasks when the connector is split into several.
type Runner interface {
	Name() string
	Run(ctx context.Context) error
	Status() Status
	Pause()
	Resume()
	MarkFailed(err error)
}

var (
	_ Runner = (*Connector)(nil)
	_ Runner = (*Tasks)(nil)
)

// TaskStatus is one task's state, for the admin API's tasks array.
type TaskStatus struct {
	ID    int    `json:"id"`
	State State  `json:"state"`
	Error string `json:"error,omitempty"`
}

// Tasks runs one connector as several Connectors (Kafka Connect's
// tasks.max): each is its own member of the source's consumer group with
// its own protocol (its own transactional ID, its own claims in a sink),
// so the group splits the partitions between them and each commits its
// share by itself. That is what lets one task's commit overlap the others'
// reading and producing; every exactly-once argument of the protocol holds
// per task exactly as it does for separate processes, which the group
// already has to handle.
//
// A task that fails stays FAILED while the others go on (as in Kafka
// Connect); the connector reports FAILED until it is restarted.
type Tasks struct {
	tasks []*Connector
}

// NewTasks groups tasks, which must share a name and a guarantee.
func NewTasks(tasks []*Connector) *Tasks { return &Tasks{tasks: tasks} }

// Name is the connector's name.
func (t *Tasks) Name() string { return t.tasks[0].Name() }

// Run runs every task until ctx ends and returns their failures, if any.
func (t *Tasks) Run(ctx context.Context) error {
	errs := make([]error, len(t.tasks))
	var wg sync.WaitGroup
	for i, c := range t.tasks {
		wg.Go(func() {
			if err := c.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("task %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Pause pauses every task.
func (t *Tasks) Pause() {
	for _, c := range t.tasks {
		c.Pause()
	}
}

// Resume resumes every task.
func (t *Tasks) Resume() {
	for _, c := range t.tasks {
		c.Resume()
	}
}

// MarkFailed marks every task FAILED (a panic in the daemon's runner).
func (t *Tasks) MarkFailed(err error) {
	for _, c := range t.tasks {
		c.MarkFailed(err)
	}
}

// Status sums the tasks' counters and merges their partitions. The state
// is FAILED if any task failed (with the first failed task's error), else
// the first task's (the tasks are paused, resumed and stopped together).
func (t *Tasks) Status() Status {
	var st Status
	st.Aborts = map[string]uint64{}
	latest := map[TopicPartition]PartitionStatus{}
	for i, c := range t.tasks {
		ts := c.Status()
		st.Tasks = append(st.Tasks, TaskStatus{ID: i, State: ts.State, Error: ts.Error})
		if i == 0 {
			st.Name, st.State, st.Guarantee = ts.Name, ts.State, ts.Guarantee
		}
		if ts.State == Failed && st.Error == "" {
			st.State, st.Error = Failed, fmt.Sprintf("task %d: %s", i, ts.Error)
		}
		if ts.LastCommit.After(st.LastCommit) {
			st.LastCommit = ts.LastCommit
		}
		st.RecordsIn += ts.RecordsIn
		st.RecordsOut += ts.RecordsOut
		st.Commits += ts.Commits
		st.DeadLettered += ts.DeadLettered
		if w := ts.Window; w != nil {
			if st.Window == nil {
				st.Window = &WindowStatus{}
			}
			st.Window.Aggregated += w.Aggregated
			st.Window.Late += w.Late
			st.Window.Emitted += w.Emitted
			st.Window.OpenWindows += w.OpenWindows
			st.Window.StateBytes += w.StateBytes
			st.Window.Restores += w.Restores
			st.Window.RestoredWindows += w.RestoredWindows
			st.Window.IdleAdvances += w.IdleAdvances
			st.Window.IdleLate += w.IdleLate
			st.Window.LastRestoreMS = max(st.Window.LastRestoreMS, w.LastRestoreMS)
		}
		for k, n := range ts.Aborts {
			st.Aborts[k] += n
		}
		if a := ts.LastAbort; a != nil && (st.LastAbort == nil || a.At.After(st.LastAbort.At)) {
			a.Error = fmt.Sprintf("task %d: %s", i, a.Error)
			st.LastAbort = a
		}
		if ts.TwoPhase != nil {
			if st.TwoPhase == nil {
				st.TwoPhase = &TwoPhaseStatus{}
			}
			st.TwoPhase.InDoubt += ts.TwoPhase.InDoubt
			st.TwoPhase.ResolvedCommitted += ts.TwoPhase.ResolvedCommitted
			st.TwoPhase.ResolvedRolledBack += ts.TwoPhase.ResolvedRolledBack
			if ts.TwoPhase.LastRecovery.After(st.TwoPhase.LastRecovery) {
				st.TwoPhase.LastRecovery = ts.TwoPhase.LastRecovery
			}
		}
		// A partition moving between tasks may be listed by both for a
		// moment (each lists what the coordinator last said it holds);
		// the further checkpoint is the newer one.
		for _, ps := range ts.Partitions {
			tp := TopicPartition{Topic: ps.Topic, Partition: ps.Partition}
			if old, ok := latest[tp]; !ok || ps.Checkpoint > old.Checkpoint {
				latest[tp] = ps
			}
		}
	}
	for _, ps := range latest {
		st.Partitions = append(st.Partitions, ps)
	}
	slices.SortFunc(st.Partitions, func(a, b PartitionStatus) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return st
}
