package config

import (
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

const blockHead = `kafka:
  brokers: [localhost:9092]
connectors:
  - name: c1
    source: {type: kafka, topics: [orders]}
    sink: {type: kafka, topic: out}
`

// TestBoundedBlock: a connector's bounded: block in a file and in an
// admin API body (JSON), with until end, a time or explicit offsets.
func TestBoundedBlock(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(blockHead+`    bounded: {until: end}
  - name: c2
    source: {type: kafka, topics: [orders]}
    sink: {type: kafka, topic: out}
    bounded:
      until: 2026-12-04T10:00:00Z
  - name: c3
    source: {type: kafka, topics: [orders]}
    sink: {type: kafka, topic: out}
    bounded:
      offsets:
        orders: {0: 1000, "1": 2500}
  - name: c4
    source: {type: kafka, topics: [orders]}
    sink: {type: kafka, topic: out}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connectors
	if b := c[0].Bounded; b == nil || !b.Until.End || b.Pos.Line != 7 || b.Pos.Column != 5 {
		t.Errorf("c1: bounded = %+v, want until end at 7:5", b)
	}
	want := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	if b := c[1].Bounded; b == nil || !b.Until.Time.Equal(want) || b.UntilPos.Line != 12 || b.String() != "until 2026-12-04T10:00:00Z" {
		t.Errorf("c2: bounded = %+v, want until %s at line 12", b, want)
	}
	b := c[2].Bounded
	if stops := b.Stops(); stops["orders"][0] != 1000 || stops["orders"][1] != 2500 || len(stops["orders"]) != 2 || b.TopicPos["orders"].Line != 18 {
		t.Errorf("c3: stops = %v at %v, want orders 0:1000 1:2500 at line 18", stops, b.TopicPos)
	}
	if c[3].Bounded != nil {
		t.Errorf("c4: bounded = %+v, want none", c[3].Bounded)
	}

	// The admin API's JSON body, and a file connector rendered back
	// (GET /connectors/{c}/config, replays) reads the same.
	for _, body := range []string{
		`{"name": "x", "source": {"type": "kafka", "topics": ["orders"]}, "sink": {"type": "kafka", "topic": "b"},
 "bounded": {"offsets": {"orders": {"0": 1000, "1": 2500}}}}`,
		string(mustMarshal(t, c[2])),
	} {
		cc, err := ParseConnector("body", []byte(body))
		if err != nil {
			t.Fatalf("%s:\n%v", body, err)
		}
		if stops := cc.Bounded.Stops(); stops["orders"][0] != 1000 || stops["orders"][1] != 2500 {
			t.Errorf("%s: stops = %v", body, stops)
		}
	}
	for _, cc := range c[:2] {
		back, err := ParseConnector("body", mustMarshal(t, cc))
		if err != nil {
			t.Fatal(err)
		}
		if back.Bounded == nil || back.Bounded.Until != cc.Bounded.Until {
			t.Errorf("%s rendered back: bounded = %+v, want %+v", cc.Name, back.Bounded, cc.Bounded)
		}
	}
	if out := string(mustMarshal(t, c[3])); strings.Contains(out, "bounded") {
		t.Errorf("a connector without a block renders one:\n%s", out)
	}
}

func mustMarshal(t *testing.T, c Connector) []byte {
	t.Helper()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBoundedBlockErrors: every problem of a block at once, each at the
// value or key that causes it.
func TestBoundedBlockErrors(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        []string
	}{
		{"both", "    bounded: {until: end, offsets: {orders: {0: 5}}}\n",
			[]string{"f.yaml:7:27: connectors[0].bounded: give until or offsets, not both"}},
		{"neither", "    bounded: {}\n",
			[]string{"f.yaml:7:5: connectors[0].bounded: say where the input stops: until: end, until: an RFC 3339 time, or offsets: {TOPIC: {PARTITION: OFFSET}}"}},
		{"not a mapping", "    bounded: end\n",
			[]string{"f.yaml:7:14: connectors[0].bounded: expected a mapping, got a string"}},
		{"bad until", "    bounded: {until: tomorrow}\n",
			[]string{`f.yaml:7:22: connectors[0].bounded.until: want "end" or an RFC 3339 time such as 2026-12-04T12:00:00Z, got "tomorrow"`}},
		{"unknown key", "    bounded: {untill: end}\n",
			[]string{"f.yaml:7:5: connectors[0].bounded: say where the input stops",
				`f.yaml:7:15: unknown key "untill" in connectors[0].bounded (known keys: until, offsets)`}},
		{"empty offsets", "    bounded: {offsets: {}}\n",
			[]string{"f.yaml:7:15: connectors[0].bounded.offsets lists no topic"}},
		{"bad partitions and offsets", `    bounded:
      offsets:
        orders: {p0: 5, "-1": 6, 2: -7, 3: x}
        other: {}
`, []string{
			`f.yaml:9:18: connectors[0].bounded.offsets.orders: partition "p0" is not a partition number (0, 1, ...)`,
			`f.yaml:9:25: connectors[0].bounded.offsets.orders: partition "-1" is not a partition number (0, 1, ...)`,
			"f.yaml:9:37: connectors[0].bounded.offsets.orders.2 must be an offset (>= 0), got -7",
			`f.yaml:9:44: connectors[0].bounded.offsets.orders.3: expected an integer that fits in int64, got "x"`,
			"f.yaml:10:9: connectors[0].bounded.offsets.other lists no partition",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(blockHead+tc.block))
			if err == nil {
				t.Fatal("accepted")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("error %d = %q\nwant      %q", i, got[i], w)
				}
			}
		})
	}
}
