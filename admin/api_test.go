package admin_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// ordersConfig is a valid connector definition in a create request.
const ordersConfig = `{"source": {"type": "generator", "count": 10}, "sink": {"type": "kafka", "topic": "out"}}`

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// expect checks the status code and, when want is not empty, that the body
// is that JSON.
func expect(t *testing.T, rec *httptest.ResponseRecorder, code int, want string) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d: %s", rec.Code, code, rec.Body)
	}
	if want != "" {
		jsonEq(t, rec.Body.Bytes(), want)
	}
}

// unchanged fails the test if the fake's state differs from before.
func unchanged(t *testing.T, f *fake, before map[string]fakeConn) {
	t.Helper()
	if after := f.snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("a rejected request changed the daemon:\nbefore %+v\nafter  %+v", before, after)
	}
}

// parsed is a connector as the daemon would hold it after a create.
func parsed(t *testing.T, name, body string) config.Connector {
	t.Helper()
	c, err := config.ParseConnector("test", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != name {
		t.Fatalf("name %q, want %q", c.Name, name)
	}
	return *c
}

func TestCreateConnector(t *testing.T) {
	f := newFake()
	h := admin.New(f, nil).Handler()

	rec := do(t, h, "POST", "/connectors", `{"name": "orders", "config": `+ordersConfig+`}`)
	expect(t, rec, 201, `{"name":"orders","config":{"source":{"type":"generator","count":10},"sink":{"type":"kafka","topic":"out"},"name":"orders"},
		"tasks":[{"connector":"orders","task":0}],"type":"source"}`)
	if loc := rec.Header().Get("Location"); loc != "/connectors/orders" {
		t.Errorf("Location = %q", loc)
	}
	c, raw, ok := f.Config("orders")
	if !ok || c.Name != "orders" || c.Sink.Type != "kafka" || c.Guarantee != config.ExactlyOnce {
		t.Fatalf("daemon got %+v", c)
	}
	// The raw definition handed to the daemon is what the client sent,
	// with the name added.
	jsonEq(t, raw, `{"source":{"type":"generator","count":10},"sink":{"type":"kafka","topic":"out"},"name":"orders"}`)

	before := f.snapshot()
	expect(t, do(t, h, "POST", "/connectors", `{"name": "orders", "config": `+ordersConfig+`}`),
		409, `{"error_code":409,"message":"Connector orders already exists"}`)
	unchanged(t, f, before)

	// A name inside the config equal to the outer one is fine.
	expect(t, do(t, h, "POST", "/connectors", `{"name": "a", "config": {"name": "a", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}}`), 201, "")
	expect(t, do(t, h, "GET", "/connectors", ""), 200, `["a","orders"]`)
}

func TestCreateConnectorRejected(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // message lines, each must appear
	}{
		{"not JSON", `{"name": "x", "config": `, []string{"request body:1:25: invalid JSON: unexpected end of input"}},
		{"syntax error", "{\"name\": \"x\",\n \"config\": {]}", []string{"request body:2:13: invalid JSON: invalid character ']'"}},
		{"not an object", `["x"]`, []string{`request body:1:1: the body must be a JSON object`}},
		{"unknown field", `{"name": "x", "configs": {}}`, []string{`request body:1:15: unknown field "configs" (known fields: name, config)`}},
		{"repeated field", `{"name": "x", "name": "y", "config": {}}`, []string{`request body:1:15: field "name" appears twice`}},
		{"name not a string", `{"name": 5, "config": {}}`, []string{`request body:1:10: "name" must be a string`}},
		{"null name", `{"name": null, "config": {}}`, []string{`request body:1:10: "name" must be a string`}},
		{"no name", `{"config": ` + ordersConfig + `}`, []string{`request body: "name" is required`}},
		{"no config", `{"name": "x"}`, []string{`request body: "config" is required`}},
		{"null config", `{"name": "x", "config": null}`, []string{`request body: "config" is required`}},
		{"config not an object", `{"name": "x", "config": [1]}`, []string{`request body:1:25: the connector config must be a JSON object`}},
		{"trailing data", `{"name": "x", "config": ` + ordersConfig + `} {}`, []string{`request body:1:116: invalid JSON: invalid character '{' after top-level value`}},
		{"name mismatch", `{"name": "x", "config": {"name": "y"}}`, []string{`Connector name configuration (y) doesn't match connector name in the URL (x)`}},
		{"bad name", `{"name": "a b", "config": ` + ordersConfig + `}`, []string{`connector name "a b" may contain only letters`}},
		{
			// Every problem at once, at its line and column in the body as
			// sent (not in the config object alone).
			"config errors",
			"{\"name\": \"x\",\n \"config\": {\n   \"gaurantee\": \"exactly_once\",\n   \"source\": {\"type\": \"generator\"},\n   \"sink\": {\"type\": \"kafka\", \"topic\": \"b\"}, \"commit.interval\": \"nope\"}}",
			[]string{
				`request body:3:4: unknown key "gaurantee"`,
				`request body:5:64: connectors[0].commit.interval: invalid duration "nope"`,
			},
		},
		{"config error after multibyte text", `{"name": "x", "config": {"sink": {"type": "kafka", "topic": "é"}, "source": {"type": "generator"}, "guarantee": "maybe"}}`,
			[]string{`request body:1:113: connectors[0].guarantee must be exactly_once or at_least_once, got "maybe"`}},
		{"daemon rejects a component", `{"name": "x", "config": {"source": {"type": "rejected"}, "sink": {"type": "kafka", "topic": "b"}}}`,
			[]string{`request body:1:37: source type rejected cannot be built`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.add(parsed(t, "existing", `{"name": "existing", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "b"}}`), nil, connector.Running, nil)
			before := f.snapshot()
			rec := do(t, admin.New(f, nil).Handler(), "POST", "/connectors", tc.body)
			var e struct {
				ErrorCode int    `json:"error_code"`
				Message   string `json:"message"`
			}
			decode(t, rec.Body.Bytes(), &e)
			if rec.Code != 400 || e.ErrorCode != 400 {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message lacks %q:\n%s", w, e.Message)
				}
			}
			if n := strings.Count(e.Message, "\n") + 1; n < len(tc.want) {
				t.Errorf("%d message lines, want %d: %s", n, len(tc.want), e.Message)
			}
			unchanged(t, f, before)
		})
	}
}

