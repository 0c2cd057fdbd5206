package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// System is what moves the records in a run.
type System string

const (
	// Connectd is bin/connectd as a child process.
	Connectd System = "connectd"
	// Bare is the harness's own minimal loop for the sink (a child process
	// too): franz-go consume→produce, pgx unnest upsert, pipelined SET.
	Bare System = "bare"
	// TMC is Apache Kafka's TransactionalMessageCopier (kafka-tools).
	TMC System = "tmc"
	// Streams is a minimal Kafka Streams exactly_once_v2 copy application
	// (bench/peers/streams-copy), or for a Windowed scenario the windowed
	// aggregation app (bench/peers/streams-window).
	Streams System = "streams"
)

// Sink is where the records go.
type Sink string

const (
	SinkKafka    Sink = "kafka"
	SinkPostgres Sink = "postgres"
	SinkRedis    Sink = "redis"
	// SinkTwoPhase is issue 6's fan-out: every record to a Kafka topic
	// AND a PostgreSQL table (a connector with `sinks:`), exactly_once by
	// two-phase commit (PREPARE TRANSACTION, the Kafka transaction with
	// its decision record, COMMIT PREPARED), at_least_once each sink in
	// turn. Its rate counts input records, each written twice.
	SinkTwoPhase Sink = "twophase"
)

// Guarantees, as connectd's config spells them.
const (
	AtLeastOnce = "at_least_once"
	ExactlyOnce = "exactly_once"
)

// Scenario is one configuration measured.
type Scenario struct {
	System         System
	Sink           Sink
	Guarantee      string // connectd: at_least_once or exactly_once; peers: exactly_once; bare: at_least_once
	CommitInterval time.Duration
	RecordSize     int // bytes of each value
	Partitions     int
	// Windowed runs issue 15's windowed aggregation (window.go) instead of
	// a copy: count and sum per key in 1-minute tumbling event-time
	// windows, final results only.
	Windowed bool `json:",omitempty"`
	// Bounded runs connectd as a bounded job over the backlog (`connectd
	// run --until end`, issue 16; bounded.go) instead of measuring the
	// streaming drain. A zero CommitInterval and BatchMaxRecords leave
	// those keys out of the config, so the run gets the mode's defaults.
	Bounded bool `json:",omitempty"`
	// BatchMaxRecords, when above 0, is written as batch.max.records;
	// 0 leaves connectd's default.
	BatchMaxRecords int `json:",omitempty"`
	// StreamsDefaults runs the Kafka Streams copy peer as a user would
	// start it (one stream thread, client defaults) instead of tuned for
	// throughput (streamsArgv): a second row, not the peer of the targets.
	StreamsDefaults bool `json:",omitempty"`
	// EventID is connectd's event_id.from; "" is derived, the harness's
	// usual mode (the origin is the event ID, written once). With header
	// (connectd's shipped default) the scenario reads an input whose every
	// record carries an event-id header (Input.EventIDHeader).
	EventID string `json:",omitempty"`
	// Processes, above 1, runs that many connectd processes on the one
	// consumer group (the scale-out runs, ScaleOutMatrix); Tasks, above 0,
	// is the connector's tasks, overriding the harness's -tasks.
	Processes int `json:",omitempty"`
	Tasks     int `json:",omitempty"`
}

// Name is a short, unique, human-readable label, e.g.
// "connectd kafka EO 100ms 100B 12p", "... 12p window" for a windowed one,
// "... 12p hdr" for event IDs from the header, "streams ... 12p defaults"
// for the untuned Kafka Streams peer.
func (s Scenario) Name() string {
	g := map[string]string{AtLeastOnce: "ALO", ExactlyOnce: "EO"}[s.Guarantee]
	batching := fmtInterval(s.CommitInterval)
	if s.CommitInterval == 0 {
		batching = "default"
	}
	if s.BatchMaxRecords > 0 {
		batching += "/" + fmtRecords(s.BatchMaxRecords)
	}
	name := fmt.Sprintf("%s %s %s %s %s %dp", s.System, s.Sink, g, batching, fmtSize(s.RecordSize), s.Partitions)
	if s.Windowed {
		name += " window"
	}
	if s.Bounded {
		name += " bounded"
	}
	if s.StreamsDefaults {
		name += " defaults"
	}
	if s.Processes > 1 {
		name += fmt.Sprintf(" x%d", s.Processes)
	}
	if s.Tasks > 0 {
		name += fmt.Sprintf(" %dt", s.Tasks)
	}
	switch s.EventID {
	case "":
	case EventIDHeader:
		name += " hdr"
	default:
		name += " id-" + s.EventID
	}
	return name
}

// EventIDHeader is connectd's event_id.from reading the event-id header.
const EventIDHeader = "header"

