package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// quiet is a logger for fuzzing, where 500s would otherwise flood the
// output (there must be none; the test fails on any).
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// FuzzCreateConnector posts arbitrary bodies to POST /connectors: the
// handler never panics, answers only with Connect's codes, and either
// creates exactly the connector it reports or changes nothing.
func FuzzCreateConnector(f *testing.F) {
	for _, seed := range []string{
		`{"name": "orders", "config": ` + ordersConfig + `}`,
		`{"name": "existing", "config": ` + ordersConfig + `}`,
		`{"name": "x", "config": {"name": "y"}}`,
		`{"name": "x", "config": {"source": {"type": "rejected"}, "sink": {"type": "kafka", "topic": "b"}}}`,
		"{\"name\": \"x\",\n \"config\": {\"gaurantee\": 1, \"source\": {\"type\": \"generator\"}}}",
		`{"name": "x", "config": {}, "extra": 1}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fk := newFake()
		fk.add(config.Connector{Name: "existing"}, []byte(`{"name":"existing"}`), connector.Running, nil)
		before := fk.snapshot()
		h := admin.New(fk, quiet).Handler()

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/connectors", strings.NewReader(string(body))))
		after := fk.snapshot()

		switch rec.Code {
		case 201:
			var info admin.ConnectorInfo
			if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
				t.Fatalf("201 with a body that is not a ConnectorInfo: %v: %s", err, rec.Body)
			}
			created := slices.Collect(maps.Keys(after))
			if len(after) != len(before)+1 || after[info.Name].cfg.Name != info.Name {
				t.Fatalf("201 for %q, daemon holds %v", info.Name, created)
			}
			delete(after, info.Name)
			if !reflect.DeepEqual(before, after) {
				t.Fatal("the create changed another connector")
			}
		case 400, 409, 413:
			var e struct {
				ErrorCode int    `json:"error_code"`
				Message   string `json:"message"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.ErrorCode != rec.Code || e.Message == "" {
				t.Fatalf("%d with body %s", rec.Code, rec.Body)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("a rejected create (%d) changed the daemon: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzAlterOffsets patches arbitrary bodies onto a connector, stopped or
// running: no panic, Connect's codes only, and either exactly the offsets
// given were merged (only when stopped) or nothing changed.
func FuzzAlterOffsets(f *testing.F) {
	for _, seed := range []struct {
		body    string
		stopped bool
	}{
		{`{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 3}}]}`, true},
		{`{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 3}}]}`, false},
		{`{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 1}, "offset": null}]}`, true},
		{`{"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 1}},
		   {"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 2}}]}`, true},
		{`{"offsets": [], "x": 1}`, true},
	} {
		f.Add([]byte(seed.body), seed.stopped)
	}
	f.Fuzz(func(t *testing.T, body []byte, stopped bool) {
		fk := newFake()
		state := connector.Running
		if stopped {
			state = connector.Stopped
		}
		fk.add(config.Connector{Name: "c"}, nil, state, connector.Checkpoint{{Topic: "in", Partition: 0}: 10, {Topic: "in", Partition: 1}: 20})
		before := fk.snapshot()
		h := admin.New(fk, quiet).Handler()

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("PATCH", "/connectors/c/offsets", strings.NewReader(string(body))))
		after := fk.snapshot()

		switch rec.Code {
		case 200:
			if !stopped {
				t.Fatal("offsets of a running connector altered")
			}
			var req admin.Offsets
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("200 for a body that does not decode: %v", err)
			}
			want := before["c"].offsets.Clone()
			for _, po := range req.Offsets {
				want[connector.TopicPartition{Topic: po.Partition.Topic, Partition: po.Partition.Partition}] = po.Offset.Offset
			}
			if !reflect.DeepEqual(after["c"].offsets, want) {
				t.Fatalf("offsets = %v, want %v", after["c"].offsets, want)
			}
		case 400, 413:
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("a rejected PATCH (%d) changed the daemon: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
		}
	})
}
