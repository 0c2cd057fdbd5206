package bench

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/idempotency"
	"github.com/connectd/connectd/pipeline"
	srckafka "github.com/connectd/connectd/source/kafka"
)

// TestStreamsArgv: the tuned Kafka Streams peer asks for a stream thread
// per core and the tuned producer setup, the defaults row for one thread
// and Kafka Streams' defaults; both keep the commit interval.
func TestStreamsArgv(t *testing.T) {
	brokers := []string{"a:1", "b:2"}
	for _, tt := range []struct {
		defaults bool
		tail     []string
	}{
		{false, []string{"a:1,b:2", "in", "out", "app", "100", "0", "tuned"}},
		{true, []string{"a:1,b:2", "in", "out", "app", "100", "1", "defaults"}},
	} {
		argv := streamsArgv("cp", brokers, "in", "out", "app", 100*time.Millisecond, tt.defaults)
		if argv[0] != "java" || !slices.Contains(argv, jvmHeap) || !slices.Contains(argv, "io.connectd.bench.StreamsCopy") {
			t.Fatalf("defaults=%v: argv %q", tt.defaults, argv)
		}
		if got := argv[len(argv)-len(tt.tail):]; !slices.Equal(got, tt.tail) {
			t.Errorf("defaults=%v: arguments %q, want %q", tt.defaults, got, tt.tail)
		}
	}
}

// TestPeerRows: the matrices carry both Kafka Streams rows, told apart by
// name, and only the tuned one is the peer the ratio targets pair with
// (aggregate.go's pt builds a Scenario without StreamsDefaults).
func TestPeerRows(t *testing.T) {
	var tuned, untuned, tmc int
	for _, s := range DefaultMatrix() {
		if s.System == Streams && s.StreamsDefaults {
			untuned++
			if s.Name() != "streams kafka EO 100ms 100B 12p defaults" {
				t.Errorf("defaults row named %q", s.Name())
			}
		} else if s.System == Streams {
			tuned++
			if s.Name() != "streams kafka EO 100ms 100B 12p" {
				t.Errorf("tuned row named %q", s.Name())
			}
		}
		if s.System == TMC {
			tmc++
		}
	}
	if tuned != 1 || untuned != 1 || tmc != 1 {
		t.Fatalf("default matrix: %d tuned Streams, %d defaults Streams, %d TMC rows", tuned, untuned, tmc)
	}
	target := Scenario{System: Streams, Sink: SinkKafka, Guarantee: ExactlyOnce, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12}
	if !slices.Contains(DefaultMatrix(), target) {
		t.Errorf("the ratio targets' Streams scenario %q is not in the default matrix", target.Name())
	}
}

// TestEventIDHeaderScenario: a header-mode scenario renders a config whose
// event IDs come from the event-id header, reads its own input topic, and
// the header the harness writes is one connectd's deriver accepts (through
// the Kafka source's own record conversion) and unique per record.
func TestEventIDHeaderScenario(t *testing.T) {
	base := Scenario{System: Connectd, Sink: SinkKafka, Guarantee: ExactlyOnce, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12}
	hdr := base
	hdr.EventID = EventIDHeader
	if hdr.Name() != "connectd kafka EO 100ms 100B 12p hdr" {
		t.Errorf("name %q", hdr.Name())
	}
	if hdr.Input() == base.Input() || !hdr.Input().EventIDHeader || base.Input().EventIDHeader {
		t.Errorf("inputs %+v and %+v", hdr.Input(), base.Input())
	}
	if got := hdr.Input().Topic(1000000); got != "bench-in-100b-12p-1000000-hdr" {
		t.Errorf("header input topic %q", got)
	}

	for _, tt := range []struct {
		s    Scenario
		mode idempotency.Mode
	}{{base, idempotency.ModeDerived}, {hdr, idempotency.ModeHeader}} {
		c := connectdConfig{Scenario: tt.s, AdminListen: "127.0.0.1:18083", Brokers: []string{"127.0.0.1:9192"},
			InputTopics: []string{"bench-in"}, Group: "bench-g", OutputTopic: "bench-out"}
		text := c.render()
		cfg, err := config.Parse("gen.yaml", []byte(text))
		if err != nil {
			t.Fatalf("%s\n%v", text, err)
		}
		if _, err := pipeline.Decode(cfg.Connectors[0]); err != nil {
			t.Fatalf("%s\n%v", text, err)
		}
		e := cfg.Connectors[0].EventID
		d, err := idempotency.NewDeriver(e.From, e.Header, e.Field)
		if err != nil {
			t.Fatal(err)
		}
		if d.Mode() != tt.mode {
			t.Errorf("%s: event ID mode %q, want %q\n%s", tt.s.Name(), d.Mode(), tt.mode, text)
		}
		if tt.mode != idempotency.ModeHeader {
			continue
		}
		seen := map[string]bool{}
		for _, i := range []int64{0, 1, 10, 999999} {
			r := &kgo.Record{Topic: "bench-in-x", Partition: 3, Offset: i, Key: recordKey(i), Value: []byte("{}"), Headers: eventIDHeader("bench-in-x", i)}
			id, err := d.Derive(srckafka.FromKgo(r))
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if seen[id] || !strings.HasPrefix(id, "bench-in-x-") {
				t.Errorf("record %d: event ID %q (seen before: %v)", i, id, seen[id])
			}
			seen[id] = true
		}
		// A record without the header fails the run: the mode is real.
		if _, err := d.Derive(srckafka.FromKgo(&kgo.Record{Topic: "bench-in-x", Value: []byte("{}")})); err == nil {
			t.Error("a record without an event-id header got an event ID")
		}
	}
}
