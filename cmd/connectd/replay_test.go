package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/e2e"
)

// replayYAML is a live exactly_once Kafka → Kafka copy. Its admin API is at
// a fixed loopback address, since `connectd replay` and `connectd promote`
// find the daemon through the config, and its API changes (the replays)
// persist in a state file.
const replayYAML = `
instance_id: replay-test
admin:
	listen: ADMIN
	state_file: STATE
kafka:
	brokers: [BROKERS]
connectors:
	- name: copy
		shutdown_timeout: 5s
		source: {type: kafka, topics: [in], session_timeout: 6s}
		sink: {type: kafka, topic: out}
`

// replayInfo is the part of a replay's JSON the tests read.
type replayInfo struct {
	Name    string `json:"name"`
	Of      string `json:"shadow_of"`
	Version int    `json:"version"`
	State   string `json:"state"`
	Lag     *struct {
		Total int64 `json:"total"`
	} `json:"lag"`
	Switches []struct {
		Sink string `json:"sink"`
		To   string `json:"to"`
	} `json:"switches"`
}

// freeAddr is a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// replayCLI runs a replay or promote command and decodes its answer; it
// fails the test unless the command exits 0.
func replayCLI(t *testing.T, args ...string) replayInfo {
	t.Helper()
	r := connectd(t, 2*time.Minute, nil, args...)
	var info replayInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &info) != nil {
		t.Fatalf("connectd %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return info
}

// waitReplayState polls `connectd replay --status` until the replay is in state.
func waitReplayState(t *testing.T, path, name, state string) replayInfo {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var info replayInfo
	for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if info = replayCLI(t, "replay", "-c", path, "--connector", name, "--status"); info.State == state {
			return info
		}
	}
	t.Fatalf("replay %s is %s (lag %+v), not %s, after 2 minutes", name, info.State, info.Lag, state)
	return info
}

// waitKilled waits for the process to die of SIGKILL (a fail point).
func (p *daemonProc) waitKilled(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatal("connectd run was not killed by its fail point within a minute")
	}
	ee, ok := p.err.(interface{ Sys() any })
	if !ok {
		t.Fatalf("connectd run exited (%v), want killed by SIGKILL", p.err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("connectd run exited (%v), want killed by SIGKILL", p.err)
	}
}

// waitCommitted polls a connector's committed offsets until they sum to n
// (every record of a non-transactional input up to n).
func waitCommitted(t *testing.T, base, name string, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var sum int64
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var offs struct {
			Offsets []struct {
				Offset struct {
					Offset int64 `json:"kafka_offset"`
				} `json:"offset"`
			} `json:"offsets"`
		}
		if code := getJSON(t, base+"/connectors/"+name+"/offsets", &offs); code != http.StatusOK {
			t.Fatalf("offsets of %s: HTTP %d", name, code)
		}
		sum = 0
		for _, o := range offs.Offsets {
			sum += o.Offset.Offset
		}
		if sum == n {
			return
		}
	}
	t.Fatalf("%s committed %d of %d records within 2 minutes", name, sum, n)
}

// outRecord is one output record as the comparison sees it.
type outRecord struct{ eventID, key, value string }

// readTopic reads every committed record of topic, which no one writes to
// any more: it reads until a poll waits 3 seconds for nothing (a poll that
// returns early, with an error or records, goes on; a fetch of aborted
// records only returns nothing and is not an end).
func readTopic(t *testing.T, c *kfake.Cluster, topic string) []outRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []outRecord
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		fs := cl.PollFetches(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("reading %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			id := ""
			for _, h := range r.Headers {
				if h.Key == "event-id" {
					id = string(h.Value)
				}
			}
			out = append(out, outRecord{id, string(r.Key), string(r.Value)})
		})
		if timedOut && fs.NumRecords() == 0 {
			slices.SortFunc(out, func(a, b outRecord) int { return strings.Compare(a.eventID, b.eventID) })
			return out
		}
	}
	t.Fatalf("reading %s: still getting records after a minute", topic)
	return nil
}

