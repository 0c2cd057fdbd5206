package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// The harness's logic is tested here without services; the harness itself
// (make bench) needs Kafka, PostgreSQL and Redis and is not a test.

func ms2(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, ms2(i))
	}
	s := Summarize(d)
	if s.N != 1000 || s.P50 != ms2(500) || s.P99 != ms2(990) || s.P999 != ms2(999) || s.Max != ms2(1000) {
		t.Fatalf("summary %+v", s)
	}
	// Few samples: the percentile is a sample, never an interpolation.
	few := []time.Duration{ms2(30), ms2(10), ms2(20)}
	s = Summarize(few)
	if s.P50 != ms2(20) || s.P99 != ms2(30) || s.P999 != ms2(30) {
		t.Fatalf("summary of 3: %+v", s)
	}
	if (Summarize(nil) != LatencySummary{}) || Percentile(nil, 0.5) != 0 {
		t.Fatal("empty input")
	}
	if Percentile([]time.Duration{ms2(5)}, 0) != ms2(5) {
		t.Fatal("p=0 of one sample")
	}
}

func TestMedianSpreadRatio(t *testing.T) {
	xs := []float64{3, 1, 2}
	if Median(xs) != 2 || !reflect.DeepEqual(xs, []float64{3, 1, 2}) {
		t.Fatalf("median %v (input %v)", Median(xs), xs)
	}
	if Median([]float64{4, 1, 2, 3}) != 2.5 || !math.IsNaN(Median(nil)) {
		t.Fatal("median of even count or empty")
	}
	if lo, hi := Spread(xs); lo != 1 || hi != 3 {
		t.Fatalf("spread %v %v", lo, hi)
	}
	if Ratio(1, 2) != 0.5 || !math.IsNaN(Ratio(1, 0)) || !math.IsNaN(Ratio(math.NaN(), 1)) {
		t.Fatal("ratio")
	}
}

func TestDrainRateAndCPU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	samples := []Progress{
		{At: t0, Records: 0, CPU: time.Second},
		{At: t0.Add(time.Second), Records: 10000, CPU: 2 * time.Second},
		{At: t0.Add(2 * time.Second), Records: 60000, CPU: 3 * time.Second},
		{At: t0.Add(3 * time.Second), Records: 110000, CPU: 5 * time.Second},
		{At: t0.Add(4 * time.Second), Records: 110000, CPU: 9 * time.Second},
	}
	rate, elapsed, ok := DrainRate(samples, 110000)
	if !ok || elapsed != 2*time.Second || rate != 50000 {
		t.Fatalf("rate %v over %v (%v)", rate, elapsed, ok)
	}
	if cpu := CPUBetween(samples, 110000); cpu != 3*time.Second {
		t.Fatalf("CPU %v", cpu)
	}
	if _, _, ok := DrainRate(samples[:3], 110000); ok {
		t.Fatal("incomplete drain measured")
	}
	if _, _, ok := DrainRate([]Progress{{At: t0, Records: 110000}}, 110000); ok {
		t.Fatal("a single sample measured")
	}
}

func TestPayload(t *testing.T) {
	ts := time.UnixMicro(1764100000123456)
	for _, size := range []int{minPayload, 100, 1024} {
		v := appendPayload(nil, 123456, size, ts)
		if len(v) != size {
			t.Fatalf("size %d: got %d bytes: %s", size, len(v), v)
		}
		var doc struct {
			TS  int64  `json:"ts"`
			I   int64  `json:"i"`
			Pad string `json:"pad"`
		}
		if err := json.Unmarshal(v, &doc); err != nil || doc.TS != ts.UnixMicro() || doc.I != 123456 {
			t.Fatalf("size %d: %s: %+v %v", size, v, doc, err)
		}
		got, ok := payloadTime(v)
		if !ok || !got.Equal(ts) {
			t.Fatalf("payloadTime = %v %v", got, ok)
		}
	}
	if _, ok := payloadTime([]byte(`{"x":1}`)); ok {
		t.Fatal("foreign value parsed")
	}
}

