package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/kafkaauth"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/txn"
)

// Options configure a benchmark run.
type Options struct {
	Records   int64      // pre-loaded input records per topic
	Scenarios []Scenario // what to run
	Rounds    int        // repeats of every scenario, interleaved
	// WarmupRounds run every scenario before the measured rounds and
	// are not counted, as benchmark tools commonly do: in the committed
	// five-round runs before it, a scenario's worst round was its first
	// in 36 of 93, not the 19 chance gives (cause not found).
	WarmupRounds int
	// LatencyRounds is how many of the first rounds also run the latency
	// phase (a live producer at LatencyRate for LatencyDuration after the
	// backlog is drained).
	LatencyRounds   int
	LatencyRate     int
	LatencyDuration time.Duration
	// WindowCloseEvery is how often a window closes in a windowed run's
	// latency phase (its event time runs that much faster than the clock).
	WindowCloseEvery time.Duration
	// Crash runs: connectd per sink and guarantee, SIGKILLed every
	// CrashEvery while a producer writes CrashRate records/s for
	// CrashDuration, then `connectd verify`.
	Crash         bool
	CrashRate     int
	CrashDuration time.Duration
	CrashEvery    time.Duration
	// Profile takes a CPU profile of every connectd run of the first round.
	Profile bool
	// Micro runs the hot-path microbenchmarks (go test -bench) too.
	Micro bool
	// Tasks splits connectd's connectors into that many tasks (config key
	// tasks) in the throughput runs; 0 or 1 is the shipped default.
	Tasks int

	Brokers []string
	// Security is how every Kafka client of the run connects: the
	// harness's and connectd's (plaintext when zero).
	Security KafkaSecurity
	// ReplicationFactor of every topic the harness creates (1: the single
	// broker of `make services`; 3 on `make kafka-cluster`, with
	// min.insync.replicas 2).
	ReplicationFactor int
	PGDSN             string
	RedisAddr         string
	Connectd          string // the connectd binary
	// ConnectdArgs are appended to `connectd run -c FILE` (e.g.
	// "--log-level debug" to see franz-go's retries in a slow round).
	ConnectdArgs []string
	Self         string // this harness's binary, for `baseline`
	KafkaLibs    string // Apache Kafka's jars (TransactionalMessageCopier)
	StreamsDir   string // bench/peers/streams-copy
	// StreamsWindowDir is bench/peers/streams-window, run with
	// StreamsWindowEmit (suppress or onclose).
	StreamsWindowDir  string
	StreamsWindowEmit string
	RepoDir           string // for the microbenchmarks and the commit
	WorkDir           string // logs, configs, profiles of this run
	OutDir            string // where the report goes
	Filter            *regexp.Regexp
	CmdLine           string
	Log               io.Writer
}

// Result is one run of one scenario.
type Result struct {
	Run
	Records       int64
	RecordsPerSec float64
	MBPerSec      float64
	Drain         time.Duration // first progress to all records visible
	CPUDrain      time.Duration // CPU of the process under test during Drain
	CPUTotal      time.Duration // its whole life, start-up included
	PeakRSS       int64
	Latency       *LatencySummary
	Commits       float64 // NaN: not reported by this system
	Aborts        float64
	// CommitShare is the fraction of the drain connectd spent committing
	// (connectd_commit_duration_seconds over the drain): its coordinator
	// reads nothing while a commit is in flight, so this is throughput
	// the commit protocol costs, which a CPU profile does not show.
	CommitShare float64
	Output      int64 // records visible in the sink at the end
	Expected    int64
	Profile     string
	Err         string
	// Load1 is the machine's one-minute load average as the run began:
	// on this shared 2-core machine, what says whether a slow round met
	// other work (a lagging figure: it averages the last minute).
	Load1 float64
	// Window holds what a windowed run measures besides (state size, the
	// output check); nil for the others.
	Window *WindowResult `json:",omitempty"`
	// Wall is from the process start to all records visible (streaming
	// drains), or to its exit (bounded runs).
	Wall time.Duration `json:",omitempty"`
	// Bounded holds what a bounded run measures besides; nil for the
	// others.
	Bounded *BoundedResult `json:",omitempty"`
}