// kadmClient is an admin client of c, closed when the test ends.
func kadmClient(t *testing.T, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// checkTopicLike fails the test unless topic has partitions partitions and
// the topic-level setting key = value.
func checkTopicLike(t *testing.T, adm *kadm.Client, topic string, partitions int, key, value string) {
	t.Helper()
	ctx := context.Background()
	details, err := adm.ListTopics(ctx, topic)
	if err != nil || details[topic].Err != nil {
		t.Fatalf("topic %s: %v %v", topic, err, details[topic].Err)
	}
	if n := len(details[topic].Partitions); n != partitions {
		t.Fatalf("topic %s has %d partitions, want %d like the live output", topic, n, partitions)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range rc.Configs {
		if cfg.Key == key {
			if cfg.Value == nil || *cfg.Value != value {
				t.Fatalf("topic %s: %s = %v, want %s like the live output", topic, key, cfg.Value, value)
			}
			return
		}
	}
	t.Fatalf("topic %s has no %s", topic, key)
}

// stopClean SIGTERMs the daemon and requires exit 0.
func (p *daemonProc) stopClean(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// promoteKilled promotes shadow on a daemon started with the fail point
// CONNECTD_KILL_AT=point (before it, promotes runs first and must succeed),
// requires the daemon to die there, restarts it and waits until the
// restart has finished the interrupted promote. It returns the restarted
// daemon, its admin URL and the connectors it runs.
func promoteKilled(t *testing.T, path, point string, promotes []string, shadow string) (*daemonProc, string, []string) {
	t.Helper()
	p := startRunEnv(t, []string{"CONNECTD_KILL_AT=" + point}, path)
	p.adminURL(t)
	for _, name := range append(slices.Clone(promotes), shadow) {
		waitReplayState(t, path, name, "CAUGHT_UP")
	}
	for _, name := range promotes {
		if r := connectd(t, time.Minute, nil, "promote", "-c", path, "--connector", name); r.code != 0 {
			t.Fatalf("promote %s: exit %d, stderr %s", name, r.code, r.stderr)
		}
	}
	if r := connectd(t, time.Minute, nil, "promote", "-c", path, "--connector", shadow); r.code != 1 {
		t.Fatalf("promote %s into the kill point %s: exit %d, stdout %s", shadow, point, r.code, r.stdout)
	}
	p.waitKilled(t)
	p = startRun(t, path)
	base := p.adminURL(t)
	waitLog(t, p, "finished an interrupted promote")
	var names []string
	getJSON(t, base+"/connectors", &names)
	return p, base, names
}

// TestReplayPromote is a Kappa re-processing from start to end, through the
// CLI of a real daemon process, with a producer feeding the live
// connector all along: a replay of unchanged logic is refused promotion
// while it catches up, survives a SIGKILL in mid catch-up, and then writes
// output identical, record for record, to the live connector's; its
// promote is SIGKILLed after the decision is saved and finished by the
// restart. A second replay, with changed logic, is SIGKILLed after the
// readers were switched and finished by the restart. Every output is then
// verified exactly once.
func TestReplayPromote(t *testing.T) {
	c := newCluster(t)
	const backlog = 200_000
	e2e.Produce(t, c, "in", 0, backlog)
	dir := t.TempDir()
	path := writeConfig(t, dir, "replay.yaml", strings.NewReplacer("ADMIN", freeAddr(t), "STATE", filepath.Join(dir, "state.json"),
		"BROKERS", strings.Join(c.ListenAddrs(), ",")).Replace(replayYAML))

	// The live output has settings of its own, which the replay's copies.
	adm := kadmClient(t, c)
	retain := "-1"
	if _, err := adm.CreateTopic(context.Background(), 2, 1, map[string]*string{"retention.ms": &retain}, "out"); err != nil {
		t.Fatal(err)
	}

	p := startRun(t, path)
	base := p.adminURL(t)
	waitRecordsIn(t, base, "copy", 1)

	var produced atomic.Int64
	produced.Store(backlog)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the live input keeps coming
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := int(produced.Load())
			e2e.Produce(t, c, "in", n, n+200)
			produced.Store(int64(n + 200))
		}
	}()
	stopProducer := func() int64 {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
		return produced.Load()
	}
	defer stopProducer()

	info := replayCLI(t, "replay", "-c", path, "--connector", "copy")
	if info.Name != "copy-v2" || info.Of != "copy" || info.Version != 2 || info.State != "CATCHING_UP" {
		t.Fatalf("replay started as %+v", info)
	}
	checkTopicLike(t, adm, "out-v2", 2, "retention.ms", "-1")
	if r := connectd(t, time.Minute, nil, "promote", "-c", path, "--connector", "copy-v2"); r.code != 1 || !strings.Contains(r.stderr, "records behind") {
		t.Fatalf("promote while catching up: exit %d, stderr %s; want 1 and a refusal", r.code, r.stderr)
	}

	// SIGKILL in mid catch-up.
	waitRecordsIn(t, base, "copy-v2", 1)
	st := replayCLI(t, "replay", "-c", path, "--connector", "copy-v2", "--status")
	if st.Lag == nil || st.Lag.Total == 0 {
		t.Fatalf("the shadow had caught up before the kill (%+v): the kill did not land mid catch-up", st)
	}
	p.signal(t, syscall.SIGKILL)
	<-p.done
	t.Logf("SIGKILL with the shadow %d records behind", st.Lag.Total)

	p = startRun(t, path)
	base = p.adminURL(t)
	waitReplayState(t, path, "copy-v2", "CAUGHT_UP")

	// Unchanged logic: the same output, record for record.
	end := stopProducer()
	waitCommitted(t, base, "copy", end)
	waitCommitted(t, base, "copy-v2", end)
	t.Logf("reading the outputs")
	live, shadow := readTopic(t, c, "out"), readTopic(t, c, "out-v2")
	if len(live) != int(end) || !slices.Equal(live, shadow) {
		t.Fatalf("outputs differ: out has %d records, out-v2 %d (want %d each, equal)", len(live), len(shadow), end)
	}
	t.Logf("out and out-v2: %d records each, identical", end)

	// A promote SIGKILLed after its decision was saved: the restart
	// finishes it.
	p.stopClean(t)
	p, base, names := promoteKilled(t, path, "promote-after-intent", nil, "copy-v2")
	if !slices.Equal(names, []string{"copy-v2"}) {
		t.Fatalf("after the finished promote the daemon runs %v, want [copy-v2]", names)
	}
	if r := connectd(t, time.Minute, nil, "replay", "-c", path, "--connector", "copy-v2", "--status"); r.code != 1 || !strings.Contains(r.stderr, "has no replay") {
		t.Fatalf("status of a promoted replay: exit %d, stderr %s", r.code, r.stderr)
	}

	// Changed logic, and a promote SIGKILLed after the switch.
	def := filepath.Join(dir, "v3.yaml")
	if err := os.WriteFile(def, []byte(`
name: copy-v2
shutdown_timeout: 5s
source: {type: kafka, topics: [in], session_timeout: 6s}
transforms: [{type: set, fields: {version: 3}}]
sink: {type: kafka, topic: out-v2}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	info = replayCLI(t, "replay", "-c", path, "--connector", "copy-v2", "--with", def)
	if info.Name != "copy-v3" || info.Of != "copy-v2" {
		t.Fatalf("second replay started as %+v", info)
	}
	p.stopClean(t)
	p, base, names = promoteKilled(t, path, "promote-after-cutover", nil, "copy-v3")
	if !slices.Equal(names, []string{"copy-v3"}) {
		t.Fatalf("after the second promote the daemon runs %v, want [copy-v3]", names)
	}
	waitCommitted(t, base, "copy-v3", end)
	p.stopClean(t)

	for _, name := range []string{"copy", "copy-v2", "copy-v3"} {
		rep := verifyClean(t, path, name, "--stopped")
		t.Logf("verify %s: %s", name, rep)
	}
	v3 := readTopic(t, c, "out-v3")
	if len(v3) != int(end) || !strings.Contains(v3[0].value, `"version":3`) {
		t.Fatalf("out-v3: %d records (want %d), first %q: the new logic did not run", len(v3), end, v3[0].value)
	}
}