func TestPutConnectorConfig(t *testing.T) {
	f := newFake()
	h := admin.New(f, nil).Handler()

	rec := do(t, h, "PUT", "/connectors/orders/config", ordersConfig)
	expect(t, rec, 201, "")
	if rec.Header().Get("Location") != "/connectors/orders" {
		t.Errorf("Location = %q", rec.Header().Get("Location"))
	}
	var info admin.ConnectorInfo
	decode(t, rec.Body.Bytes(), &info)
	if info.Name != "orders" || info.Type != "source" || len(info.Tasks) != 1 {
		t.Errorf("info = %s", rec.Body)
	}

	updated := `{"name": "orders", "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "kafka", "topic": "out"}}`
	expect(t, do(t, h, "PUT", "/connectors/orders/config", updated), 200,
		`{"name":"orders","config":`+updated+`,"tasks":[{"connector":"orders","task":0}],"type":"sink"}`)
	if f.snapshot()["orders"].restarts != 1 {
		t.Error("update did not restart the connector")
	}

	before := f.snapshot()
	for _, tc := range []struct{ name, body, want string }{
		{"name mismatch", `{"name": "other"}`, `{"error_code":400,"message":"Connector name configuration (other) doesn't match connector name in the URL (orders)"}`},
		{"not JSON", "{\n  nope", `{"error_code":400,"message":"request body:2:3: invalid JSON: invalid character 'n' looking for beginning of object key string"}`},
		{"not an object", `"x"`, `{"error_code":400,"message":"request body:1:1: the connector config must be a JSON object"}`},
		{"empty", ``, `{"error_code":400,"message":"request body: a connector config (a JSON object) is required"}`},
		{"invalid", `{"source": {"type": "generator"}}`, `{"error_code":400,"message":"request body:1:1: connectors[0].sink: sink is required"}`},
		{"trailing", ordersConfig + ` x`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, do(t, h, "PUT", "/connectors/orders/config", tc.body), 400, tc.want)
			unchanged(t, f, before)
		})
	}
}

