package admin_test

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/cluster"
	"github.com/connectd/connectd/connector"
)

// members is a fixed view of the cluster's statuses.
type members []cluster.TaskStatus

func (m members) Statuses(name string) []cluster.TaskStatus {
	var out []cluster.TaskStatus
	for _, ts := range m {
		if ts.Connector == name {
			out = append(out, ts)
		}
	}
	return out
}

// TestClusterStatusListsEveryMember: with WithClusterStatus, a connector's
// status lists this member's live tasks, then every other member's from
// the status topic with its worker_id; a stale member's tasks show
// UNASSIGNED; this member's own entries in the topic are not repeated; a
// published trace is masked again.
func TestClusterStatusListsEveryMember(t *testing.T) {
	f := newFake()
	raw := `{"name": "a", "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "kafka", "topic": "t"}}`
	f.add(parsed(t, "a", raw), []byte(raw), connector.Running, nil)
	h := admin.New(f, nil, admin.WithWorkerID("w1"), admin.WithClusterStatus(members{
		{Connector: "a", Task: 0, WorkerID: "w1", State: "PAUSED"}, // stale copy of this member's own
		{Connector: "a", Task: 0, WorkerID: "w2", State: "FAILED", Trace: "dial postgres://u:hunter2@db/x"},
		{Connector: "a", Task: 0, WorkerID: "w3", State: "RUNNING", Stale: true},
		{Connector: "other", Task: 0, WorkerID: "w2", State: "RUNNING"},
	})).Handler()
	st := do(t, h, "GET", "/connectors/a/status", "")
	want := `"tasks":[{"id":0,"state":"RUNNING","worker_id":"w1"},` +
		`{"id":0,"state":"FAILED","worker_id":"w2","trace":"dial postgres://u:****@db/x"},` +
		`{"id":0,"state":"UNASSIGNED","worker_id":"w3","trace":"no status from this member for 3 refresh intervals"}]`
	if !strings.Contains(st.Body.String(), want) {
		t.Fatalf("status: %s\nwant it to contain %s", st.Body, want)
	}
}
