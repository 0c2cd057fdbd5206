package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/testenv"
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
		return startMember(t, dir, id, "test", strings.Join(c.ListenAddrs(), ","), `
connectors:
	- name: copy
		shutdown_timeout: 5s
		source: {type: kafka, topics: [in], session_timeout: 10s}
		sink: {type: kafka, topic: out}
`, nil)
	}
	a, b, cc := member("a"), member("b"), member("c")
	baseA, baseB := a.adminURL(t), b.adminURL(t)
	cc.adminURL(t)
	all := []string{"a:RUNNING", "b:RUNNING", "c:RUNNING"}
	waitMemberTasks(t, "A sees every member", baseA, "copy", all...)
	waitMemberTasks(t, "B sees every member", baseB, "copy", all...)
	// C, killed, holds every rebalance until its session times out, and
	// a clean stop waiting in such a rebalance with it (kfake does not
	// end a join when its member leaves): a 10s session timeout (above)
	// bounds that wait, and the kill comes once the group is stable.
	waitGroupStable(t, c, "connectd-copy", 3)

	cc.signal(t, syscall.SIGKILL)
	cc.waitKilled(t)
	waitMemberTasks(t, "C killed: UNASSIGNED on A", baseA, "copy", "a:RUNNING", "b:RUNNING", "c:UNASSIGNED")

	b.stopClean(t)
	waitMemberTasks(t, "B stopped cleanly: gone from A", baseA, "copy", "a:RUNNING", "c:UNASSIGNED")
	a.stopClean(t)
}