func TestConnectorInfoAndConfig(t *testing.T) {
	f := newFake()
	raw := `{"name": "pg", "source": {"type": "kafka", "topics": ["in"]},
	  "sink": {"type": "postgres", "dsn": "postgres://app:hunter2@db:5432/app", "password": "hunter2", "table": "t"}}`
	f.add(parsed(t, "pg", raw), []byte(raw), connector.Running, nil)
	h := admin.New(f, nil).Handler()

	cfg := `{"name":"pg","source":{"type":"kafka","topics":["in"]},
	  "sink":{"type":"postgres","dsn":"postgres://app:****@db:5432/app","password":"****","table":"t"}}`
	expect(t, do(t, h, "GET", "/connectors/pg/config", ""), 200, cfg)
	expect(t, do(t, h, "GET", "/connectors/pg", ""), 200, `{"name":"pg","config":`+cfg+`,"tasks":[{"connector":"pg","task":0}],"type":"sink"}`)
	expect(t, do(t, h, "GET", "/connectors/nope", ""), 404, `{"error_code":404,"message":"Connector nope not found"}`)
	expect(t, do(t, h, "GET", "/connectors/nope/config", ""), 404, `{"error_code":404,"message":"Connector nope not found"}`)

	// Members keep the order written.
	rec := do(t, h, "GET", "/connectors/pg/config", "")
	if i, j := bytes.Index(rec.Body.Bytes(), []byte(`"source"`)), bytes.Index(rec.Body.Bytes(), []byte(`"sink"`)); i > j {
		t.Errorf("member order lost: %s", rec.Body)
	}
}

// TestSecretsNeverInResponses sends secrets through every route that
// echoes a config or an error and checks none comes back.
func TestSecretsNeverInResponses(t *testing.T) {
	t.Setenv("SASL_PASSWORD", "hunter2")
	f := newFake()
	h := admin.New(f, nil).Handler()
	const secret = "hunter2"
	body := `{"name": "pg", "config": {"source": {"type": "kafka", "topics": ["in"]},
	  "sink": {"type": "postgres", "dsn": "host=db user=app password=hunter2 dbname=app",
	           "url": "redis://:hunter2@cache:6379/0", "auth": {"api_key": "hunter2", "token": ["hunter2"]},
	           "sasl.password": "${SASL_PASSWORD}"}}}`
	responses := []*httptest.ResponseRecorder{
		do(t, h, "POST", "/connectors", body),
		do(t, h, "GET", "/connectors/pg", ""),
		do(t, h, "GET", "/connectors/pg/config", ""),
		do(t, h, "GET", "/connectors?expand=info&expand=status", ""),
		do(t, h, "PUT", "/connectors/pg/config", `{"name": "pg", "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "postgres", "dsn": "postgres://u:hunter2@db/x"}}`),
		do(t, h, "PUT", "/connectors/other/config", `{"name": "postgres://u:hunter2@db/x"}`),
	}
	for i, rec := range responses {
		if rec.Code >= 500 || strings.Contains(rec.Body.String(), secret) {
			t.Errorf("response %d (%d) shows the secret: %s", i, rec.Code, rec.Body)
		}
	}
	if !strings.Contains(responses[2].Body.String(), `"sasl.password":"${SASL_PASSWORD}"`) {
		t.Errorf("an environment reference should stay readable: %s", responses[2].Body)
	}

	f.mu.Lock()
	f.conns["pg"].state = connector.Failed
	f.conns["pg"].trace = "connect postgres://u:hunter2@db/x: refused"
	f.mu.Unlock()
	rec := do(t, h, "GET", "/connectors/pg/status", "")
	if strings.Contains(rec.Body.String(), secret) || !strings.Contains(rec.Body.String(), "postgres://u:****@db/x") {
		t.Errorf("status trace: %s", rec.Body)
	}
}

