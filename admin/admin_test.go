package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
)

// testYAML runs a healthy source connector, a healthy sink connector reading
// its output, and one that fails on its first record (its route expression
// gives an empty topic and errors.tolerance is none).
const testYAML = `
kafka:
  brokers: [BROKERS]
connectors:
  - name: gen
    source: {type: generator, count: 500, key_cardinality: 10}
    sink: {type: kafka, topic: raw}
  - name: copy
    source: {type: kafka, topics: [raw]}
    sink: {type: kafka, topic: out}
  - name: broken
    source: {type: generator, count: 10}
    transforms:
      - type: route
        expr: '""'
    sink: {type: kafka, topic: never}
`

// startDaemon runs testYAML against an in-process kfake cluster until the
// test ends.
func startDaemon(t *testing.T) (*daemon.Daemon, *config.Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	yaml := strings.ReplaceAll(testYAML, "BROKERS", strings.Join(c.ListenAddrs(), ","))
	cfg, err := config.Parse("admin_test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.InstanceID = "admin-test"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := daemon.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d, cfg
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// waitStatus polls a connector's status until ok accepts it.
func waitStatus(t *testing.T, h http.Handler, name string, ok func(admin.ConnectorStatus) bool) admin.ConnectorStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rec := get(t, h, http.MethodGet, "/connectors/"+name+"/status")
		var st admin.ConnectorStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("status %s: %v: %s", name, err, rec.Body)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s did not reach the wanted state within a minute: %s", name, rec.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAPI(t *testing.T) {
	d, cfg := startDaemon(t)
	srv := admin.New(d.API(), nil, admin.WithVersion("1.2.3", "abc"), admin.WithConfig(cfg), admin.WithWorkerID("127.0.0.1:8083"))
	h := srv.Handler()

	// Let the connectors make progress so the status carries partitions
	// and counters, and let the broken one fail.
	waitStatus(t, h, "gen", func(s admin.ConnectorStatus) bool { return s.RecordsIn == 500 })
	waitStatus(t, h, "copy", func(s admin.ConnectorStatus) bool { return s.RecordsIn == 500 })
	waitStatus(t, h, "broken", func(s admin.ConnectorStatus) bool { return s.Connector.State == "FAILED" })

	tests := []struct {
		name   string
		method string
		path   string
		code   int
		check  func(t *testing.T, body []byte, hdr http.Header)
	}{
		{"root", "GET", "/", 200, func(t *testing.T, b []byte, _ http.Header) {
			jsonEq(t, b, `{"version":"1.2.3","commit":"abc","kafka_cluster_id":""}`)
		}},
		{"list", "GET", "/connectors", 200, func(t *testing.T, b []byte, _ http.Header) {
			jsonEq(t, b, `["broken","copy","gen"]`)
		}},
		{"health", "GET", "/health", 200, func(t *testing.T, b []byte, _ http.Header) {
			var m map[string]string
			decode(t, b, &m)
			if m["status"] != "healthy" || m["message"] == "" {
				t.Errorf("health = %s", b)
			}
		}},
		{"source status", "GET", "/connectors/gen/status", 200, func(t *testing.T, b []byte, _ http.Header) {
			var st admin.ConnectorStatus
			decode(t, b, &st)
			running := admin.StateInfo{State: "RUNNING", WorkerID: "127.0.0.1:8083"}
			if st.Name != "gen" || st.Type != "source" || st.Connector != running ||
				len(st.Tasks) != 1 || st.Tasks[0].ID != 0 || st.Tasks[0].StateInfo != running {
				t.Errorf("Connect fields: %s", b)
			}
			if st.Guarantee != "exactly_once" || st.RecordsIn != 500 || st.RecordsOut != 500 ||
				st.Commits == 0 || st.LastCommit == nil || st.Aborts == nil {
				t.Errorf("connectd fields: %s", b)
			}
			if len(st.Partitions) != 1 || st.Partitions[0].Checkpoint != 500 {
				t.Errorf("partitions: %s", b)
			}
		}},
		{"sink status has lag per partition", "GET", "/connectors/copy/status", 200, func(t *testing.T, b []byte, _ http.Header) {
			var raw map[string]any
			decode(t, b, &raw)
			for _, k := range []string{"name", "connector", "tasks", "type", "guarantee", "partitions", "last_commit", "records_in", "records_out", "commits", "aborts"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("status lacks %q: %s", k, b)
				}
			}
			var st admin.ConnectorStatus
			decode(t, b, &st)
			if st.Type != "sink" {
				t.Errorf("type = %q, want sink", st.Type)
			}
			var sum int64
			for _, p := range st.Partitions {
				if p.Topic != "raw" {
					t.Errorf("partition of topic %q, want raw", p.Topic)
				}
				sum += p.Checkpoint
			}
			if len(st.Partitions) != 2 || sum != 500 {
				t.Errorf("partitions: %s", b)
			}
		}},
		{"failed status carries the trace", "GET", "/connectors/broken/status", 200, func(t *testing.T, b []byte, _ http.Header) {
			var st admin.ConnectorStatus
			decode(t, b, &st)
			if st.Connector.State != "FAILED" || st.Tasks[0].State != "FAILED" ||
				!strings.Contains(st.Tasks[0].Trace, "empty topic") || st.Connector.Trace == "" {
				t.Errorf("failed status: %s", b)
			}
		}},
		{"unknown connector", "GET", "/connectors/nope/status", 404, func(t *testing.T, b []byte, _ http.Header) {
			jsonEq(t, b, `{"error_code":404,"message":"Connector nope not found"}`)
		}},
		{"unknown path", "GET", "/nope", 404, func(t *testing.T, b []byte, _ http.Header) {
			jsonEq(t, b, `{"error_code":404,"message":"HTTP 404 Not Found"}`)
		}},
		{"PUT /connectors", "PUT", "/connectors", 405, allowGet},
		{"file connector config", "GET", "/connectors/gen/config", 200, func(t *testing.T, b []byte, _ http.Header) {
			var m map[string]any
			decode(t, b, &m)
			src, _ := m["source"].(map[string]any)
			if m["name"] != "gen" || m["guarantee"] != "exactly_once" || src["type"] != "generator" || src["count"] != 500.0 {
				t.Errorf("config = %s", b)
			}
		}},
		{"file connector info", "GET", "/connectors/copy", 200, func(t *testing.T, b []byte, _ http.Header) {
			var info admin.ConnectorInfo
			decode(t, b, &info)
			if info.Name != "copy" || info.Type != "sink" || len(info.Tasks) != 1 || info.Tasks[0] != (admin.TaskID{Connector: "copy"}) {
				t.Errorf("info = %s", b)
			}
		}},
		{"DELETE status", "DELETE", "/connectors/gen/status", 405, allowGet},
		{"PUT /", "PUT", "/", 405, allowGet},
		{"POST /health", "POST", "/health", 405, allowGet},
		{"HEAD /connectors", "HEAD", "/connectors", 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h, tc.method, tc.path)
			if rec.Code != tc.code {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, rec.Code, tc.code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tc.check != nil {
				tc.check(t, rec.Body.Bytes(), rec.Header())
			}
		})
	}
}