// Runner holds the services and inputs of one benchmark run.
type Runner struct {
	o Options
	// conn is what every Kafka client of the harness starts from: the
	// seed brokers and Options.Security's TLS and SASL.
	conn     []kgo.Opt
	kafka    *kafkaEnv
	pg       *pgEnv
	redis    *redisEnv
	streamCP string
	// streamWinCP is the windowed Streams peer's classpath.
	streamWinCP string
	inputs      map[Input]string
	seq         int
	// stores are the open sink checkpoint stores by run ID
	// (checkpointStore), closed by the run's cleanup.
	stores map[string]component.CheckpointStore
}

// NewRunner connects to the services the scenarios need and builds the
// Kafka Streams peer if they include it.
func NewRunner(ctx context.Context, o Options) (*Runner, error) {
	r := &Runner{o: o, inputs: map[Input]string{}}
	var err error
	sec, err := o.Security.clientOpts()
	if err != nil {
		return nil, err
	}
	if o.Security.On() {
		// franz-go retries a refused login or handshake like a broken
		// connection; Check says which setting the broker refused, at once.
		if err := kafkaauth.Check(ctx, o.Brokers, sec, config.Kafka{TLS: o.Security.TLS, SASL: o.Security.SASL}); err != nil {
			return nil, fmt.Errorf("Kafka at %v (%s): %w", o.Brokers, o.Security, err)
		}
	}
	r.conn = append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, sec...)
	if r.kafka, err = newKafkaEnv(r.conn); err != nil {
		return nil, err
	}
	r.kafka.rf = int16(o.ReplicationFactor)
	if _, err := r.kafka.adm.ListBrokers(ctx); err != nil {
		return nil, fmt.Errorf("Kafka at %v (%s): %w (start it with `make services`)", o.Brokers, o.Security, err)
	}
	needs := map[Sink]bool{}
	streams, streamsWin := false, false
	for _, s := range o.Scenarios {
		needs[s.Sink] = true
		streams = streams || (s.System == Streams && !s.Windowed)
		streamsWin = streamsWin || (s.System == Streams && s.Windowed)
	}
	if o.Crash {
		needs[SinkPostgres], needs[SinkRedis] = true, true
	}
	if needs[SinkPostgres] || needs[SinkTwoPhase] {
		if r.pg, err = newPGEnv(ctx, o.PGDSN); err != nil {
			return nil, err
		}
	}
	if needs[SinkRedis] {
		if r.redis, err = newRedisEnv(ctx, o.RedisAddr); err != nil {
			return nil, err
		}
	}
	if streams {
		r.logf("building the Kafka Streams peer with Maven (%s)", o.StreamsDir)
		if r.streamCP, err = buildStreamsPeer(ctx, o.StreamsDir, filepath.Join(o.WorkDir, "mvn-streams.log")); err != nil {
			return nil, err
		}
	}
	if streamsWin {
		r.logf("building the windowed Kafka Streams peer with Maven (%s)", o.StreamsWindowDir)
		if r.streamWinCP, err = buildStreamsPeer(ctx, o.StreamsWindowDir, filepath.Join(o.WorkDir, "mvn-streams-window.log")); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Close deletes the input topics and closes the clients.
func (r *Runner) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, t := range r.inputs {
		_ = r.kafka.deleteTopics(ctx, t)
	}
	r.kafka.Close()
	if r.pg != nil {
		r.pg.Close()
	}
	if r.redis != nil {
		r.redis.Close()
	}
}

