package cluster

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

const statusTopic = "_connectd-status"

func openStatus(t *testing.T, addrs []string, worker string, interval time.Duration) *StatusLog {
	t.Helper()
	s, err := OpenStatus(t.Context(), addrs, statusTopic, worker, interval, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// waitStatuses waits until s's statuses of connector satisfy cond.
func waitStatuses(t *testing.T, what string, s *StatusLog, connector string, cond func([]TaskStatus) bool) []TaskStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.Statuses(connector)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: statuses %+v", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStatusesOfEveryMember: two members publish their tasks; each sees
// both members' tasks with their worker IDs; a clean stop tombstones a
// member's statuses; a member that stops refreshing without a clean stop
// (a crash) goes stale after StaleAfter intervals, and its statuses stay.
func TestStatusesOfEveryMember(t *testing.T) {
	c := newCluster(t)
	const interval = 50 * time.Millisecond
	a := openStatus(t, c.ListenAddrs(), "a", interval)
	b := openStatus(t, c.ListenAddrs(), "b", interval)
	tasks := func(states ...string) func() []TaskStatus {
		return func() []TaskStatus {
			var out []TaskStatus
			for i, st := range states {
				out = append(out, TaskStatus{Connector: "orders", Task: i, State: st})
			}
			return out
		}
	}
	actx, stopA := context.WithCancel(context.Background())
	aDone := make(chan struct{})
	go func() { defer close(aDone); a.Run(actx, tasks("RUNNING", "RUNNING")) }()
	bctx, crashB := context.WithCancel(context.Background())
	defer crashB()
	go func() {
		// b "crashes": it publishes until bctx ends, and writes no
		// tombstones (not Run's clean stop).
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for bctx.Err() == nil {
			_ = b.Publish(bctx, tasks("PAUSED")())
			select {
			case <-bctx.Done():
			case <-tk.C:
			}
		}
	}()

	all := func(got []TaskStatus) bool {
		if len(got) != 3 {
			return false
		}
		for _, st := range got {
			if st.Stale {
				return false
			}
		}
		return got[0].WorkerID == "a" && got[2].WorkerID == "b" && got[2].State == "PAUSED"
	}
	waitStatuses(t, "a sees both members", a, "orders", all)
	waitStatuses(t, "b sees both members", b, "orders", all)

	crashB()
	got := waitStatuses(t, "b's task goes stale on a", a, "orders", func(got []TaskStatus) bool {
		return len(got) == 3 && got[2].Stale && !got[0].Stale
	})
	if age := time.Now().UnixMilli() - got[2].At; age < StaleAfter*interval.Milliseconds() {
		t.Fatalf("stale after %d ms, before %d intervals of %v", age, StaleAfter, interval)
	}

	stopA()
	<-aDone
	waitStatuses(t, "a's clean stop removes its tasks, b's stale one stays", b, "orders", func(got []TaskStatus) bool {
		return len(got) == 1 && got[0].WorkerID == "b" && got[0].Stale
	})
}

// TestPublishDropsGoneTasks: a task this worker no longer runs is
// tombstoned by its next publish.
func TestPublishDropsGoneTasks(t *testing.T) {
	c := newCluster(t)
	a := openStatus(t, c.ListenAddrs(), "a", time.Second)
	two := []TaskStatus{{Connector: "x", Task: 0, State: "RUNNING"}, {Connector: "x", Task: 1, State: "RUNNING"}}
	if err := a.Publish(t.Context(), two); err != nil {
		t.Fatal(err)
	}
	waitStatuses(t, "two tasks", a, "x", func(got []TaskStatus) bool { return len(got) == 2 })
	if err := a.Publish(t.Context(), two[:1]); err != nil {
		t.Fatal(err)
	}
	waitStatuses(t, "task 1 removed", a, "x", func(got []TaskStatus) bool { return len(got) == 1 && got[0].Task == 0 })
}