// fmtRecords writes a record count short: 10k, 1M, 2500.
func fmtRecords(n int) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// slug is Name usable in topic, table and key names.
func (s Scenario) slug() string {
	r := strings.NewReplacer(" ", "-", "_", "", "/", "-")
	return strings.ToLower(r.Replace(s.Name()))
}

// Input identifies the pre-loaded input topic a scenario reads; scenarios
// with the same Input share one topic (each run has its own group).
// Windowed scenarios have no shared input: each run pre-loads its own
// topic, since its live phase appends to it (see window.go).
type Input struct {
	RecordSize, Partitions int
	// EventIDHeader gives every record an event-id header, for scenarios
	// reading event IDs from it. Its own topic: every other scenario reads
	// records without headers, as before, so a copying system's output
	// does not grow by a header only connectd's header mode needs.
	EventIDHeader bool
}

func (s Scenario) Input() Input {
	return Input{RecordSize: s.RecordSize, Partitions: s.Partitions, EventIDHeader: s.EventID == EventIDHeader}
}

// Topic names the input topic for n records.
func (in Input) Topic(n int64) string {
	t := fmt.Sprintf("bench-in-%s-%dp-%d", strings.ToLower(fmtSize(in.RecordSize)), in.Partitions, n)
	if in.EventIDHeader {
		t += "-hdr"
	}
	return t
}