func TestParseProc(t *testing.T) {
	// Field 2 with spaces and parentheses; utime 250 and stime 50 ticks.
	stat := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 123 0 0"
	if d, err := parseStatCPU([]byte(stat)); err != nil || d != 3*time.Second {
		t.Fatalf("CPU %v %v", d, err)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
	status := "Name:\tconnectd\nVmPeak:\t  900 kB\nVmHWM:\t  131072 kB\nVmRSS:\t 100 kB\n"
	if n, err := parseVmHWM(strings.NewReader(status)); err != nil || n != 128<<20 {
		t.Fatalf("VmHWM %v %v", n, err)
	}
	if _, err := parseVmHWM(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("missing VmHWM accepted")
	}
}

func TestSumMetric(t *testing.T) {
	text := `# HELP connectd_batches_aborted_total Batches that did not commit.
# TYPE connectd_batches_aborted_total counter
connectd_batches_aborted_total{connector="bench",reason="abortable"} 2
connectd_batches_aborted_total{connector="bench",reason="fenced"} 1
connectd_batches_committed_total{connector="bench"} 68
connectd_batches_committed_total_extra 5
connectd_commit_duration_seconds_sum{connector="bench"} 1.5
`
	for name, want := range map[string]float64{
		"connectd_batches_aborted_total":       3,
		"connectd_batches_committed_total":     68,
		"connectd_commit_duration_seconds_sum": 1.5,
	} {
		if got, ok := sumMetric(text, name); !ok || got != want {
			t.Errorf("%s = %v %v, want %v", name, got, ok, want)
		}
	}
	if _, ok := sumMetric(text, "connectd_missing_total"); ok {
		t.Error("missing metric found")
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/connectd/connectd/transform
BenchmarkChain-2                	   17322	     63207 ns/op	   3.01 MB/s	   13338 B/op	     259 allocs/op
BenchmarkChainIdentity-2        	163660464	         7.041 ns/op	       0 B/op	       0 allocs/op
PASS
pkg: github.com/connectd/connectd/pipeline
BenchmarkProcessIdentity-2   	   10000	    173925 ns/op	        32.19 B/record	         1.001 allocs/record	       173.9 ns/record	   32192 B/op	    1001 allocs/op
BenchmarkDerive/json-2  257440  8391 ns/op  1568 B/op  32 allocs/op
`
	got := ParseBench(out)
	want := []MicroResult{
		{"github.com/connectd/connectd/transform", "BenchmarkChain", 63207, 13338, 259},
		{"github.com/connectd/connectd/transform", "BenchmarkChainIdentity", 7.041, 0, 0},
		{"github.com/connectd/connectd/pipeline", "BenchmarkProcessIdentity", 173.9, 32.19, 1.001},
		{"github.com/connectd/connectd/pipeline", "BenchmarkDerive/json", 8391, 1568, 32},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestFrontierLatencies(t *testing.T) {
	t0 := time.Unix(1000, 0)
	recs := map[int32][]produced{
		0: {{0, 10, t0}, {0, 11, t0.Add(ms2(10))}, {0, 12, t0.Add(ms2(20))}},
		1: {{1, 5, t0}},
	}
	polls := []snapshot{
		{at: t0.Add(ms2(50)), frontier: map[int32]int64{0: 11}},        // offset 10 visible
		{at: t0.Add(ms2(100)), frontier: map[int32]int64{0: 12, 1: 6}}, // 11 and p1/5
	}
	lat, unseen := frontierLatencies(recs, polls)
	slicesSort(lat)
	if unseen != 1 || !reflect.DeepEqual(lat, []time.Duration{ms2(50), ms2(90), ms2(100)}) {
		t.Fatalf("latencies %v, unseen %d", lat, unseen)
	}
}

func slicesSort(d []time.Duration) { Summarize(d) }

func TestMatrices(t *testing.T) {
	def := DefaultMatrix()
	names := map[string]bool{}
	for _, s := range def {
		if names[s.Name()] {
			t.Fatalf("duplicate scenario %s", s.Name())
		}
		names[s.Name()] = true
	}
	for _, want := range []string{
		"connectd kafka EO 100ms 100B 12p", "connectd kafka ALO 100ms 100B 12p", "bare kafka ALO 100ms 100B 12p",
		"streams kafka EO 100ms 100B 12p", "streams kafka EO 100ms 100B 12p defaults", "tmc kafka EO 100ms 100B 12p",
		"connectd postgres EO 100ms 100B 12p", "bare postgres ALO 100ms 100B 12p", "bare-copy postgres ALO 100ms 100B 12p",
		"connectd twophase EO 100ms 100B 12p", "connectd twophase ALO 100ms 100B 12p",
		"connectd redis EO 100ms 100B 12p", "bare redis ALO 100ms 100B 12p",
		"connectd redis EO 100ms 1KB 12p", "connectd redis ALO 100ms 1KB 12p",
		"connectd kafka EO 10ms 100B 12p", "connectd kafka ALO 1s 100B 12p",
		"connectd kafka EO 100ms 100B 12p hdr", "connectd kafka ALO 100ms 100B 12p hdr", "bare kafka ALO 100ms 100B 12p hdr",
	} {
		if !names[want] {
			t.Errorf("default matrix lacks %q", want)
		}
	}
	if len(def) != 24 {
		t.Errorf("default matrix has %d scenarios, want 24", len(def))
	}
	// 3 sinks × 3 intervals × 2 sizes × 2 partition counts, each with
	// connectd ×2 and bare; Kafka also with its three peer rows,
	// PostgreSQL with its second bare row (COPY).
	if n := len(FullMatrix()); n != 36*3+12*3+12 {
		t.Errorf("full matrix has %d scenarios", n)
	}
	var scale []string
	for _, s := range ScaleOutMatrix() {
		scale = append(scale, s.Name())
	}
	if want := []string{"connectd kafka EO 100ms 100B 12p 1t", "connectd kafka EO 100ms 100B 12p x2 1t",
		"connectd kafka EO 100ms 100B 12p x3 1t", "connectd kafka EO 100ms 100B 12p 2t", "connectd kafka EO 100ms 100B 12p 3t"}; !reflect.DeepEqual(scale, want) {
		t.Errorf("scale-out matrix %q, want %q", scale, want)
	}
	if got := (Input{RecordSize: 1024, Partitions: 1}).Topic(1000000); got != "bench-in-1kb-1p-1000000" {
		t.Errorf("input topic %q", got)
	}
}

func TestMainRefusesNegativeWarmup(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"-warmup", "-1"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-warmup >= 0") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestRunLabel(t *testing.T) {
	if got := (Run{Round: 1}).label(); got != "r2" {
		t.Errorf("measured round 2 is labelled %q", got)
	}
	if got := (Run{Round: 0, Warmup: true}).label(); got != "w1" {
		t.Errorf("warm-up round 1 is labelled %q", got)
	}
}

func TestInterleave(t *testing.T) {
	a := Scenario{System: Connectd, Sink: SinkKafka}
	b := Scenario{System: Bare, Sink: SinkKafka}
	c := Scenario{System: Streams, Sink: SinkKafka}
	var got []string
	for _, r := range Interleave([]Scenario{a, b, c}, 3) {
		got = append(got, string(r.Scenario.System)+string(rune('0'+r.Round)))
	}
	want := []string{"connectd0", "bare0", "streams0", "streams1", "bare1", "connectd1", "connectd2", "bare2", "streams2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v", got)
	}
}

// TestConfigsValidate checks that every config the harness generates is
// one connectd accepts.
func TestConfigsValidate(t *testing.T) {
	for _, sink := range []Sink{SinkKafka, SinkPostgres, SinkRedis, SinkTwoPhase} {
		for _, g := range []string{AtLeastOnce, ExactlyOnce} {
			for _, crash := range []bool{false, true} {
				c := connectdConfig{
					Scenario:    Scenario{System: Connectd, Sink: sink, Guarantee: g, CommitInterval: 10 * time.Millisecond, RecordSize: 100, Partitions: 12},
					AdminListen: "127.0.0.1:18083", Brokers: []string{"127.0.0.1:9192"},
					InputTopics: []string{"bench-in", "bench-live"}, Group: "bench-g", OutputTopic: "bench-out",
					PGDSN: "postgres://u:p@127.0.0.1:5432/connectd_bench?sslmode=disable", Table: "public.bench_t",
					RedisAddr: "127.0.0.1:6379", KeyPrefix: "bench:x:", Crash: crash,
				}
				text := c.render()
				cfg, err := config.Parse("gen.yaml", []byte(text))
				if err != nil {
					t.Fatalf("%s %s crash=%v:\n%s\n%v", sink, g, crash, text, err)
				}
				if _, err := pipeline.Decode(cfg.Connectors[0]); err != nil {
					t.Fatalf("%s %s crash=%v:\n%s\n%v", sink, g, crash, text, err)
				}
			}
		}
	}
}

// TestScaleOutConfig: the processes of a scale-out run share the group and
// differ in instance_id (static membership, transactional IDs), and the
// scenario's tasks override the harness's.
func TestScaleOutConfig(t *testing.T) {
	s := ScaleOutMatrix()[4] // one process, 3 tasks
	for i, id := range []string{"", "bench-1"} {
		c := connectdConfig{Scenario: s, InstanceID: id, AdminListen: "127.0.0.1:18083", Brokers: []string{"127.0.0.1:9192"},
			InputTopics: []string{"bench-in"}, Group: "bench-g", OutputTopic: "bench-out", Tasks: s.Tasks}
		cfg, err := config.Parse("gen.yaml", []byte(c.render()))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"bench", "bench-1"}[i]; cfg.InstanceID != want || cfg.Connectors[0].Tasks != 3 {
			t.Errorf("instance_id %q tasks %d, want %q and 3", cfg.InstanceID, cfg.Connectors[0].Tasks, want)
		}
	}
}

// TestTwoPhaseConfig checks that the two-phase scenario is a fan-out of
// exactly the Kafka and PostgreSQL sinks the single-sink scenarios write
// (so the target compares the commit protocol, not the sinks' settings),
// committed by two-phase commit when exactly_once only.
func TestTwoPhaseConfig(t *testing.T) {
	decode := func(sink Sink, g string) *pipeline.Spec {
		t.Helper()
		c := connectdConfig{
			Scenario:    Scenario{System: Connectd, Sink: sink, Guarantee: g, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12},
			AdminListen: "127.0.0.1:18083", Brokers: []string{"127.0.0.1:9192"},
			InputTopics: []string{"bench-in"}, Group: "bench-g", OutputTopic: "bench-out-x-1234-1",
			PGDSN: "postgres://u:p@127.0.0.1:5432/connectd_bench?sslmode=disable", Table: "public.bench_x_1234_1",
		}
		cfg, err := config.Parse("gen.yaml", []byte(c.render()))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := pipeline.Decode(cfg.Connectors[0])
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	for _, g := range []string{ExactlyOnce, AtLeastOnce} {
		two := decode(SinkTwoPhase, g)
		if len(two.Sinks) != 2 || two.Sinks[0].Name != "kafka" || two.Sinks[1].Name != "postgres" {
			t.Fatalf("%s: fan-out %+v, want a kafka and a postgres sink", g, two.Sinks)
		}
		if k := decode(SinkKafka, g); !reflect.DeepEqual(*two.Sinks[0].Config.(*sinkkafka.Config), k.KafkaSink) {
			t.Errorf("%s: Kafka leg %+v, the Kafka scenario's sink %+v", g, two.Sinks[0].Config, k.KafkaSink)
		}
		if p := decode(SinkPostgres, g); !reflect.DeepEqual(two.Sinks[1].Config, p.Sinks[0].Config) {
			t.Errorf("%s: PostgreSQL leg %+v, the PostgreSQL scenario's sink %+v", g, two.Sinks[1].Config, p.Sinks[0].Config)
		}
		if pg := two.Sink(1); pg.TwoPhase != (g == ExactlyOnce) {
			t.Errorf("%s: PostgreSQL leg TwoPhase = %v", g, pg.TwoPhase)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://connectd:connectd@127.0.0.1:5432/postgres?sslmode=disable", "connectd_bench")
	if err != nil || got != "postgres://connectd:connectd@127.0.0.1:5432/connectd_bench?sslmode=disable" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := withDatabase("host=x dbname=y", "z"); err == nil {
		t.Fatal("keyword DSN accepted")
	}
}

// fakeResults is one run of the default scenarios with made-up figures:
// connectd EO at 85% of ALO, so the first target is missed.
func fakeResults() []Result {
	var out []Result
	rates := map[System]float64{Connectd: 100000, Bare: 110000, BareCopy: 110000, Streams: 20000, TMC: 8000}
	for _, s := range DefaultMatrix() {
		rate := rates[s.System]
		if s.System == Connectd && s.Guarantee == ExactlyOnce {
			rate *= 0.85
		}
		for round := range 2 {
			r := Result{Run: Run{Scenario: s, Round: round}, Records: 200000, Expected: 200000, Output: 200000,
				RecordsPerSec: rate * (1 + 0.02*float64(round)), MBPerSec: rate * 100 / 1e6, Drain: 2 * time.Second,
				CPUDrain: time.Second, PeakRSS: 90 << 20, Commits: math.NaN(), Aborts: math.NaN(), CommitShare: math.NaN()}
			if s.System == Connectd {
				r.Commits, r.Aborts, r.CommitShare = 40, 0, 0.3
			}
			if round == 0 && s.System != TMC {
				r.Latency = &LatencySummary{N: 50000, P50: ms2(80), P99: ms2(140), P999: ms2(160)}
			}
			out = append(out, r)
		}
	}
	return out
}

func TestTargetsAndReport(t *testing.T) {
	aggs := AggregateResults(fakeResults())
	if len(aggs) != len(DefaultMatrix()) {
		t.Fatalf("%d aggregates", len(aggs))
	}
	a := find(aggs, Scenario{System: Connectd, Sink: SinkKafka, Guarantee: AtLeastOnce, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12})
	if a == nil || a.Rate != 101000 || a.RateLo != 100000 || a.RateHi != 102000 || a.Latency == nil || a.CommitShare != 0.3 {
		t.Fatalf("aggregate %+v", a)
	}
	micro := []MicroResult{{Name: "BenchmarkChainIdentity", AllocsPerOp: 0}}
	targets := Targets(fakeResults(), aggs, micro)
	status := map[string]string{}
	for _, tg := range targets {
		status[tg.Name] = verdict(tg)
	}
	want := map[string]string{
		"Kafka→Kafka exactly_once / bare franz-go copy loop, every round":        "**missed**", // 0.77
		"Kafka→Kafka exactly_once / bare franz-go copy loop, median":             "**missed**",
		"Kafka→Kafka exactly_once / connectd at_least_once":                      "**missed**", // 0.85
		"Kafka→Kafka exactly_once / Kafka Streams exactly_once_v2 (tuned)":       "met",
		"Kafka→Kafka exactly_once CPU per record / bare loop's":                  "**missed**", // 1.29
		"Kafka→Kafka exactly_once p99 end-to-end latency (10ms)":                 "**missed**", // 140 ms
		"Kafka→PostgreSQL exactly_once / at_least_once":                          "met",        // 0.85
		"Kafka→PostgreSQL exactly_once / bare pgx unnest upsert":                 "**missed**", // 0.77
		"Kafka→PostgreSQL exactly_once / bare pgx COPY + INSERT … SELECT upsert": "**missed**", // 0.77
		"two-phase Kafka+PostgreSQL / Kafka→PostgreSQL exactly_once":             "met",        // 1.0
		"Kafka→Redis exactly_once / bare pipelined SET":                          "**missed**", // 0.77
		"Kafka→Redis at_least_once / exactly_once, 1 KB":                         "met",
		"identity transform chain: allocations per record":                       "met",
		"connectd peak RSS (largest over all connectd runs)":                     "met",
	}
	if !reflect.DeepEqual(status, want) {
		t.Fatalf("targets:\n%v\nwant\n%v", status, want)
	}
	if m := targets[2].MissedBy(); math.Abs(m-(1-0.85/0.95)) > 1e-9 {
		t.Fatalf("missed by %v", m)
	}
	if cpu := targets[4]; math.Abs(cpu.Worst()-110.0/85) > 1e-9 {
		t.Fatalf("CPU per record ratio %v, want %v", cpu.Worst(), 110.0/85)
	}
	if targets := Targets(nil, nil, nil); targets[0].Known || verdict(targets[0]) != "—" {
		t.Fatal("a target without runs is not 'not measured'")
	}

	rep := &Report{
		Date: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), CmdLine: "go run ./bench/cmd/connectd-bench",
		Machine: Machine{NProc: 2, CPU: "AMD EPYC"}, Versions: Versions{Commit: "abc123"},
		Options: Options{Records: 200000, Rounds: 2, WarmupRounds: 1, CrashEvery: 4 * time.Second, Brokers: []string{"a:1", "b:2", "c:3"}, ReplicationFactor: 3},
		Results: fakeResults(), Aggs: aggs, Targets: targets, Micro: micro,
		// A slow warm-up run: reported apart, counted in no aggregate
		// (fromRaw below recomputes them from Results alone).
		Warmup: []Result{{Run: Run{Scenario: a.Scenario, Warmup: true}, Records: 200000, RecordsPerSec: 50500, Load1: 2.5,
			Commits: math.NaN(), Aborts: math.NaN(), CommitShare: math.NaN()}},
		Crashes: []CrashResult{
			{Sink: SinkKafka, Guarantee: AtLeastOnce, Kills: 5, Produced: 100000, Verify: VerifyReport{Expected: 100000, Actual: 100541, Duplicates: 541}},
			{Sink: SinkKafka, Guarantee: ExactlyOnce, Kills: 5, Produced: 100000, Verify: VerifyReport{Expected: 100000, Actual: 100000}},
			{Sink: SinkRedis, Guarantee: ExactlyOnce, Err: "boom\ndetails"},
		},
		Profiles:  map[string]string{"Kafka→Kafka exactly_once / connectd at_least_once": "flat flat% ...\n0.1s runtime.futex"},
		ChartFile: "x.png",
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, want := range []string{
		"# connectd benchmark, 2026-11-25, commit abc123",
		"| Kafka→Kafka exactly_once / connectd at_least_once | ≥ 0.95 | 0.85× | 0.85× | **missed** | 11% | 0.85, 0.85 |",
		"| connectd kafka EO 100ms 100B 12p | 85850 [85000–86700] |",
		"| exactly_once / at_least_once | connectd kafka EO 100ms 100B 12p | 0.85× |",
		"| kafka | at_least_once |  | 5 | 100000 | 541 | 0 | 0 | 0 |",
		"| kafka | exactly_once | 0.85× | 5 | 100000 | 0 | 0 | 0 | 0 |",
		"| redis | exactly_once | 0.85× | 0 | 0 | failed: boom | | | |",
		"0.1s runtime.futex",
		"|  | BenchmarkChainIdentity | 0 | 0 | 0 |",
		"![throughput and p99 by scenario](x.png)",
		"| warm-up | 1 round(s) of every scenario first, not counted (see Warm-up) |",
		"| connectd kafka ALO 100ms 100B 12p | 1 | 2.5 | 50500 | 0.50× |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md.String())
	}
	var sum bytes.Buffer
	rep.SummaryTable(&sum)
	if !strings.Contains(sum.String(), "connectd kafka EO 100ms 100B 12p") || !strings.Contains(sum.String(), "541 duplicates") {
		t.Errorf("summary:\n%s", sum.String())
	}

	// The raw JSON renders the same report again (NaNs survive as null).
	b, err := json.Marshal(rep.raw())
	if err != nil {
		t.Fatal(err)
	}
	var back rawReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again := fromRaw(back)
	again.ChartFile = rep.ChartFile
	var md2 bytes.Buffer
	again.WriteMarkdown(&md2)
	if md2.String() != md.String() {
		t.Errorf("report from JSON differs:\n%s", md2.String())
	}

	var img bytes.Buffer
	if err := DrawChart(&img, "test chart", aggs); err != nil {
		t.Fatal(err)
	}
	decoded, err := png.Decode(&img)
	if err != nil {
		t.Fatal(err)
	}
	if b := decoded.Bounds(); b.Dx() < 800 || b.Dy() < 15*20 {
		t.Fatalf("chart is %v", b)
	}
}

func TestCommandLineQuoting(t *testing.T) {
	got := commandLine([]string{"-records", "1000", "-only", "kafka .* 100ms"}, false)
	if got != "go run ./bench/cmd/connectd-bench -records 1000 -only 'kafka .* 100ms'" {
		t.Fatalf("%s", got)
	}
	if got := commandLine([]string{"-connectd", "bin/connectd"}, true); got != "make bench" {
		t.Fatalf("%s", got)
	}
	if got := commandLine([]string{"-connectd", "bin/connectd", "-full"}, true); got != "make bench BENCH_FLAGS='-full'" {
		t.Fatalf("%s", got)
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 1: 1, 7: 10, 130: 200, 240000: 250000, 0.3: 0.4} {
		if got := niceCeil(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

// Issue 17's rounds: the slow mode's third-speed rounds are flagged, the
// machine's ordinary 10-30% noise is not.
func TestBimodal(t *testing.T) {
	for _, tc := range []struct {
		rates []float64
		want  bool
	}{
		{[]float64{132567, 136111, 381366}, true},
		{[]float64{128727, 383225, 439599, 383678, 385235}, true},
		{[]float64{383225, 439599, 383678, 385235}, false},
		{[]float64{322905, 286000, 321000, 342930}, false},
		{[]float64{381366}, false},
	} {
		if got := Bimodal(tc.rates); got != tc.want {
			t.Errorf("Bimodal(%v) = %v, want %v", tc.rates, got, tc.want)
		}
	}
	agg := aggregate(Scenario{System: Connectd}, []Result{{RecordsPerSec: 130000, Load1: 8.04}, {RecordsPerSec: 380000, Load1: 1.2}, {RecordsPerSec: 390000}})
	if !agg.Bimodal || len(agg.Rates) != 3 {
		t.Fatalf("aggregate: bimodal %v, rates %v", agg.Bimodal, agg.Rates)
	}
	rep := &Report{Aggs: []Aggregate{agg}}
	var md bytes.Buffer
	rep.writeScenarios(func(f string, a ...any) { fmt.Fprintf(&md, f+"\n", a...) })
	if !strings.Contains(md.String(), "**bimodal**") || !strings.Contains(md.String(), "**Bimodal:** connectd") ||
		!strings.Contains(md.String(), "130000 (load 8.0), 380000 (load 1.2), 390000 records/s") {
		t.Fatalf("report does not flag the bimodal scenario:\n%s", md.String())
	}
	rep.Results = []Result{{Run: Run{Round: 0}, Load1: 8.04}, {Run: Run{Round: 1}, Load1: 1.2}, {Run: Run{Round: 0}, Load1: 6.5}, {Run: Run{Round: 1}}}
	md.Reset()
	rep.writeScenarios(func(f string, a ...any) { fmt.Fprintf(&md, f+"\n", a...) })
	if !strings.Contains(md.String(), "round 1 8.0–6.5, round 2 1.2–1.2.") {
		t.Fatalf("report does not give each round's load:\n%s", md.String())
	}
}