// TestClusterLifecycle: three members of one cluster follow its config
// topic. A's file seeds a connector the others' files lack; a connector
// created through A runs on A, B and C; paused through B it pauses
// everywhere, resumed through C it runs everywhere; a SIGKILLed member's
// partitions move to the others while records flow and it rejoins on
// restart, every record copied exactly once; deleted through A it stops
// everywhere with its offsets kept, and a restarted member does not seed
// again what was deleted. The topic holds ${VAR} references, not values.
func TestClusterLifecycle(t *testing.T) {
	c := newCluster(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	dir := t.TempDir()
	env := []string{"CLUSTER_OUT_TOPIC=copied"}
	seeded := `
connectors:
	- name: seeded
		shutdown_timeout: 5s
		source: {type: kafka, topics: [seed-in]}
		sink: {type: kafka, topic: seed-out}
`
	member := func(id, connectors string) *daemonProc {
		return startMember(t, dir, id, "test", brokers, connectors, env)
	}
	a, b, cc := member("a", seeded), member("b", ""), member("c", "")
	baseA, baseB, baseC := a.adminURL(t), b.adminURL(t), cc.adminURL(t)
	bases := []string{baseA, baseB, baseC}
	running := []string{"a:RUNNING", "b:RUNNING", "c:RUNNING"}
	for _, base := range bases {
		waitMemberTasks(t, "seeded by A's file", base, "seeded", running...)
	}

	created := testenv.Send(t, "POST", baseA+"/connectors", `{"name": "copy", "config": {
		"shutdown_timeout": "5s", "commit.interval": "50ms",
		"source": {"type": "kafka", "topics": ["in"], "session_timeout": "10s"},
		"sink": {"type": "kafka", "topic": "${CLUSTER_OUT_TOPIC}"}}}`)
	if created != http.StatusCreated {
		t.Fatalf("create via A: HTTP %d", created)
	}
	for _, base := range bases {
		waitMemberTasks(t, "created via A", base, "copy", running...)
		var names []string
		getJSON(t, base+"/connectors", &names)
		if !slices.Equal(names, []string{"copy", "seeded"}) {
			t.Errorf("GET %s/connectors = %v, want [copy seeded]", base, names)
		}
	}
	if def := configRecord(t, c, "_connectd-test-configs", "copy"); !strings.Contains(def, "${CLUSTER_OUT_TOPIC}") || strings.Contains(def, "copied") {
		t.Errorf("config topic holds %s, want the ${CLUSTER_OUT_TOPIC} reference, not its value", def)
	}

	// A source that is not a consumer group would run once per member.
	if code := testenv.Send(t, "POST", baseB+"/connectors", `{"name": "gen", "config": {"source": {"type": "generator", "count": 10}, "sink": {"type": "kafka", "topic": "g"}}}`); code != http.StatusBadRequest {
		t.Errorf("create a generator connector in cluster mode: HTTP %d, want 400", code)
	}

	if code := testenv.Send(t, "PUT", baseB+"/connectors/copy/pause", ""); code != http.StatusAccepted {
		t.Fatalf("pause via B: HTTP %d", code)
	}
	waitMemberTasks(t, "paused via B", baseA, "copy", "a:PAUSED", "b:PAUSED", "c:PAUSED")
	if code := testenv.Send(t, "PUT", baseC+"/connectors/copy/resume", ""); code != http.StatusAccepted {
		t.Fatalf("resume via C: HTTP %d", code)
	}
	waitMemberTasks(t, "resumed via C", baseA, "copy", running...)

	// A new definition through C restarts the connector on every member.
	if code := testenv.Send(t, "PUT", baseC+"/connectors/copy/config", `{
		"shutdown_timeout": "5s", "commit.interval": "40ms",
		"source": {"type": "kafka", "topics": ["in"], "session_timeout": "10s"},
		"sink": {"type": "kafka", "topic": "${CLUSTER_OUT_TOPIC}"}}`); code != http.StatusOK {
		t.Fatalf("update via C: HTTP %d", code)
	}
	for _, base := range bases {
		waitConfig(t, base, "copy", "commit.interval", "40ms")
	}
	waitMemberTasks(t, "updated via C", baseA, "copy", running...)

	// Records flow while C is killed: the feeder keeps producing, so C
	// holds partitions with a batch open when it dies.
	const n = 6000
	prod := testClient(t, c)
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			prod.Produce(context.Background(), &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(i % 50)), Value: []byte(strconv.Itoa(i)),
				Headers: []kgo.RecordHeader{{Key: "event-id", Value: []byte("e" + strconv.Itoa(i))}}}, nil)
			if i%100 == 99 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	produce(0, n/3)
	waitMemberRecords(t, baseC, "copy", "c")
	fed := make(chan struct{})
	go func() { defer close(fed); produce(n/3, n) }()
	cc.signal(t, syscall.SIGKILL)
	cc.waitKilled(t)
	waitMemberTasks(t, "C killed", baseA, "copy", "a:RUNNING", "b:RUNNING", "c:UNASSIGNED")
	<-fed
	if err := prod.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// C's partitions move once its session (10s) times out: A and B
	// copy everything while C is down.
	testenv.WaitGroupCommitted(t, kadmClient(t, c), "connectd-copy", "in", n, 2*time.Minute)
	waitGroupStable(t, c, "connectd-copy", 2)
	cc = member("c", "")
	baseC = cc.adminURL(t)
	waitMemberTasks(t, "C restarted", baseA, "copy", running...)
	waitGroupStable(t, c, "connectd-copy", 3)

	if code := testenv.Send(t, "DELETE", baseA+"/connectors/copy", ""); code != http.StatusNoContent {
		t.Fatalf("delete via A: HTTP %d", code)
	}
	for _, base := range []string{baseA, baseB, baseC} {
		waitGone(t, base, "copy")
	}
	testenv.WaitGroupCommitted(t, kadmClient(t, c), "connectd-copy", "in", n, 2*time.Minute) // offsets kept
	verifyPath := writeConfig(t, dir, "verify.yaml", fmt.Sprintf(`
kafka:
	brokers: [%s]
connectors:
	- name: copy
		source: {type: kafka, topics: [in]}
		sink: {type: kafka, topic: copied}
`, brokers))
	if rep := verifyClean(t, verifyPath, "copy", "--stopped"); rep.Expected != n {
		t.Errorf("verify: %s, want %d expected", rep, n)
	}

	// Deleted through the API, a file's connector is not seeded again.
	if code := testenv.Send(t, "DELETE", baseB+"/connectors/seeded", ""); code != http.StatusNoContent {
		t.Fatalf("delete seeded via B: HTTP %d", code)
	}
	waitGone(t, baseA, "seeded")
	a.stopClean(t)
	a = member("a", seeded)
	baseA = a.adminURL(t)
	var names []string
	getJSON(t, baseA+"/connectors", &names)
	if len(names) != 0 {
		t.Errorf("restarted A runs %v, want nothing (seeded was deleted)", names)
	}
}

// startMember runs a cluster member: instance id, cluster clusterID on
// brokers, statuses every 200ms, connectors (YAML, may be empty) seeding
// the config topic, env added to the test's environment.
func startMember(t *testing.T, dir, id, clusterID, brokers, connectors string, env []string) *daemonProc {
	t.Helper()
	path := writeConfig(t, dir, id+".yaml", fmt.Sprintf(`
instance_id: %s
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [%s]
cluster:
	id: %s
	status_interval: 200ms
%s`, id, brokers, clusterID, connectors))
	return startRunEnv(t, env, path)
}

