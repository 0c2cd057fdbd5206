package pipeline

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/config"
)

// TestBoundedBlockAgainstSource: a bounded: block that the source cannot
// honour is a config error naming the connector, at the block: a
// generator without a count, a generator with a time, explicit offsets
// for a topic the source does not read or leaving one out; a generator
// with a count and a Kafka source with every topic listed are accepted.
func TestBoundedBlockAgainstSource(t *testing.T) {
	cfg, err := config.Parse("b.yaml", []byte(`kafka:
  brokers: [localhost:9092]
connectors:
  - name: endless
    source: {type: generator}
    sink: {type: kafka, topic: out}
    bounded: {until: end}
  - name: timed-gen
    source: {type: generator, count: 10}
    sink: {type: kafka, topic: out}
    bounded: {until: 2026-12-04T10:00:00Z}
  - name: offsets
    source: {type: kafka, topics: [a, b]}
    sink: {type: kafka, topic: out}
    bounded:
      offsets:
        a: {0: 10}
        c: {0: 10}
  - name: counted
    source: {type: generator, count: 10}
    sink: {type: kafka, topic: out}
    bounded: {until: end}
  - name: listed
    source: {type: kafka, topics: [a, b]}
    sink: {type: kafka, topic: out}
    bounded: {offsets: {a: {0: 10}, b: {0: 0, 1: 5}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(cfg)
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		"b.yaml:7:5: connector endless: bounded: a generator without a count never ends",
		"b.yaml:11:5: connector timed-gen: bounded: a generator source is bounded by its own end alone; write bounded: {until: end}",
		`b.yaml:15:5: connector offsets: bounded: offsets: input topic "b" is not listed`,
		`b.yaml:18:9: connector offsets: bounded: offsets: "c" is not an input topic (source.topics: [a b])`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("error %d = %q\nwant      %q", i, got[i], w)
		}
	}
}
