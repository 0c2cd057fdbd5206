package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memberTasks is a status answer's tasks as worker:state, sorted.
func memberTasks(t *testing.T, base, name string) []string {
	t.Helper()
	var st struct {
		Tasks []struct {
			State    string `json:"state"`
			WorkerID string `json:"worker_id"`
		} `json:"tasks"`
	}
	getJSON(t, base+"/connectors/"+name+"/status", &st)
	var out []string
	for _, ts := range st.Tasks {
		out = append(out, ts.WorkerID+":"+ts.State)
	}
	slices.Sort(out)
	return out
}

// waitMemberTasks polls base's status of name until it lists want.
func waitMemberTasks(t *testing.T, what, base, name string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var got []string
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = memberTasks(t, base, name); slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("%s: tasks %v, want %v", what, got, want)
}

// TestClusterStatus: three connectd processes in one cluster (status topic
// on the same broker) run the same connector; any member's status lists
// every member's task with its worker_id. A SIGKILLed member, which writes
// no tombstone, shows UNASSIGNED on the others after 3 status intervals; a
// SIGTERMed one removes its tasks as it stops.
func TestClusterStatus(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	member := func(id string) *daemonProc {
		path := writeConfig(t, dir, id+".yaml", fmt.Sprintf(`
instance_id: %s
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [%s]
cluster:
	id: test
	status_interval: 200ms
connectors:
	- name: copy
		shutdown_timeout: 5s
		source: {type: kafka, topics: [in]}
		sink: {type: kafka, topic: out}
`, id, strings.Join(c.ListenAddrs(), ",")))
		return startRunEnv(t, nil, path)
	}
	a, b, cc := member("a"), member("b"), member("c")
	baseA, baseB := a.adminURL(t), b.adminURL(t)
	cc.adminURL(t)
	all := []string{"a:RUNNING", "b:RUNNING", "c:RUNNING"}
	waitMemberTasks(t, "A sees every member", baseA, "copy", all...)
	waitMemberTasks(t, "B sees every member", baseB, "copy", all...)

	cc.signal(t, syscall.SIGKILL)
	cc.waitKilled(t)
	waitMemberTasks(t, "C killed: UNASSIGNED on A", baseA, "copy", "a:RUNNING", "b:RUNNING", "c:UNASSIGNED")

	b.stopClean(t)
	waitMemberTasks(t, "B stopped cleanly: gone from A", baseA, "copy", "a:RUNNING", "c:UNASSIGNED")
	a.stopClean(t)
}