// waitConfig polls base's config of name until key has value.
func waitConfig(t *testing.T, base, name, key, value string) {
	t.Helper()
	var cfg map[string]any
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cfg = nil
		if getJSON(t, base+"/connectors/"+name+"/config", &cfg) == http.StatusOK && cfg[key] == value {
			return
		}
	}
	t.Fatalf("%s: config of %s is %v, want %s = %s", base, name, cfg, key, value)
}

// waitGone polls base until it no longer lists name and its status is 404.
func waitGone(t *testing.T, base, name string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var names []string
		getJSON(t, base+"/connectors", &names)
		var st map[string]any
		if !slices.Contains(names, name) && getJSON(t, base+"/connectors/"+name+"/status", &st) == http.StatusNotFound {
			return
		}
	}
	t.Fatalf("%s still lists %s after a minute", base, name)
}

// waitMemberRecords polls base's own status until its connector has
// committed input (records_in > 0): the member holds partitions.
func waitMemberRecords(t *testing.T, base, name, worker string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var st connectorStatus
		getJSON(t, base+"/connectors/"+name+"/status", &st)
		if st.RecordsIn > 0 {
			return
		}
	}
	t.Fatalf("member %s committed no input of %s within a minute", worker, name)
}

// waitGroupStable polls group until it is Stable with members members.
func waitGroupStable(t *testing.T, c *kfake.Cluster, group string, members int) {
	t.Helper()
	adm := kadmClient(t, c)
	var state string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			continue
		}
		g := gs[group]
		if state = fmt.Sprintf("%s with %d members", g.State, len(g.Members)); g.State == "Stable" && len(g.Members) == members {
			return
		}
	}
	t.Fatalf("group %s is %s after a minute, want Stable with %d", group, state, members)
}

// configRecord is the value of the latest record of connector name in the
// config topic.
func configRecord(t *testing.T, c *kfake.Cluster, topic, name string) string {
	t.Helper()
	cl := testClient(t, c, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	var value string
	for read := int64(0); read < end.Offset; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fs := cl.PollFetches(ctx)
		err := ctx.Err()
		cancel()
		if err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read = r.Offset + 1
			if string(r.Key) == "connector/"+name {
				value = string(r.Value)
			}
		})
	}
	return value
}

// testClient is a client of c with opts, closed when the test ends.
func testClient(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestClusterDefinitionBrokenOnOneMember: a definition written through A
// names a ${VAR} that B's environment lacks. A runs the connector; on B it
// is FAILED with the cause (the variable and where it is used), and B
// stays a member that follows the topic: deleted via A, it is gone on B.
func TestClusterDefinitionBrokenOnOneMember(t *testing.T) {
	c := newCluster(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	dir := t.TempDir()
	member := func(id string, env []string) *daemonProc {
		return startMember(t, dir, id, "broken", brokers, "", env)
	}
	a, b := member("a", []string{"ONLY_ON_A=copied"}), member("b", nil)
	baseA, baseB := a.adminURL(t), b.adminURL(t)
	if code := testenv.Send(t, "POST", baseA+"/connectors", `{"name": "copy", "config": {
		"source": {"type": "kafka", "topics": ["in"]},
		"sink": {"type": "kafka", "topic": "${ONLY_ON_A}"}}}`); code != http.StatusCreated {
		t.Fatalf("create via A: HTTP %d", code)
	}
	waitMemberTasks(t, "A runs it, B cannot (seen on A)", baseA, "copy", "a:RUNNING", "b:FAILED")
	waitMemberTasks(t, "A runs it, B cannot (seen on B)", baseB, "copy", "a:RUNNING", "b:FAILED")
	var st struct {
		Tasks []struct {
			State    string `json:"state"`
			WorkerID string `json:"worker_id"`
			Trace    string `json:"trace"`
		} `json:"tasks"`
	}
	getJSON(t, baseB+"/connectors/copy/status", &st)
	for _, ts := range st.Tasks {
		if ts.WorkerID == "b" && !strings.Contains(ts.Trace, "ONLY_ON_A") {
			t.Errorf("B's task trace %q does not name the missing variable", ts.Trace)
		}
	}
	if code := testenv.Send(t, "DELETE", baseA+"/connectors/copy", ""); code != http.StatusNoContent {
		t.Fatalf("delete via A: HTTP %d", code)
	}
	waitGone(t, baseB, "copy")
}