func TestListExpand(t *testing.T) {
	f := newFake()
	raw := `{"name": "a", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}`
	f.add(parsed(t, "a", raw), []byte(raw), connector.Paused, connector.Checkpoint{{Topic: "in", Partition: 0}: 7})
	h := admin.New(f, nil, admin.WithWorkerID("w:1")).Handler()

	status := `{"name":"a","connector":{"state":"PAUSED","worker_id":"w:1"},"tasks":[{"id":0,"state":"PAUSED","worker_id":"w:1"}],"type":"source",
		"guarantee":"exactly_once","partitions":[{"topic":"in","partition":0,"checkpoint":7,"lag":0}],"last_commit":null,
		"records_in":0,"records_out":0,"commits":0,"aborts":{"abortable":0,"commit_unknown":0,"fatal":0,"fenced":0}}`
	info := `{"name":"a","config":{"name":"a","source":{"type":"generator"},"sink":{"type":"kafka","topic":"t"}},"tasks":[{"connector":"a","task":0}],"type":"source"}`
	expect(t, do(t, h, "GET", "/connectors", ""), 200, `["a"]`)
	expect(t, do(t, h, "GET", "/connectors?expand=status", ""), 200, `{"a":{"status":`+status+`}}`)
	expect(t, do(t, h, "GET", "/connectors?expand=info", ""), 200, `{"a":{"info":`+info+`}}`)
	expect(t, do(t, h, "GET", "/connectors?expand=status&expand=info", ""), 200, `{"a":{"status":`+status+`,"info":`+info+`}}`)
	expect(t, do(t, h, "GET", "/connectors?expand=nonsense", ""), 200, `["a"]`)
	expect(t, do(t, h, "GET", "/connectors/a/status", ""), 200, status)
}

// TestTasksListed: a connector split into tasks (config key tasks) lists
// each in its info and its status, a failed task with its masked trace.
func TestTasksListed(t *testing.T) {
	f := newFake()
	raw := `{"name": "k", "tasks": 3, "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "kafka", "topic": "t"}}`
	f.add(parsed(t, "k", raw), []byte(raw), connector.Running, nil)
	h := admin.New(f, nil, admin.WithWorkerID("w:1")).Handler()
	info := do(t, h, "GET", "/connectors/k", "")
	if !strings.Contains(info.Body.String(), `"tasks":[{"connector":"k","task":0},{"connector":"k","task":1},{"connector":"k","task":2}]`) {
		t.Errorf("info: %s", info.Body)
	}
	st := do(t, h, "GET", "/connectors/k/status", "")
	want := `"tasks":[{"id":0,"state":"RUNNING","worker_id":"w:1"},{"id":1,"state":"FAILED","worker_id":"w:1","trace":"boom at postgres://u:****@db/x"},{"id":2,"state":"RUNNING","worker_id":"w:1"}]`
	if !strings.Contains(st.Body.String(), want) {
		t.Errorf("status: %s\nwant it to contain %s", st.Body, want)
	}
}