func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Preload creates and fills the input topic of every Input the scenarios
// use, once: all runs of a scenario, and all scenarios with the same record
// size and partitions, read the same records (each with its own group).
func (r *Runner) Preload(ctx context.Context) error {
	for _, s := range r.o.Scenarios {
		in := s.Input()
		if _, ok := r.inputs[in]; ok || s.Windowed {
			continue
		}
		// The harness's process ID in the name, as in every per-run
		// name (names): two harnesses on one broker each delete and
		// recreate their inputs, and with a shared name one's pre-load
		// or Close removed the topic under the other's runs (Kafka
		// Streams: "Missing source topics", connectd and the bare loop:
		// nothing to fetch, UNKNOWN_TOPIC_OR_PARTITION commits).
		topic := fmt.Sprintf("%s-%d", in.Topic(r.o.Records), os.Getpid()%10000)
		start := time.Now()
		if err := r.kafka.createTopic(ctx, topic, in.Partitions); err != nil {
			return err
		}
		r.inputs[in] = topic
		if err := r.kafka.preload(ctx, topic, r.o.Records, in); err != nil {
			return fmt.Errorf("pre-loading %s: %w", topic, err)
		}
		r.logf("pre-loaded %s: %d records of %s in %s", topic, r.o.Records, fmtSize(in.RecordSize), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// names are the per-run resources: every run has its own group, output and
// live topic, so runs never see each other's state.
type names struct {
	id, group, live, out, table, prefix string
	in                                  string // a windowed run's own input topic
}

func (r *Runner) names(label string) names {
	r.seq++
	id := fmt.Sprintf("%s-%d-%d", label, os.Getpid()%10000, r.seq)
	return names{
		id:     id,
		group:  "bench-" + id,
		live:   "bench-live-" + id,
		out:    "bench-out-" + id,
		table:  "bench_" + strings.NewReplacer("-", "_", ".", "_").Replace(id),
		prefix: "bench:" + id + ":",
		in:     "bench-in-" + id,
	}
}

// frontier returns, for topic, the next offset per partition whose record
// is visible in the sink: the sink's own checkpoint where connectd keeps it
// there (exactly_once into PostgreSQL or Redis), the group's committed
// offsets otherwise (Kafka transactions commit them with the output; the
// at-least-once loops commit them right after the write), for the
// two-phase fan-out confirmed in PostgreSQL too (twoPhaseFrontier).
func (r *Runner) frontier(s Scenario, n names) func(ctx context.Context, topic string) (map[int32]int64, error) {
	if s.System == Connectd && s.Guarantee == ExactlyOnce {
		switch s.Sink {
		case SinkTwoPhase:
			return r.twoPhaseFrontier(n.group)
		case SinkPostgres, SinkRedis:
			return r.sinkFrontier(n)
		}
	}
	return func(ctx context.Context, topic string) (map[int32]int64, error) {
		return r.kafka.groupFrontier(ctx, n.group, topic)
	}
}

// sinkFrontier reads the exactly_once sink's checkpoint, committed with
// the rows (one transaction, one script): exactly what is visible. It is
// read through the sink's registered checkpoint store (package component),
// opened from the very config the run's connectd reads, so the bench
// names no table or key of the sink's; the store stays open until the
// run's cleanup.
func (r *Runner) sinkFrontier(n names) func(ctx context.Context, topic string) (map[int32]int64, error) {
	return func(ctx context.Context, topic string) (map[int32]int64, error) {
		store, err := r.checkpointStore(ctx, n)
		if err != nil {
			return nil, err
		}
		cp, err := store.Checkpoints(ctx, n.group)
		if err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		for tp, next := range cp {
			if tp.Topic == topic && next >= 0 {
				out[tp.Partition] = next
			}
		}
		return out, nil
	}
}

// checkpointStore opens (once per run) the checkpoint store of the sink in
// the run's config file.
func (r *Runner) checkpointStore(ctx context.Context, n names) (component.CheckpointStore, error) {
	if st, ok := r.stores[n.id]; ok {
		return st, nil
	}
	path := filepath.Join(r.o.WorkDir, n.id+".yaml")
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	spec, err := pipeline.Decode(cfg.Connectors[0])
	if err != nil {
		return nil, err
	}
	sink := spec.Sinks[0]
	if sink.Checkpoints == nil {
		return nil, fmt.Errorf("%s: a %s sink keeps no checkpoint", path, sink.Name)
	}
	st, err := sink.Checkpoints(ctx, sink.Config, component.SinkEnv{Connector: spec.Conf.Name, DLQTopic: spec.DLQTopic()})
	if err != nil {
		return nil, err
	}
	if r.stores == nil {
		r.stores = map[string]component.CheckpointStore{}
	}
	r.stores[n.id] = st
	return st, nil
}

// twoPhaseFrontier is the exactly_once fan-out's frontier: records
// visible in both its legs. The group's offsets commit in the Kafka
// transaction with the output topic's records and the decision record
// (the commit point), so they are the Kafka leg's frontier. The PostgreSQL
// leg keeps no checkpoint: its rows were prepared before that commit and
// become visible at COMMIT PREPARED right after it. So offsets read before
// a moment when no prepared transaction of the connector is left are
// visible in PostgreSQL too (every batch they cover had been committed
// there); while one is left, the last frontier so confirmed is returned.
// Drained therefore means: the Kafka checkpoint covers the input and
// PostgreSQL holds no batch in doubt.
func (r *Runner) twoPhaseFrontier(group string) func(ctx context.Context, topic string) (map[int32]int64, error) {
	confirmed := map[string]map[int32]int64{}
	prefix := txn.GIDPrefix(connectorName)
	return func(ctx context.Context, topic string) (map[int32]int64, error) {
		f, err := r.kafka.groupFrontier(ctx, group, topic)
		if err != nil {
			return nil, err
		}
		open, err := r.pg.inDoubt(ctx, prefix)
		if err != nil {
			return nil, err
		}
		if open == 0 {
			confirmed[topic] = f
		}
		return maps.Clone(confirmed[topic]), nil
	}
}

func sum(m map[int32]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

// RunAll runs every scenario Rounds times, interleaved, and returns the
// results in run order. A failed run is reported in its Result and the
// others go on.
func (r *Runner) RunAll(ctx context.Context) []Result {
	return r.runAll(ctx, Interleave(r.o.Scenarios, r.o.Rounds))
}

// RunWarmup runs the WarmupRounds, interleaved as the measured rounds
// are, without latency phases or profiles, and returns their results.
func (r *Runner) RunWarmup(ctx context.Context) []Result {
	runs := Interleave(r.o.Scenarios, r.o.WarmupRounds)
	for i := range runs {
		runs[i].Warmup = true
	}
	return r.runAll(ctx, runs)
}

func (r *Runner) runAll(ctx context.Context, runs []Run) []Result {
	var out []Result
	for i, run := range runs {
		if ctx.Err() != nil {
			break
		}
		withLatency := !run.Warmup && run.Round < r.o.LatencyRounds && run.Scenario.System != TMC
		profile := !run.Warmup && r.o.Profile && run.Round == 0 && run.Scenario.System == Connectd
		load := Load1()
		var res Result
		switch {
		case run.Scenario.Bounded:
			res = r.runBounded(ctx, run, profile)
		case run.Scenario.Windowed:
			res = r.runWindowed(ctx, run, withLatency, profile)
		default:
			res = r.runOne(ctx, run, withLatency, profile)
		}
		res.Load1 = load
		kind := "round"
		if run.Warmup {
			kind = "warm-up round"
		}
		r.logf("[%d/%d] %s %s %d (load %.1f): %s", i+1, len(runs), run.Scenario.Name(), kind, run.Round+1, load, res.summary())
		out = append(out, res)
	}
	return out
}

func (res Result) summary() string {
	if res.Err != "" {
		return "FAILED: " + res.Err
	}
	s := fmt.Sprintf("%.0f records/s (%.1f MB/s), CPU %.1fs, RSS %s", res.RecordsPerSec, res.MBPerSec, res.CPUDrain.Seconds(), fmtMiB(res.PeakRSS))
	if res.Latency != nil {
		s += fmt.Sprintf(", p50 %s p99 %s p999 %s", fmtMs(res.Latency.P50), fmtMs(res.Latency.P99), fmtMs(res.Latency.P999))
	}
	if !math.IsNaN(res.Commits) {
		s += fmt.Sprintf(", %v commits, %v aborts", res.Commits, res.Aborts)
	}
	if b := res.Bounded; b != nil {
		s += fmt.Sprintf(", wall %.2fs (start-up %.2fs, steady %.0f records/s, tail %.2fs)", b.Wall.Seconds(), b.Startup.Seconds(), b.SteadyRate, b.Tail.Seconds())
	} else if res.Wall > 0 {
		s += fmt.Sprintf(", start→drained %.2fs", res.Wall.Seconds())
	}
	if res.Output < res.Expected {
		s += fmt.Sprintf(", OUTPUT INCOMPLETE %d/%d", res.Output, res.Expected)
	}
	return s
}

// runOne starts the system under test on a fresh group and sink, measures
// the backlog drain, optionally the latency phase, and cleans up.
func (r *Runner) runOne(ctx context.Context, run Run, withLatency, profile bool) (res Result) {
	s := run.Scenario
	res = Result{Run: run, Records: r.o.Records, Expected: r.o.Records, Commits: math.NaN(), Aborts: math.NaN(), CommitShare: math.NaN()}
	fail := func(err error) Result { res.Err = err.Error(); return res }
	n := r.names(s.slug() + "-" + run.label())
	in := r.inputs[s.Input()]
	defer r.cleanup(s, n)

	if err := r.kafka.createTopic(ctx, n.live, s.Partitions); err != nil {
		return fail(err)
	}
	switch s.Sink {
	case SinkKafka, SinkTwoPhase: // the two-phase fan-out's Kafka leg; connectd creates its table
		if err := r.kafka.createTopic(ctx, n.out, s.Partitions); err != nil {
			return fail(err)
		}
	case SinkPostgres:
		if s.System == Bare || s.System == BareCopy {
			if err := r.pg.createUpsertTable(ctx, n.table); err != nil {
				return fail(err)
			}
		}
	}

	var admin string
	if profile {
		res.Profile = filepath.Join(r.o.WorkDir, n.id+".cpu.pprof")
	}
	c, err := r.start(ctx, s, n, in+","+n.live, &admin, res.Profile)
	if err != nil {
		return fail(err)
	}
	defer c.kill() // a no-op after a clean stop

	front := r.frontier(s, n)
	samples, err := r.drain(ctx, s, c, front, in, nil)
	if err != nil {
		return fail(err)
	}
	if s.System == Connectd {
		// Commit time and counts so far: all of it falls in the drain
		// but the first commit, which made the first progress visible.
		// Read now, not after the latency phase, whose hundred-odd
		// commits of a few records each would double the drain's count.
		if text, err := scrape("http://" + admin + "/metrics"); err == nil {
			// Kept for the evidence behind a slow round: franz-go's
			// request latencies by request kind, commit durations.
			_ = os.WriteFile(filepath.Join(r.o.WorkDir, n.id+".drain.metrics"), []byte(text), 0o644)
		}
		// Summed over the processes; the commit share is per process.
		if v, ok := c.metric("connectd_commit_duration_seconds_sum"); ok {
			res.CommitShare = v / float64(len(c.all()))
		}
		if v, ok := c.metric("connectd_batches_committed_total"); ok {
			res.Commits = v
		}
		if v, ok := c.metric("connectd_batches_aborted_total"); ok {
			res.Aborts = v
		}
	}
	rate, elapsed, ok := DrainRate(samples, r.o.Records)
	if !ok {
		return fail(errors.New("drain too fast to measure: progress seen only once; use more -records"))
	}
	res.RecordsPerSec, res.Drain = rate, elapsed
	res.Wall = samples[len(samples)-1].At.Sub(c.started)
	res.MBPerSec = rate * float64(s.RecordSize) / 1e6
	res.CPUDrain = CPUBetween(samples, r.o.Records)
	if !math.IsNaN(res.CommitShare) {
		res.CommitShare = min(res.CommitShare/elapsed.Seconds(), 1)
	}

	if withLatency {
		lat, expected, err := r.latencyPhase(ctx, s, n, front)
		if err != nil {
			return fail(fmt.Errorf("latency phase: %w", err))
		}
		res.Latency = lat
		res.Expected += expected
	}

	if s.System == Connectd && withLatency {
		// The metrics at the end of the latency phase, beside the
		// drain's: their difference is the phase's commit durations and
		// request latencies, the evidence behind a p99.
		if text, err := scrape("http://" + admin + "/metrics"); err == nil {
			_ = os.WriteFile(filepath.Join(r.o.WorkDir, n.id+".latency.metrics"), []byte(text), 0o644)
		}
		// Aborts count over the whole run: one in the latency phase
		// matters as much as one in the drain.
		if v, ok := c.metric("connectd_batches_aborted_total"); ok {
			res.Aborts = v
		}
	}
	res.Output, err = r.countOutput(ctx, s, n, res.Expected)
	if err != nil {
		return fail(fmt.Errorf("counting the output: %w", err))
	}
	c.sampleRSS()
	c.stop(30 * time.Second)
	res.CPUTotal = c.cpu()
	res.PeakRSS = c.peakRSS()
	return res
}

// start launches the system under test reading topics (comma-separated).
func (r *Runner) start(ctx context.Context, s Scenario, n names, topics string, admin *string, profile string) (*child, error) {
	logPath := filepath.Join(r.o.WorkDir, n.id+".log")
	switch s.System {
	case Connectd:
		// One process, or Scenario.Processes of them sharing the group
		// (instance IDs bench-0, bench-1...), each with its own admin
		// port; *admin is the first's.
		var first *child
		for i := range max(s.Processes, 1) {
			c, addr, err := r.startConnectd(ctx, s, n, topics, i, logPath, profile)
			if err != nil {
				if first != nil {
					first.kill()
				}
				return nil, err
			}
			if first == nil {
				first, *admin = c, addr
				profile = "" // the first process's only
				continue
			}
			first.members = append(first.members, c)
		}
		return first, nil
	case Bare, BareCopy:
		bc := r.baselineConfig(s, n, topics)
		return startChild(string(s.System)+" "+string(s.Sink), logPath, nil, append([]string{r.o.Self, "baseline"}, bc.args()...)...)
	case TMC:
		in, _, _ := strings.Cut(topics, ",") // it reads one topic; it has no latency phase
		return startChild("TransactionalMessageCopier", logPath, nil,
			tmcArgv(r.o.KafkaLibs, r.o.Brokers, in, n.out, n.group, "bench-tmc-"+n.id, 10000)...)
	case Streams:
		if s.Windowed {
			return startChild("Kafka Streams (windowed)", logPath, nil,
				streamsWindowArgv(r.streamWinCP, r.o.Brokers, topics, n.out, n.group, s.CommitInterval, r.streamsStateDir(n), r.o.StreamsWindowEmit)...)
		}
		return startChild("Kafka Streams", logPath, nil,
			streamsArgv(r.streamCP, r.o.Brokers, topics, n.out, n.group, s.CommitInterval, s.StreamsDefaults)...)
	}
	return nil, fmt.Errorf("unknown system %q", s.System)
}

// startConnectd starts connectd process i of scenario s and waits for its
// admin API; it returns the process and its admin address.
func (r *Runner) startConnectd(ctx context.Context, s Scenario, n names, topics string, i int, logPath, profile string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	admin := "127.0.0.1:" + strconv.Itoa(port)
	cfg := connectdConfig{
		Scenario: s, AdminListen: admin, Brokers: r.o.Brokers, Security: r.o.Security,
		InputTopics: strings.Split(topics, ","), Group: n.group, OutputTopic: n.out,
		Table: "public." + n.table, RedisAddr: r.o.RedisAddr, KeyPrefix: n.prefix,
		Tasks: cmp.Or(s.Tasks, r.o.Tasks), Window: s.Windowed,
	}
	name, path := "connectd", filepath.Join(r.o.WorkDir, n.id+".yaml")
	if s.Processes > 1 {
		cfg.InstanceID = "bench-" + strconv.Itoa(i)
		name += "-" + strconv.Itoa(i)
	}
	if i > 0 {
		path = filepath.Join(r.o.WorkDir, n.id+"."+strconv.Itoa(i)+".yaml")
		logPath = strings.TrimSuffix(logPath, ".log") + "." + strconv.Itoa(i) + ".log"
	}
	if r.pg != nil {
		cfg.PGDSN = r.pg.dsn
	}
	if err := os.WriteFile(path, []byte(cfg.render()), 0o644); err != nil {
		return nil, "", err
	}
	argv := []string{r.o.Connectd, "run", "-c", path}
	if profile != "" {
		// The heap profile at the run's highest heap goes beside the CPU
		// profile, for a look at what peak RSS is made of.
		argv = append(argv, "--cpuprofile", profile, "--memprofile", heapProfilePath(profile))
	}
	argv = append(argv, r.o.ConnectdArgs...)
	c, err := startChild(name, logPath, nil, argv...)
	if err != nil {
		return nil, "", err
	}
	c.admin = admin
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitHTTP(wctx, c, "http://"+admin+"/health"); err != nil {
		c.kill()
		return nil, "", err
	}
	return c, admin, nil
}

// drain polls the frontier of topic every 20 ms until every pre-loaded
// record is visible, sampling the child's RSS and CPU, and returns the
// progress samples. onPoll, if set, runs after every poll (the windowed
// runs scrape connectd's state gauges there).
func (r *Runner) drain(ctx context.Context, s Scenario, c *child, front func(context.Context, string) (map[int32]int64, error), topic string, onPoll func()) ([]Progress, error) {
	timeout := max(3*time.Minute, time.Duration(r.o.Records/1000)*time.Second)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var samples []Progress
	for {
		f, err := front(dctx, topic)
		now := time.Now()
		c.sampleRSS()
		if onPoll != nil {
			onPoll()
		}
		if err == nil {
			samples = append(samples, Progress{At: now, Records: sum(f), CPU: c.cpu()})
			if sum(f) >= r.o.Records {
				return samples, nil
			}
		}
		if c.exited() && s.System != TMC {
			return nil, fmt.Errorf("during the drain, %s", c.exitReport(15))
		}
		if dctx.Err() != nil {
			last := int64(0)
			if len(samples) > 0 {
				last = samples[len(samples)-1].Records
			}
			return nil, fmt.Errorf("drain not complete after %s: %d of %d records visible\n%s", timeout, last, r.o.Records, c.logTail(15))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// latencyWarmUp is produced at the latency rate before the measured part of
// the latency phase and left out of it: the harness's own output consumer
// needs its first fetch, and the system under test its first batches on
// the live topic, before latencies mean anything.
const latencyWarmUp = 2 * time.Second

// latencyPhase produces LatencyRate records/s to the run's live topic for
// latencyWarmUp + LatencyDuration and times each record stamped after the
// warm-up from its stamp to visibility in the sink. It returns the summary
// and how many records it produced in all.
func (r *Runner) latencyPhase(ctx context.Context, s Scenario, n names, front func(context.Context, string) (map[int32]int64, error)) (*LatencySummary, int64, error) {
	since := time.Now().Add(latencyWarmUp)
	var (
		watcher *outputWatcher
		mu      sync.Mutex
		polls   []snapshot
		stop    = make(chan struct{})
		polled  = make(chan struct{})
	)
	const pollEvery = 5 * time.Millisecond
	if s.Sink == SinkKafka {
		from, err := r.kafka.endOffsets(ctx, n.out)
		if err != nil {
			return nil, 0, err
		}
		if watcher, err = watchOutput(r.conn, n.out, from, since); err != nil {
			return nil, 0, err
		}
	} else {
		go func() {
			defer close(polled)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if f, err := front(ctx, n.live); err == nil {
					mu.Lock()
					polls = append(polls, snapshot{at: time.Now(), frontier: f})
					mu.Unlock()
				}
				time.Sleep(pollEvery)
			}
		}()
	}
	lp := r.kafka.produceAt(ctx, n.live, r.o.LatencyRate, latencyWarmUp+r.o.LatencyDuration, s.RecordSize, r.o.Records, s.Input().EventIDHeader)
	acked := int64(len(lp.recs))
	measured := lp.since(since)

	// Wait until everything produced is visible (or give up after 60 s:
	// what is still missing is reported as dropped).
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var seen int64
		want := acked // frontier: every live record, warm-up included
		if watcher != nil {
			seen, want = watcher.count(), int64(len(measured)) // stamped after the warm-up only
		} else {
			mu.Lock()
			if len(polls) > 0 {
				seen = sum(polls[len(polls)-1].frontier)
			}
			mu.Unlock()
		}
		if seen >= want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lat []time.Duration
	var unseen int
	sm := LatencySummary{}
	if watcher != nil {
		lat = watcher.stop()
		unseen = len(measured) - len(lat)
	} else {
		close(stop)
		<-polled
		lat, unseen = frontierLatencies(byPartition(measured), polls)
		sm.PollResolution = pollEvery
	}
	res := Summarize(lat)
	res.PollResolution = sm.PollResolution
	res.Dropped = max(unseen, 0)
	res.MeasuredAtRecordsSec = float64(r.o.LatencyRate)
	if lp.errs > 0 {
		return nil, 0, fmt.Errorf("%d live records not acknowledged by Kafka", lp.errs)
	}
	return &res, acked, nil
}

// countOutput counts what the sink holds at the end of a run.
func (r *Runner) countOutput(ctx context.Context, s Scenario, n names, want int64) (int64, error) {
	switch s.Sink {
	case SinkKafka:
		return countOutput(ctx, r.conn, n.out, want, 5*time.Second)
	case SinkPostgres:
		return r.pg.count(ctx, n.table)
	case SinkRedis:
		return r.redis.countKeys(ctx, n.prefix+"bench-*")
	case SinkTwoPhase: // every record is in both legs: the smaller count
		k, err := countOutput(ctx, r.conn, n.out, want, 5*time.Second)
		if err != nil {
			return 0, err
		}
		p, err := r.pg.count(ctx, n.table)
		return min(k, p), err
	}
	return 0, nil
}

// cleanup deletes a run's topics, group, table and keys.
func (r *Runner) cleanup(s Scenario, n names) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if st, ok := r.stores[n.id]; ok {
		st.Close()
		delete(r.stores, n.id)
	}
	_ = r.kafka.deleteTopics(ctx, n.live, n.out)
	r.kafka.deleteGroup(ctx, n.group)
	switch s.Sink {
	case SinkPostgres:
		r.pg.dropTables(ctx, n.table, n.table+"_dlq")
		r.pg.forgetGroup(ctx, n.group)
	case SinkTwoPhase:
		// connectd is stopped: a batch a failed run left prepared is
		// nobody's now, and its locks would hold up DROP TABLE.
		r.pg.rollbackPrepared(ctx, txn.GIDPrefix(connectorName))
		r.pg.dropTables(ctx, n.table, n.table+"_dlq")
	case SinkRedis:
		r.redis.deletePrefix(ctx, n.prefix)
	}
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func fmtMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + " ms"
}

// heapProfilePath is where connectd's --memprofile goes beside the CPU
// profile at cpuProfile (NAME.cpu.pprof → NAME.heap.pprof).
func heapProfilePath(cpuProfile string) string {
	return strings.TrimSuffix(cpuProfile, ".cpu.pprof") + ".heap.pprof"
}
