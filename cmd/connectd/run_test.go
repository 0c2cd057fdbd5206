package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/verify"
)

// newCluster starts an in-process Kafka (kfake) for a connectd child
// process to use through kafka.brokers; it closes when the test ends.
func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(3),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// getJSON GETs url and decodes the JSON answer into v, returning the status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// connectorStatus is the part of the admin status the tests read.
type connectorStatus struct {
	Connector struct {
		State string `json:"state"`
	} `json:"connector"`
	RecordsIn uint64 `json:"records_in"`
}

// waitRecordsIn polls a connector's admin status until it has committed n
// input records.
func waitRecordsIn(t *testing.T, base, name string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var st connectorStatus
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code := getJSON(t, base+"/connectors/"+name+"/status", &st); code != http.StatusOK {
			t.Fatalf("status %s: HTTP %d", name, code)
		}
		if st.Connector.State != "RUNNING" {
			t.Fatalf("connector %s is %s", name, st.Connector.State)
		}
		if st.RecordsIn >= n {
			return
		}
	}
	t.Fatalf("connector %s committed %d of %d input records within a minute", name, st.RecordsIn, n)
}

// TestRunEmbedded runs a config on the embedded broker (port 0: a free
// port) and stops it with SIGTERM.
func TestRunEmbedded(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "embedded.yaml", `
admin:
	listen: 127.0.0.1:0
kafka:
	embedded:
		listen: 127.0.0.1:0
		data_dir: ./data
		partitions: 2
connectors:
	- name: gen
		shutdown_timeout: 5s
		source: {type: generator, count: 500, key_cardinality: 10}
		sink: {type: kafka, topic: events}
`)
	p := startRun(t, path)
	base := p.adminURL(t)

	var names []string
	if code := getJSON(t, base+"/connectors", &names); code != 200 || len(names) != 1 || names[0] != "gen" {
		t.Fatalf("GET /connectors = %d %v", code, names)
	}
	var health map[string]string
	if code := getJSON(t, base+"/health", &health); code != 200 || health["status"] != "healthy" {
		t.Fatalf("GET /health = %d %v", code, health)
	}
	waitRecordsIn(t, base, "gen", 500)

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	for _, want := range []string{"embedded Kafka broker started", "shutting down", "connectd stopped"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestRunThenVerify runs a generator → Kafka and a Kafka → transforms →
// Kafka connector against a broker owned by the test, stops them with
// SIGTERM, and checks both with `connectd verify`, live and stopped.
func TestRunThenVerify(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, "chain.yaml", `
instance_id: cli-test
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [`+strings.Join(c.ListenAddrs(), ",")+`]
connectors:
	- name: gen
		shutdown_timeout: 5s
		source: {type: generator, count: 3000, key_cardinality: 20}
		sink: {type: kafka, topic: raw}
	- name: enrich
		shutdown_timeout: 5s
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [raw]}
		transforms:
			- type: filter
				expr: 'value.amount >= 10'
			- type: set
				fields: {checked: true}
			- type: route
				expr: 'value.amount > 500 ? "large" : "small"'
		sink: {type: kafka, topic: small}
`)
	p := startRun(t, path)
	base := p.adminURL(t)
	waitRecordsIn(t, base, "gen", 3000)
	waitRecordsIn(t, base, "enrich", 3000)

	// Live: the checker bounds itself by the committed checkpoint.
	live := verifyClean(t, path, "enrich")

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}

	// Stopped: no later batch can explain output beyond the checkpoint.
	gen := verifyClean(t, path, "gen", "--stopped")
	if gen.Expected != 3000 || gen.Actual != 3000 {
		t.Errorf("gen: %s, want 3000 expected and actual", gen)
	}
	enrich := verifyClean(t, path, "enrich", "--stopped")
	// About 1% of amounts (0..999.99) are below 10 and filtered out.
	if enrich.Expected >= 3000 || enrich.Expected < 2800 || enrich.Expected != live.Expected {
		t.Errorf("enrich: %s (live: %s), want 2800..2999 expected, same as live", enrich, live)
	}
}