func TestLifecycle(t *testing.T) {
	f := newFake()
	f.add(parsed(t, "a", `{"name": "a", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}`), nil, connector.Running, nil)
	h := admin.New(f, nil).Handler()
	state := func() connector.State { return f.snapshot()["a"].state }
	restarts := func() int { return f.snapshot()["a"].restarts }

	for _, tc := range []struct {
		method, path string
		code         int
		state        connector.State
	}{
		{"PUT", "/connectors/a/pause", 202, connector.Paused},
		{"PUT", "/connectors/a/resume", 202, connector.Running},
		{"PUT", "/connectors/a/stop", 202, connector.Stopped},
		{"PUT", "/connectors/a/resume", 202, connector.Running},
	} {
		rec := do(t, h, tc.method, tc.path, "")
		if rec.Code != tc.code || rec.Body.Len() != 0 || state() != tc.state {
			t.Errorf("%s %s = %d %q, state %s; want %d, no body, %s", tc.method, tc.path, rec.Code, rec.Body, state(), tc.code, tc.state)
		}
	}

	expect(t, do(t, h, "POST", "/connectors/a/restart", ""), 204, "")
	if restarts() != 1 {
		t.Errorf("restarts = %d, want 1", restarts())
	}
	// onlyFailed on a running connector restarts nothing but answers
	// with the status.
	rec := do(t, h, "POST", "/connectors/a/restart?includeTasks=true&onlyFailed=true", "")
	expect(t, rec, 202, "")
	var st admin.ConnectorStatus
	decode(t, rec.Body.Bytes(), &st)
	if st.Connector.State != "RUNNING" || restarts() != 1 {
		t.Errorf("onlyFailed restarted a running connector: %s, %d restarts", rec.Body, restarts())
	}
	f.mu.Lock()
	f.conns["a"].state, f.conns["a"].trace = connector.Failed, "boom"
	f.mu.Unlock()
	expect(t, do(t, h, "POST", "/connectors/a/restart?onlyFailed=true", ""), 202, "")
	if restarts() != 2 || state() != connector.Running {
		t.Errorf("onlyFailed did not restart a failed connector")
	}
	expect(t, do(t, h, "POST", "/connectors/a/restart?includeTasks=true", ""), 202, "")
	if restarts() != 3 {
		t.Errorf("includeTasks did not restart")
	}
	expect(t, do(t, h, "POST", "/connectors/a/restart?onlyFailed=maybe", ""), 400,
		`{"error_code":400,"message":"query parameter onlyFailed must be true or false"}`)

	notFound := `{"error_code":404,"message":"Connector nope not found"}`
	for _, r := range [][2]string{
		{"PUT", "/connectors/nope/pause"}, {"PUT", "/connectors/nope/resume"}, {"PUT", "/connectors/nope/stop"},
		{"POST", "/connectors/nope/restart"}, {"DELETE", "/connectors/nope"}, {"GET", "/connectors/nope/status"},
		{"GET", "/connectors/nope/offsets"}, {"DELETE", "/connectors/nope/offsets"},
		{"PATCH", "/connectors/nope/offsets"},
	} {
		body := ""
		if r[0] == "PATCH" {
			body = `{"offsets": [{"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"kafka_offset": 1}}]}`
		}
		expect(t, do(t, h, r[0], r[1], body), 404, notFound)
	}

	rec = do(t, h, "DELETE", "/connectors/a", "")
	expect(t, rec, 204, "")
	if rec.Body.Len() != 0 || len(f.snapshot()) != 0 {
		t.Errorf("delete: %q, %d connectors left", rec.Body, len(f.snapshot()))
	}
	expect(t, do(t, h, "DELETE", "/connectors/a", ""), 404, `{"error_code":404,"message":"Connector a not found"}`)
}

