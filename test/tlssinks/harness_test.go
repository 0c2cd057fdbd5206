package tlssinks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/testenv"
)

// inputRecords is how many records every test feeds its connectors.
const inputRecords = 3000

// pipeline is one test's Kafka input (a fresh topic on the shared test
// Kafka, inputRecords records with event-id headers "in-<i>") and the
// config of a `connectd run` process whose connectors all read it, each
// through a consumer group of its own.
type pipeline struct {
	t       *testing.T
	brokers []string
	topic   string
	dir     string
}

// connector is one connector of the config: its name and the lines of
// its sink section (without indentation).
type connector struct {
	name string
	sink []string
}

// newPipeline needs the Kafka of `make services` (fails without it,
// skips with -short) and fills a fresh 3-partition topic.
func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	brokers := testenv.Kafka(t)
	p := &pipeline{t: t, brokers: brokers, topic: testenv.KafkaTopic(t, brokers, 3), dir: t.TempDir()}
	recs := make([]*kgo.Record, inputRecords)
	for i := range recs {
		recs[i] = &kgo.Record{
			Topic:   p.topic,
			Key:     fmt.Appendf(nil, "k-%d", i%31),
			Value:   fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := testenv.KafkaClient(t, brokers, kgo.UnknownTopicRetries(-1))
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce the input: %v", err)
	}
	return p
}

// writeConfig writes the daemon config with every connector exactly_once
// from the input topic and returns its path.
func (p *pipeline) writeConfig(conns ...connector) string {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "instance_id: %s\nadmin:\n  listen: 127.0.0.1:0\nkafka:\n  brokers: [%s]\nconnectors:\n",
		testenv.UniqueName(p.t, "i", "-", 60), strings.Join(p.brokers, ", "))
	for _, c := range conns {
		fmt.Fprintf(&b, "  - name: %s\n    guarantee: exactly_once\n    commit.interval: 200ms\n    batch.max.records: 500\n    shutdown_timeout: 10s\n", c.name)
		fmt.Fprintf(&b, "    event_id: {from: header}\n    source:\n      type: kafka\n      topics: [%s]\n      group: %s\n",
			p.topic, testenv.UniqueName(p.t, "g-"+c.name, "-", 120))
		b.WriteString("    sink:\n")
		for _, l := range c.sink {
			b.WriteString("      " + l + "\n")
		}
	}
	path := filepath.Join(p.dir, "connectd.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("config %s:\n%s", path, b.String())
	return path
}

// start runs `connectd run -c cfgPath` and waits for its admin API.
func (p *pipeline) start(cfgPath string) *testenv.Process {
	p.t.Helper()
	proc := testenv.NewProcess(p.t, connectd.Path(p.t), cfgPath, filepath.Join(p.dir, "connectd.log"),
		"tls", testenv.ProcessOptions{Dir: p.dir})
	proc.Start()
	return proc
}

// status is the part of GET /connectors/{name}/status the tests read, and
// the body as received.
type status struct {
	Connector struct {
		State string `json:"state"`
		Trace string `json:"trace"`
	} `json:"connector"`
	RecordsIn uint64            `json:"records_in"`
	Commits   uint64            `json:"commits"`
	Aborts    map[string]uint64 `json:"aborts"`
	LastAbort *struct {
		Kind  string `json:"kind"`
		Error string `json:"error"`
	} `json:"last_abort"`
	Partitions []struct {
		Checkpoint int64 `json:"checkpoint"`
	} `json:"partitions"`
	raw string
}

// checkpointed is the input records the connector has committed.
func (s status) checkpointed() int64 {
	var n int64
	for _, p := range s.Partitions {
		n += p.Checkpoint
	}
	return n
}

// cause is what the status says went wrong: the FAILED trace, else the
// last abort's error.
func (s status) cause() string {
	if s.Connector.Trace != "" {
		return s.Connector.Trace
	}
	if s.LastAbort != nil {
		return s.LastAbort.Error
	}
	return ""
}