func fmtInterval(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func fmtSize(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// Matrix is a set of scenarios to run.
type Matrix struct {
	Sinks           []Sink
	Intervals       []time.Duration
	Sizes           []int
	Partitions      []int
	Peers, Baseline bool
}

// DefaultMatrix is what `make bench` runs on a 2-core machine in about a
// quarter of an hour: every sink and guarantee at 100 ms, 100 B, 12
// partitions with its bare baseline, the peers, the two-phase Kafka +
// PostgreSQL fan-out (connectd only: no bare loop or peer does it), the
// commit-interval sweep for Kafka → Kafka (the interval is where
// exactly-once pays), and Kafka → Kafka with event IDs from the header.
func DefaultMatrix() []Scenario {
	var out []Scenario
	for _, sink := range []Sink{SinkKafka, SinkPostgres, SinkRedis} {
		out = append(out, scenarios(sink, 100*time.Millisecond, 100, 12, true, sink == SinkKafka)...)
	}
	out = append(out, scenarios(SinkTwoPhase, 100*time.Millisecond, 100, 12, false, false)...)
	// Redis with 1 KB records: issue 17's at_least_once ≥ exactly_once
	// target is set there, where AOF fsyncs weigh most.
	out = append(out, scenarios(SinkRedis, 100*time.Millisecond, 1024, 12, false, false)...)
	for _, iv := range []time.Duration{10 * time.Millisecond, time.Second} {
		out = append(out, scenarios(SinkKafka, iv, 100, 12, false, false)...)
	}
	// The shipped event-ID mode (the event-id header) for the Kafka pair
	// and its bare loop, on an input with that header.
	for _, s := range scenarios(SinkKafka, 100*time.Millisecond, 100, 12, true, false) {
		s.EventID = EventIDHeader
		out = append(out, s)
	}
	return out
}

// FullMatrix is issue 9's whole cross product: three sinks × two
// guarantees × commit intervals 10ms, 100ms, 1s × record sizes 100 B, 1 KB
// × 1 and 12 partitions, each with its baseline and (Kafka) peers.
func FullMatrix() []Scenario {
	var out []Scenario
	for _, sink := range []Sink{SinkKafka, SinkPostgres, SinkRedis} {
		for _, iv := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second} {
			for _, size := range []int{100, 1024} {
				for _, parts := range []int{1, 12} {
					out = append(out, scenarios(sink, iv, size, parts, true, sink == SinkKafka)...)
				}
			}
		}
	}
	return out
}

// WindowMatrix is issue 15's comparison: connectd's windowed count+sum
// exactly_once into Kafka next to the Kafka Streams exactly_once_v2 app
// doing the same, at a 100 ms commit interval, 100-byte JSON values, 12
// partitions.
func WindowMatrix() []Scenario {
	base := Scenario{Sink: SinkKafka, Guarantee: ExactlyOnce, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12, Windowed: true}
	cd, st := base, base
	cd.System, st.System = Connectd, Streams
	return []Scenario{cd, st}
}

// ScaleOutMatrix is issue 19's scale-out measurement: the same backlog,
// Kafka → Kafka exactly_once at 100 ms, 100-byte records, 12 partitions,
// drained by 1, 2 and 3 connectd processes (one task each, one consumer
// group across them) and by one process with 1, 2 and 3 tasks.
func ScaleOutMatrix() []Scenario {
	base := Scenario{System: Connectd, Sink: SinkKafka, Guarantee: ExactlyOnce, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12}
	var out []Scenario
	for p := 1; p <= 3; p++ {
		s := base
		s.Processes, s.Tasks = p, 1
		out = append(out, s)
	}
	for t := 2; t <= 3; t++ {
		s := base
		s.Tasks = t
		out = append(out, s)
	}
	return out
}

// BoundedMatrix is issue 16's comparison: over the same backlog, into the
// same sink at the same guarantee, connectd as a bounded job (`connectd run
// --until end` with the bounded-run defaults, its wall time from process
// start to exit 0) against connectd's streaming drain at the shipped
// streaming defaults (100 ms, 10,000 records). Kafka and PostgreSQL,
// exactly_once, 100-byte records, 12 partitions.
func BoundedMatrix() []Scenario {
	var out []Scenario
	for _, sink := range []Sink{SinkKafka, SinkPostgres} {
		b := Scenario{System: Connectd, Sink: sink, Guarantee: ExactlyOnce, RecordSize: 100, Partitions: 12, Bounded: true}
		out = append(out, b.streamingPartner(), b)
	}
	return out
}

// BoundedSweepMatrix measures the batching a bounded run could default to:
// bounded runs with commit.interval and batch.max.records set explicitly,
// from the streaming defaults up, next to the streaming drain, Kafka →
// Kafka and to PostgreSQL exactly_once, 100-byte and 1 KB records (-only
// picks).
func BoundedSweepMatrix() []Scenario {
	var out []Scenario
	for _, point := range []struct {
		sink Sink
		size int
	}{{SinkKafka, 100}, {SinkPostgres, 100}, {SinkKafka, 1024}, {SinkPostgres, 1024}} {
		b := Scenario{System: Connectd, Sink: point.sink, Guarantee: ExactlyOnce, RecordSize: point.size, Partitions: 12, Bounded: true}
		out = append(out, b.streamingPartner())
		for _, v := range []struct {
			iv    time.Duration
			batch int
		}{{100 * time.Millisecond, 10000}, {250 * time.Millisecond, 50000}, {500 * time.Millisecond, 50000}, {time.Second, 50000}, {time.Second, 100000}, {2 * time.Second, 200000}} {
			s := b
			s.CommitInterval, s.BatchMaxRecords = v.iv, v.batch
			out = append(out, s)
		}
	}
	return out
}

// streamingPartner is the streaming scenario a bounded one is compared
// with: the same sink, guarantee and input, drained at the shipped
// streaming defaults.
func (s Scenario) streamingPartner() Scenario {
	s.Bounded, s.CommitInterval, s.BatchMaxRecords = false, 100*time.Millisecond, 0
	return s
}

// scenarios returns connectd at both guarantees, optionally with the bare
// baseline and the Kafka peers (Kafka Streams tuned and with defaults,
// TransactionalMessageCopier), for one point of the matrix.
func scenarios(sink Sink, iv time.Duration, size, parts int, baseline, peers bool) []Scenario {
	base := Scenario{Sink: sink, CommitInterval: iv, RecordSize: size, Partitions: parts}
	with := func(sys System, g string) Scenario { s := base; s.System, s.Guarantee = sys, g; return s }
	out := []Scenario{with(Connectd, AtLeastOnce), with(Connectd, ExactlyOnce)}
	if baseline {
		out = append(out, with(Bare, AtLeastOnce))
		if sink == SinkPostgres { // its COPY path too (baseline.go)
			out = append(out, with(BareCopy, AtLeastOnce))
		}
	}
	if peers {
		untuned := with(Streams, ExactlyOnce)
		untuned.StreamsDefaults = true
		out = append(out, with(Streams, ExactlyOnce), untuned, with(TMC, ExactlyOnce))
	}
	return out
}

// Interleave orders rounds × scenarios so that repeats of one scenario are
// spread over the whole run, every other round backwards (A B C C B A A B
// C, not A A A B B B): slow periods of a shared machine then hit every
// scenario alike, and no scenario always runs first or last.
func Interleave(scs []Scenario, rounds int) []Run {
	var out []Run
	for r := range rounds {
		for i := range scs {
			s := scs[i]
			if r%2 == 1 {
				s = scs[len(scs)-1-i]
			}
			out = append(out, Run{Scenario: s, Round: r})
		}
	}
	return out
}

// Run is one execution of a scenario.
type Run struct {
	Scenario Scenario
	Round    int
	// Warmup: a run of the warm-up rounds, before the measured ones; its
	// result is reported apart and counts in no median, worst round or
	// target.
	Warmup bool `json:",omitempty"`
}

// label names the run in logs and in its work files: "r1", "r2", … for
// measured rounds, "w1", … for warm-up ones.
func (run Run) label() string {
	if run.Warmup {
		return "w" + strconv.Itoa(run.Round+1)
	}
	return "r" + strconv.Itoa(run.Round+1)
}