func TestOffsets(t *testing.T) {
	f := newFake()
	f.add(parsed(t, "a", `{"name": "a", "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "kafka", "topic": "t"}}`), nil,
		connector.Running, connector.Checkpoint{{Topic: "in", Partition: 1}: 20, {Topic: "in", Partition: 0}: 10})
	h := admin.New(f, nil).Handler()

	expect(t, do(t, h, "GET", "/connectors/a/offsets", ""), 200, `{"offsets":[
		{"partition":{"kafka_topic":"in","kafka_partition":0},"offset":{"kafka_offset":10}},
		{"partition":{"kafka_topic":"in","kafka_partition":1},"offset":{"kafka_offset":20}}]}`)

	alter := `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 1}, "offset": {"kafka_offset": 5}},
		{"partition": {"kafka_topic": "in", "kafka_partition": 2}, "offset": {"kafka_offset": 0}}]}`
	notStopped := `{"error_code":400,"message":"Connectors must be in the STOPPED state before their offsets can be modified. ` +
		`This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/a/stop' endpoint"}`
	before := f.snapshot()
	expect(t, do(t, h, "PATCH", "/connectors/a/offsets", alter), 400, notStopped)
	expect(t, do(t, h, "DELETE", "/connectors/a/offsets", ""), 400, notStopped)
	unchanged(t, f, before)

	expect(t, do(t, h, "PUT", "/connectors/a/stop", ""), 202, "")
	before = f.snapshot()
	for _, tc := range []struct{ name, body, want string }{
		{"empty", `{"offsets": []}`, "Partitions / offsets need to be provided for an alter offsets request"},
		{"missing", `{}`, "Partitions / offsets need to be provided for an alter offsets request"},
		{"unknown field", `{"offsets": [], "extra": 1}`, `request body: unknown field "extra"`},
		{"unknown nested field", `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0, "x": 1}, "offset": {"kafka_offset": 1}}]}`, `unknown field "x"`},
		{"no topic", `{"offsets": [{"partition": {"kafka_partition": 0}, "offset": {"kafka_offset": 1}}]}`, "offsets[0].partition: kafka_topic is required"},
		{"no partition", `{"offsets": [{"partition": {"kafka_topic": "in"}, "offset": {"kafka_offset": 1}}]}`, "offsets[0].partition: kafka_partition is required"},
		{"negative partition", `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": -1}, "offset": {"kafka_offset": 1}}]}`, "must not be negative"},
		{"null offset", `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": null}]}`, "null offset"},
		{"negative offset", `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": -2}}]}`, "kafka_offset must not be negative"},
		{"offset not a number", `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": "5"}}]}`, "request body:1:"},
		{"partition listed twice", `{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 1}},
			{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 2}}]}`, "offsets[1]: partition in/0 is listed twice"},
		{"bad JSON", `{"offsets": [`, "invalid JSON"},
		{"trailing", alter + `]`, "invalid JSON: invalid character ']' after top-level value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, "PATCH", "/connectors/a/offsets", tc.body)
			expect(t, rec, 400, "")
			var e struct{ Message string }
			decode(t, rec.Body.Bytes(), &e)
			if !strings.Contains(e.Message, tc.want) {
				t.Errorf("message lacks %q: %s", tc.want, e.Message)
			}
			unchanged(t, f, before)
		})
	}

	expect(t, do(t, h, "PATCH", "/connectors/a/offsets", alter), 200, `{"message":"The offsets for this connector have been altered successfully"}`)
	if got := f.snapshot()["a"].offsets; !reflect.DeepEqual(got, connector.Checkpoint{{Topic: "in", Partition: 0}: 10, {Topic: "in", Partition: 1}: 5, {Topic: "in", Partition: 2}: 0}) {
		t.Errorf("offsets after PATCH = %v", got)
	}
	expect(t, do(t, h, "DELETE", "/connectors/a/offsets", ""), 200, `{"message":"The offsets for this connector have been reset successfully"}`)
	expect(t, do(t, h, "GET", "/connectors/a/offsets", ""), 200, `{"offsets":[]}`)
}

func TestToken(t *testing.T) {
	f := newFake()
	f.add(parsed(t, "a", `{"name": "a", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}`), nil, connector.Running, nil)
	h := admin.New(f, nil, admin.WithToken("s3cret"), admin.WithMetrics(prometheus.NewRegistry())).Handler()
	unauthorized := `{"error_code":401,"message":"HTTP 401 Unauthorized: a valid bearer token is required"}`
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		code               int
	}{
		{"no header", "GET", "/connectors", nil, 401},
		{"wrong token", "GET", "/connectors", []string{"Authorization", "Bearer nope"}, 401},
		{"token prefix", "GET", "/connectors", []string{"Authorization", "Bearer s3cre"}, 401},
		{"basic auth", "GET", "/connectors", []string{"Authorization", "Basic czNjcmV0"}, 401},
		{"bare token", "GET", "/connectors", []string{"Authorization", "s3cret"}, 401},
		{"mutation", "DELETE", "/connectors/a", nil, 401},
		{"metrics", "GET", "/metrics", nil, 401},
		{"unknown path", "GET", "/nope", nil, 401},
		{"right token", "GET", "/connectors", []string{"Authorization", "Bearer s3cret"}, 200},
		{"scheme case", "GET", "/connectors", []string{"Authorization", "bearer s3cret"}, 200},
		{"metrics with token", "GET", "/metrics", []string{"Authorization", "Bearer s3cret"}, 200},
		{"health is open", "GET", "/health", nil, 200},
		{"ready is open", "GET", "/ready", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, tc.method, tc.path, "", tc.hdr...)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 401 {
				jsonEq(t, rec.Body.Bytes(), unauthorized)
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate header")
				}
			}
		})
	}
	if len(f.snapshot()) != 1 {
		t.Error("an unauthenticated DELETE deleted")
	}
}

