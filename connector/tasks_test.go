package connector

import (
	"errors"
	"testing"
	"time"
)

// TestTasksStatusMerges: counters add up, a partition listed by two tasks
// (it moved between them) keeps the further checkpoint, and one failed
// task makes the connector FAILED with that task's error.
func TestTasksStatusMerges(t *testing.T) {
	a, b := TopicPartition{Topic: "in", Partition: 0}, TopicPartition{Topic: "in", Partition: 1}
	mk := func(cp Checkpoint, in uint64, commit time.Time) *Connector {
		c := New(Options{Name: "copy", Guarantee: "exactly_once", ProgressInterval: -1}, newFakeSource(1, nil), nil, nil)
		c.checkpoint, c.lastCommit, c.state = cp, commit, Running
		c.stats.RecordsIn.Add(in)
		c.stats.Commits.Add(1)
		c.stats.Aborts[Fenced].Add(1)
		return c
	}
	t0 := time.Unix(100, 0)
	t1, t2 := mk(Checkpoint{a: 5, b: 7}, 10, t0), mk(Checkpoint{a: 9}, 20, t0.Add(time.Second))
	tasks := NewTasks([]*Connector{t1, t2})

	st := tasks.Status()
	if st.Name != "copy" || st.State != Running || st.RecordsIn != 30 || st.Commits != 2 || st.Aborts["fenced"] != 2 {
		t.Errorf("status %+v", st)
	}
	if !st.LastCommit.Equal(t0.Add(time.Second)) {
		t.Errorf("last commit %v, want the later task's", st.LastCommit)
	}
	want := []PartitionStatus{{Topic: "in", Partition: 0, Checkpoint: 9}, {Topic: "in", Partition: 1, Checkpoint: 7}}
	if len(st.Partitions) != 2 || st.Partitions[0] != want[0] || st.Partitions[1] != want[1] {
		t.Errorf("partitions %+v, want %+v", st.Partitions, want)
	}
	if len(st.Tasks) != 2 || st.Tasks[1].ID != 1 || st.Tasks[1].State != Running {
		t.Errorf("tasks %+v", st.Tasks)
	}

	t2.MarkFailed(errors.New("boom"))
	st = tasks.Status()
	if st.State != Failed || st.Error != "task 1: boom" || st.Tasks[0].State != Running || st.Tasks[1].State != Failed {
		t.Errorf("after task 1 failed: state %s, error %q, tasks %+v", st.State, st.Error, st.Tasks)
	}
	tasks.Pause()
	if !t1.paused || !t2.paused {
		t.Error("Pause did not reach every task")
	}
	tasks.Resume()
	if t1.paused || t2.paused {
		t.Error("Resume did not reach every task")
	}
}