func getStatus(proc *testenv.Process, name string) (status, error) {
	body, err := testenv.StatusBody(proc.Admin(), name)
	if err != nil {
		return status{}, err
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil {
		return status{}, fmt.Errorf("%w: %s", err, body)
	}
	st.raw = string(body)
	return st, nil
}

// waitStatus polls name's status until ok holds, and returns it; after
// within it fails the test with the last status.
func waitStatus(t *testing.T, proc *testenv.Process, name, what string, within time.Duration, ok func(status) bool) status {
	t.Helper()
	deadline := time.Now().Add(within)
	var last status
	var err error
	for {
		proc.Alive()
		if last, err = getStatus(proc, name); err == nil && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector %s: no %s within %v; last status %s (err %v)", name, what, within, last.raw, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitDrained waits until name has committed every input record.
func waitDrained(t *testing.T, proc *testenv.Process, name string) status {
	t.Helper()
	return waitStatus(t, proc, name, fmt.Sprintf("commit of all %d input records", inputRecords), time.Minute,
		func(s status) bool { return s.checkpointed() >= inputRecords })
}

// broken is an error case: a connector whose sink cannot connect, and
// what the daemon's log must say about it.
type broken struct {
	connector
	want []string // substrings of the connector's log line
}

// claimFailed is what the daemon logs when a sink refuses the claim of
// assigned partitions, which is where a sink keeping its checkpoint first
// connects (txn.SinkOffsets).
const claimFailed = "claiming partitions in the sink failed; the group will rejoin"

// runGoodAndBroken runs good and bad connectors in one process: each good
// one drains its input and verifies clean, each bad one fails as
// checkBroken wants, and no secret reaches a status answer or the log.
func (p *pipeline) runGoodAndBroken(good []connector, bad []broken, secrets ...string) {
	t := p.t
	t.Helper()
	conns := append([]connector{}, good...)
	for _, b := range bad {
		conns = append(conns, b.connector)
	}
	cfg := p.writeConfig(conns...)
	proc := p.start(cfg)
	for _, c := range good {
		st := waitDrained(t, proc, c.name)
		t.Logf("%s: %d records committed in %d commits", c.name, st.checkpointed(), st.Commits)
	}
	checkBroken(t, proc, bad, secrets)
	stop(t, proc)
	logHasNo(t, proc, secrets...)
	for _, c := range good {
		verifyClean(t, cfg, c.name)
	}
}

// checkBroken checks what a connector whose sink cannot connect does
// today, whatever the cause (retryable or not): the first use of the sink
// is the claim of the partitions the group assigned, whose error makes
// franz-go rejoin the group with a back-off of up to 5 s, again and again.
// So the connector stays RUNNING with no commit, no record read and no
// abort counted; the cause is in the log (the claimFailed line, WARN, at
// every attempt) and in the status's last_abort, kind "claim".
// checkBroken waits for that line with every wanted substring, then
// requires the rest, and that no secret is in the status.
func checkBroken(t *testing.T, proc *testenv.Process, cases []broken, secrets []string) {
	t.Helper()
	for _, c := range cases {
		line := waitLogLine(t, proc, c.name, claimFailed, time.Minute)
		t.Logf("%s: %s", c.name, line)
		for _, w := range c.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: the log's cause does not say %q: %s", c.name, w, line)
			}
		}
		st, err := getStatus(proc, c.name)
		if err != nil {
			t.Fatalf("status of %s: %v", c.name, err)
		}
		if st.Connector.State != "RUNNING" || st.Commits != 0 || st.checkpointed() != 0 || st.RecordsIn != 0 {
			t.Errorf("%s: want RUNNING with nothing read or committed through a connection that fails, got %s", c.name, st.raw)
		}
		if st.LastAbort == nil || st.LastAbort.Kind != "claim" {
			t.Errorf("%s: want the claim's failure as the status's last_abort, got %s", c.name, st.raw)
		}
		for _, w := range c.want {
			if st.LastAbort != nil && !strings.Contains(st.LastAbort.Error, w) {
				t.Errorf("%s: the status's last_abort does not say %q: %s", c.name, w, st.raw)
			}
		}
		for _, s := range secrets {
			if strings.Contains(st.raw, s) {
				t.Errorf("%s: the status shows the secret %q: %s", c.name, s, st.raw)
			}
		}
	}
}

// waitLogLine waits for a log line of connector name holding msg and
// returns it with logfmt's quoting of quotes undone.
func waitLogLine(t *testing.T, proc *testenv.Process, name, msg string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		proc.Alive()
		for _, l := range strings.Split(string(proc.LogFrom(0)), "\n") {
			if strings.Contains(l, "connector="+name+" ") && strings.Contains(l, msg) {
				return strings.ReplaceAll(l, `\"`, `"`)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector %s: no log line %q within %v", name, msg, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop SIGTERMs the process and waits for it to exit.
func stop(t *testing.T, proc *testenv.Process) {
	t.Helper()
	proc.Signal(syscall.SIGTERM)
	proc.WaitExit(time.Minute)
}

// verifyReport is the JSON line `connectd verify` prints (the fields read).
type verifyReport struct {
	Expected             int `json:"expected"`
	Actual               int `json:"actual"`
	Duplicates           int `json:"duplicates"`
	Missing              int `json:"missing"`
	Unexpected           int `json:"unexpected"`
	ApplyCountViolations int `json:"apply_count_violations"`
}

// verifyClean runs `connectd verify --stopped` on name (its clients use the
// same TLS settings as the daemon's) and requires every input record in
// the sink exactly once.
func verifyClean(t *testing.T, cfgPath, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, connectd.Path(t), "verify", "--stopped", "-c", cfgPath, "--connector", name, "--timeout", "2m")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("connectd verify %s: %v", name, err)
	}
	var r verifyReport
	if jerr := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r); jerr != nil {
		t.Fatalf("connectd verify %s: %v (exit %v)\nstdout: %s\nstderr: %s", name, jerr, err, stdout.String(), stderr.String())
	}
	t.Logf("connectd verify %s: %s", name, bytes.TrimSpace(stdout.Bytes()))
	if err != nil || r.Duplicates+r.Missing+r.Unexpected+r.ApplyCountViolations != 0 {
		t.Errorf("%s: not exactly once (exit %v): %+v\nstderr: %s", name, err, r, stderr.String())
	}
	if r.Expected != inputRecords || r.Actual != inputRecords {
		t.Errorf("%s: verify saw %d expected and %d actual outputs, want %d each", name, r.Expected, r.Actual, inputRecords)
	}
}

// logHasNo fails the test if the process's log holds any of secrets.
func logHasNo(t *testing.T, proc *testenv.Process, secrets ...string) {
	t.Helper()
	log := proc.LogFrom(0)
	for _, s := range secrets {
		if bytes.Contains(log, []byte(s)) {
			t.Errorf("the daemon's log holds the secret %q", s)
		}
	}
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