func TestBodyLimit(t *testing.T) {
	f := newFake()
	f.add(parsed(t, "a", `{"name": "a", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}`), nil, connector.Stopped, nil)
	h := admin.New(f, nil).Handler()
	big := `{"name": "b", "config": {"x": "` + strings.Repeat("a", 1<<20) + `"}}`
	before := f.snapshot()
	tooLarge := `{"error_code":413,"message":"request body exceeds the limit of 1 MiB"}`
	expect(t, do(t, h, "POST", "/connectors", big), 413, tooLarge)
	expect(t, do(t, h, "PUT", "/connectors/a/config", big), 413, tooLarge)
	expect(t, do(t, h, "PATCH", "/connectors/a/offsets", big), 413, tooLarge)
	unchanged(t, f, before)
}

func TestMethodNotAllowed(t *testing.T) {
	h := admin.New(newFake(), nil).Handler()
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/connectors", "GET, HEAD, POST"},
		{"POST", "/connectors/a", "DELETE, GET, HEAD"},
		{"POST", "/connectors/a/config", "GET, HEAD, PUT"},
		{"GET", "/connectors/a/pause", "PUT"},
		{"POST", "/connectors/a/stop", "PUT"},
		{"GET", "/connectors/a/restart", "POST"},
		{"POST", "/connectors/a/offsets", "DELETE, GET, HEAD, PATCH"},
		{"POST", "/ready", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
		{"PUT", "/openapi.json", "GET, HEAD"},
	} {
		rec := do(t, h, tc.method, tc.path, "")
		expect(t, rec, 405, `{"error_code":405,"message":"HTTP 405 Method Not Allowed"}`)
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

func TestReady(t *testing.T) {
	f := newFake()
	h := admin.New(f, nil).Handler()
	expect(t, do(t, h, "GET", "/ready", ""), 200, `{"status":"ready","message":"Every connector is running, or paused or stopped on request."}`)
	f.notReady = true
	rec := do(t, h, "GET", "/ready", "")
	expect(t, rec, 503, "")
	var m map[string]string
	decode(t, rec.Body.Bytes(), &m)
	if m["status"] != "not ready" {
		t.Errorf("ready = %s", rec.Body)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "connectd_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	rec := do(t, admin.New(newFake(), nil, admin.WithMetrics(reg)).Handler(), "GET", "/metrics", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "connectd_test_total 3") {
		t.Errorf("metrics = %d: %s", rec.Code, rec.Body)
	}
	expect(t, do(t, admin.New(newFake(), nil).Handler(), "GET", "/metrics", ""), 404,
		`{"error_code":404,"message":"metrics are not enabled on this server"}`)
}

func TestOpenAPIServed(t *testing.T) {
	rec := do(t, admin.New(newFake(), nil).Handler(), "GET", "/openapi.json", "")
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	decode(t, rec.Body.Bytes(), &doc)
	if rec.Code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
		t.Errorf("openapi.json = %d %.200s", rec.Code, rec.Body)
	}
}

// TestRenderYAMLDefinition: a connector defined in YAML (the config file's
// form) reads back as JSON.
func TestRenderYAMLDefinition(t *testing.T) {
	f := newFake()
	raw := "name: y\nsource: {type: generator, count: 3}\nsink:\n  type: kafka\n  topic: out\n  sasl:\n    password: hunter2\n"
	c, err := config.ParseConnector("y.yaml", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	f.add(*c, []byte(raw), connector.Running, nil)
	expect(t, do(t, admin.New(f, nil).Handler(), "GET", "/connectors/y/config", ""), 200,
		`{"name":"y","source":{"type":"generator","count":3},"sink":{"type":"kafka","topic":"out","sasl":{"password":"****"}}}`)
}