func allowGet(t *testing.T, b []byte, hdr http.Header) {
	t.Helper()
	jsonEq(t, b, `{"error_code":405,"message":"HTTP 405 Method Not Allowed"}`)
	if a := hdr.Get("Allow"); !strings.Contains(a, "GET") {
		t.Errorf("Allow = %q", a)
	}
}

// TestListenAndServe serves on a real loopback port: port 0 binds a free
// port, worker_id defaults to the bound address, and cancelling the
// context shuts the server down.
func TestListenAndServe(t *testing.T) {
	d, cfg := startDaemon(t)
	srv := admin.New(d.API(), nil, admin.WithConfig(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = srv.ListenAndServe(ctx, "127.0.0.1:0"); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("ListenAndServe did not return after cancel")
		}
	})

	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if addr = srv.Addr(); addr == "" && time.Now().After(deadline) {
			t.Fatal("server did not bind")
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/connectors/gen/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st admin.ConnectorStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Connector.WorkerID != addr {
		t.Errorf("worker_id = %q, want the bound address %q", st.Connector.WorkerID, addr)
	}

	cancel()
	select {
	case <-done:
		if serveErr != nil {
			t.Fatalf("ListenAndServe: %v", serveErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return after cancel")
	}
	if _, err := client.Get("http://" + addr + "/"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestListenTakenPort(t *testing.T) {
	a := admin.New(newFake(), nil)
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	b := admin.New(newFake(), nil)
	if err := b.Listen(a.Addr()); err == nil {
		_ = b.Shutdown(context.Background())
		t.Fatal("second Listen on a taken port succeeded")
	}
}

func TestNoConnectors(t *testing.T) {
	h := admin.New(newFake(), nil).Handler()
	rec := get(t, h, http.MethodGet, "/connectors")
	if rec.Code != 200 {
		t.Fatalf("GET /connectors = %d", rec.Code)
	}
	jsonEq(t, rec.Body.Bytes(), `[]`)
	rec = get(t, h, http.MethodGet, "/")
	jsonEq(t, rec.Body.Bytes(), `{"version":"dev","commit":"","kafka_cluster_id":""}`)
}

func jsonEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	decode(t, got, &g)
	decode(t, []byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("body = %s, want %s", gb, wb)
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// TestLifecycleOnDaemon drives a real daemon through the API: create a
// connector, stop it, read, alter and reset its offsets, resume it, and
// delete it, checking each answer's shape.
func TestLifecycleOnDaemon(t *testing.T) {
	d, cfg := startDaemon(t)
	h := admin.New(d.API(), nil, admin.WithConfig(cfg)).Handler()

	body := `{"name": "more", "config": {"source": {"type": "generator", "count": 50}, "sink": {"type": "kafka", "topic": "more-out"}}}`
	expect(t, do(t, h, "POST", "/connectors", body), 201, "")
	expect(t, do(t, h, "POST", "/connectors", body), 409, `{"error_code":409,"message":"Connector more already exists"}`)
	waitStatus(t, h, "more", func(s admin.ConnectorStatus) bool { return s.RecordsIn == 50 && s.Commits > 0 })

	patch := `{"offsets": [{"partition": {"kafka_topic": "generator", "kafka_partition": 0}, "offset": {"kafka_offset": 10}}]}`
	expect(t, do(t, h, "PATCH", "/connectors/more/offsets", patch), 400, "")
	expect(t, do(t, h, "PUT", "/connectors/more/stop", ""), 202, "")
	waitStatus(t, h, "more", func(s admin.ConnectorStatus) bool { return s.Connector.State == "STOPPED" })

	rec := do(t, h, "GET", "/connectors/more/offsets", "")
	expect(t, rec, 200, "")
	var offs admin.Offsets
	decode(t, rec.Body.Bytes(), &offs)
	if len(offs.Offsets) == 0 {
		t.Fatalf("no offsets after 50 records: %s", rec.Body)
	}
	first := offs.Offsets[0].Partition
	patch = `{"offsets": [{"partition": {"kafka_topic": "` + first.Topic + `", "kafka_partition": ` +
		strconv.Itoa(int(first.Partition)) + `}, "offset": {"kafka_offset": 10}}]}`
	expect(t, do(t, h, "PATCH", "/connectors/more/offsets", patch), 200, `{"message":"The offsets for this connector have been altered successfully"}`)
	rec = do(t, h, "GET", "/connectors/more/offsets", "")
	decode(t, rec.Body.Bytes(), &offs)
	if offs.Offsets[0].Offset.Offset != 10 {
		t.Errorf("offsets after PATCH: %s", rec.Body)
	}
	expect(t, do(t, h, "DELETE", "/connectors/more/offsets", ""), 200, `{"message":"The offsets for this connector have been reset successfully"}`)
	expect(t, do(t, h, "GET", "/connectors/more/offsets", ""), 200, `{"offsets":[]}`)

	expect(t, do(t, h, "PUT", "/connectors/more/resume", ""), 202, "")
	waitStatus(t, h, "more", func(s admin.ConnectorStatus) bool { return s.Connector.State == "RUNNING" })
	expect(t, do(t, h, "DELETE", "/connectors/more", ""), 204, "")
	expect(t, do(t, h, "GET", "/connectors/more/status", ""), 404, `{"error_code":404,"message":"Connector more not found"}`)
}