// waitLog waits until the daemon's log contains s.
func waitLog(t *testing.T, p *daemonProc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q after 10s", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verifyClean runs `connectd verify` (with flags) and expects exit 0 and
// one JSON line of a clean report.
func verifyClean(t *testing.T, path, name string, flags ...string) verify.Report {
	t.Helper()
	r := connectd(t, 2*time.Minute, nil, append([]string{"verify", "-c", path, "--connector", name, "--timeout", "90s"}, flags...)...)
	if r.code != 0 {
		t.Fatalf("verify %s: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
	}
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("verify %s: stdout is not one line: %q", name, r.stdout)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("verify %s: %v: %q", name, err, r.stdout)
	}
	for _, k := range []string{"expected", "actual", "duplicates", "missing", "unexpected"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("verify %s: report lacks %q: %s", name, k, r.stdout)
		}
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Duplicates != 0 || rep.Missing != 0 || rep.Unexpected != 0 || rep.Expected == 0 {
		t.Fatalf("verify %s: %s", name, rep)
	}
	return rep
}

// TestRunSecondSignal holds the connector's transaction commit at the
// broker, so the first SIGTERM's stop waits on it; the second SIGTERM must
// end the process at once.
func TestRunSecondSignal(t *testing.T) {
	c := newCluster(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before c.Close
	committing := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if r, ok := req.(*kmsg.EndTxnRequest); ok && r.Commit {
			once.Do(func() { close(committing) })
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})

	dir := t.TempDir()
	path := writeConfig(t, dir, "held.yaml", `
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [`+strings.Join(c.ListenAddrs(), ",")+`]
connectors:
	- name: gen
		shutdown_timeout: 30s
		source: {type: generator, rate: 1000}
		sink: {type: kafka, topic: held}
`)
	p := startRun(t, path)
	p.adminURL(t)
	select {
	case <-committing:
	case <-time.After(time.Minute):
		t.Fatal("the connector never tried to commit")
	}

	p.signal(t, syscall.SIGTERM)
	// Two signals sent back to back can merge into one while the first
	// is pending (POSIX signals do not queue), so the second goes once
	// the first has been seen, as an operator's second Ctrl-C would.
	waitLog(t, p, "shutting down")
	p.signal(t, syscall.SIGTERM)
	code := p.wait(t, 5*time.Second)
	if code == 0 {
		t.Errorf("exit 0 after a second signal while a commit was pending, want non-zero")
	}
	if !strings.Contains(p.stderr.String(), "second signal") {
		t.Errorf("log does not say why it exited at once")
	}
}

// TestRunRefusesToStart: a config error prints FILE:LINE:COL lines and a
// taken admin port is reported, both with exit 1 and nothing left running.
func TestRunRefusesToStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	bad := writeConfig(t, dir, "bad.yaml", `
kafka:
	embedded: {listen: 127.0.0.1:0}
connectors:
	- name: gen
		source: {type: generator}
		transforms:
			- type: uppercase
		sink: {type: kafka, topic: out}
`)
	busy := writeConfig(t, dir, "busy.yaml", `
admin:
	listen: `+taken.Addr().String()+`
kafka:
	embedded: {listen: 127.0.0.1:0}
connectors:
	- name: gen
		source: {type: generator}
		sink: {type: kafka, topic: out}
`)
	for _, tc := range []struct{ path, want string }{
		{bad, bad + `:8:9: transforms[0]: unknown transform type "uppercase"`},
		{busy, "address already in use"},
	} {
		r := connectd(t, time.Minute, nil, "run", "-c", tc.path)
		if r.code != exitFail {
			t.Errorf("run %s: exit %d, want %d\n%s", tc.path, r.code, exitFail, r.stderr)
		}
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("run %s: stderr lacks %q:\n%s", tc.path, tc.want, r.stderr)
		}
	}
}
