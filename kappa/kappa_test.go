package kappa

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

func TestSplitVersion(t *testing.T) {
	for _, c := range []struct {
		name, base string
		v          int
	}{
		{"orders", "orders", 1},
		{"orders-v2", "orders", 2},
		{"orders-v17", "orders", 17},
		{"orders-v1", "orders-v1", 1}, // v1 is never written: it is a name
		{"-v2", "-v2", 1},
		{"orders_v2", "orders_v2", 1},
		{"ordersv2", "ordersv2", 1},
		{"a-v2-v3", "a-v2", 3},
	} {
		if base, v := SplitVersion(c.name); base != c.base || v != c.v {
			t.Errorf("SplitVersion(%q) = %q, %d; want %q, %d", c.name, base, v, c.base, c.v)
		}
	}
}

func TestVersioned(t *testing.T) {
	for _, c := range []struct {
		name, sep string
		v         int
		want      string
	}{
		{"out", "-v", 2, "out-v2"},
		{"out-v2", "-v", 3, "out-v3"},
		{"public.orders", "_v", 2, "public.orders_v2"},
		{"orders_v4", "_v", 5, "orders_v5"},
		{"orders-v4", "_v", 5, "orders-v4_v5"},
		{"", "v", 2, "v2:"},
		{"orders:", "v", 2, "orders:v2:"},
		{"orders:v2:", "v", 3, "orders:v3:"},
		{"orders", "v", 2, "ordersv2:"},
	} {
		if got := versioned(c.name, c.sep, c.v); got != c.want {
			t.Errorf("versioned(%q, %q, %d) = %q, want %q", c.name, c.sep, c.v, got, c.want)
		}
	}
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestShadow: every output, the group and the start move to the shadow's
// version; what readers use (view, prefix_key) and the logic stay.
func TestShadow(t *testing.T) {
	def := decode(t, `{"name": "orders", "transforms": [{"type": "mask"}],
		"source": {"type": "kafka", "topics": ["in"], "group": "g"},
		"dead_letter_queue": {"topic": "dlq"},
		"sinks": [
			{"type": "kafka", "topic": "out"},
			{"type": "postgres", "table": "orders", "view": "orders_now", "dlq_table": "orders_bad"},
			{"type": "redis", "key_prefix": "o:", "prefix_key": "o:current"}]}`)
	renames, err := Shadow(def, "orders", 2, "2026-12-04T10:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	want := decode(t, `{"name": "orders-v2", "transforms": [{"type": "mask"}],
		"source": {"type": "kafka", "topics": ["in"], "group": "g-v2", "start_offset": "2026-12-04T10:00:00Z"},
		"dead_letter_queue": {"topic": "dlq-v2"},
		"sinks": [
			{"type": "kafka", "topic": "out-v2"},
			{"type": "postgres", "table": "orders_v2", "view": "orders_now", "dlq_table": "orders_bad_v2"},
			{"type": "redis", "key_prefix": "o:v2:", "prefix_key": "o:current"}]}`)
	if !reflect.DeepEqual(def, want) {
		got, _ := json.Marshal(def)
		t.Fatalf("shadow definition\n got %s", got)
	}
	if len(renames) != 8 || renames[0] != (Rename{"name", "orders", "orders-v2"}) {
		t.Fatalf("renames %+v", renames)
	}

	// A replay of a replay: the version is replaced; the default group
	// follows the name.
	def = decode(t, `{"name": "c-v2", "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "kafka", "topic": "out-v2"}}`)
	renames, err = Shadow(def, "c-v2", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	if def["name"] != "c-v3" || def["sink"].(map[string]any)["topic"] != "out-v3" || def["source"].(map[string]any)["start_offset"] != "earliest" {
		t.Fatalf("replay of a replay: %v", def)
	}
	if renames[1] != (Rename{"source.group", "connectd-c-v2", "connectd-c-v3"}) {
		t.Fatalf("group rename %+v", renames[1])
	}

	for _, bad := range []struct{ def, from, want string }{
		{`{"source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "o"}}`, "", "only a Kafka source"},
		{`{"source": {"type": "kafka"}, "sink": {"type": "s3"}}`, "", "sink.type s3"},
		{`{"source": {"type": "kafka"}}`, "", "no sink"},
		{`{"source": {"type": "kafka"}, "sink": {"type": "kafka", "topic": "o"}}`, "yesterday", "not \"beginning\""},
	} {
		_, err := Shadow(decode(t, bad.def), "c", 2, bad.from)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Shadow(%s, from %q) = %v, want an error with %q", bad.def, bad.from, err, bad.want)
		}
		if bad.from == "" && !errors.Is(err, ErrNotReplayable) {
			t.Errorf("%v is not ErrNotReplayable", err)
		}
	}
}

func TestMeasure(t *testing.T) {
	tp := func(p int32) connector.TopicPartition { return connector.TopicPartition{Topic: "in", Partition: p} }
	l := Measure(connector.Checkpoint{tp(0): 100, tp(1): 50, tp(2): 10}, connector.Checkpoint{tp(0): 40, tp(1): 60, tp(3): 5})
	want := Lag{Total: 70, Partitions: []PartitionLag{
		{"in", 0, 100, 40, 60}, {"in", 1, 50, 60, 0}, {"in", 2, 10, 0, 10}, {"in", 3, 0, 5, 0}}}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("Measure = %+v\nwant %+v", l, want)
	}
}
