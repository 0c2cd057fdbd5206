// Package bench is connectd's benchmark harness (issue 9): it pre-loads
// input topics on the real Kafka of `make services`, runs connectd (the
// built binary, as a child process) per scenario, Kafka → Kafka,
// PostgreSQL and Redis at both guarantees, next to bare baselines and
// Kafka's own exactly-once peers on the same broker and data, and writes
// bench/results/<date>-<commit>.md with the tables, ratios, targets and a
// PNG chart. Absolute figures depend on the machine (and on whoever else
// is using it); the ratios, measured in the same run with interleaved
// repeats, are the result.
package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/connectd/connectd/config"
)

// Main is `connectd-bench`'s entry point; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "baseline" {
		return baselineMain(args[1:], stderr)
	}
	fs := flag.NewFlagSet("connectd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		records      = fs.Int64("records", 200000, "pre-loaded input records per topic")
		full         = fs.Bool("full", false, "issue 9's full size: 1,000,000 records (overrides -records)")
		matrix       = fs.String("matrix", "default", "default (every sink and guarantee at 100ms/100B/12p + the Kafka commit-interval sweep), full (the whole cross product) or window (issue 15: windowed count+sum, connectd vs Kafka Streams), bounded (issue 16: connectd run --until end vs the streaming drain, Kafka and PostgreSQL exactly_once) bounded-sweep (bounded runs at explicit commit.interval/batch.max.records settings) or scaleout (issue 19: Kafka → Kafka exactly_once drained by 1–3 connectd processes and by 1–3 tasks in one)")
		rounds       = fs.Int("rounds", 3, "repeats of every scenario, interleaved; medians are reported")
		warmup       = fs.Int("warmup", 1, "rounds of every scenario run first and not counted (reported apart)")
		latRounds    = fs.Int("latency-rounds", 1, "how many of the first rounds also run the latency phase")
		latRate      = fs.Int("latency-rate", 5000, "records/s produced during the latency phase")
		latDur       = fs.Duration("latency-duration", 10*time.Second, "length of the latency phase")
		closeEvery   = fs.Duration("window-close-every", time.Second, "windowed runs: a 1-minute window closes this often in the latency phase (event time runs faster than the clock)")
		crash        = fs.Bool("crash", true, "run the crash runs (SIGKILL) per sink and guarantee")
		crashRate    = fs.Int("crash-rate", 5000, "records/s produced during a crash run")
		crashDur     = fs.Duration("crash-duration", 20*time.Second, "length of a crash run's production")
		crashEvery   = fs.Duration("crash-every", 4*time.Second, "SIGKILL connectd this often during a crash run")
		profile      = fs.Bool("profile", true, "CPU-profile connectd in round 1 (connectd run --cpuprofile)")
		micro        = fs.Bool("micro", true, "run the go test -bench microbenchmarks too")
		only         = fs.String("only", "", "run only scenarios whose name matches this `regexp`")
		tasks        = fs.Int("tasks", 1, "connectd's tasks per connector in the throughput runs (the shipped default is 1)")
		replication  = fs.Int("replication-factor", 1, "replication factor of the topics the harness creates; above 1, min.insync.replicas is one less (run the three-broker cluster of `make kafka-cluster` with -brokers 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 -replication-factor 3)")
		brokers      = fs.String("brokers", env("KAFKA_BROKERS", "127.0.0.1:9192"), "Kafka bootstrap brokers, comma-separated")
		pgDSN        = fs.String("pg-dsn", env("PG_DSN", "postgres://connectd:connectd@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL DSN (the harness uses database "+benchDatabase+" on that server)")
		redisAddr    = fs.String("redis", env("REDIS_ADDR", "127.0.0.1:6379"), "Redis address")
		connectdBin  = fs.String("connectd", "bin/connectd", "the connectd binary to measure")
		connectdArgs = fs.String("connectd-args", "", "extra arguments of `connectd run`, space-separated (e.g. \"--log-level debug\")")
		kafkaLibs    = fs.String("kafka-libs", defaultKafkaLibs(), "Apache Kafka's jars (TransactionalMessageCopier)")
		streamsDir   = fs.String("streams-dir", "bench/peers/streams-copy", "the Kafka Streams peer's Maven project")
		streamsWin   = fs.String("streams-window-dir", "bench/peers/streams-window", "the windowed Kafka Streams peer's Maven project")
		streamsEmit  = fs.String("streams-window-emit", "suppress", "how the windowed Streams peer emits final results: suppress (suppress(untilWindowCloses)) or onclose (emitStrategy(onWindowClose))")
		outDir       = fs.String("out", "bench/results", "where the report and chart go")
		workDir      = fs.String("work", "", "logs, configs and profiles of this run (default: a new temporary directory)")
		noPeers      = fs.Bool("no-peers", false, "skip Kafka Streams and TransactionalMessageCopier")
		reportSuffix = fs.String("suffix", "", "appended to the report's file name")
		render       = fs.String("render", "", "render the report of a results `FILE.json` again (no runs)")
		kafkaTLS     = fs.String("kafka-tls-dir", "", "reach Kafka over TLS: `DIR` holds ca.pem and, for mutual TLS, client.pem and client-key.pem (test/pki's names); used by the harness's clients and written into connectd's configs as kafka.tls (connectd scenarios only)")
		kafkaSASL    = fs.String("kafka-sasl", "", "authenticate to Kafka as `MECHANISM:USER` (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) with the password of -kafka-sasl-password-file; connectd's configs get kafka.sasl with the password as ${file:...}")
		kafkaPass    = fs.String("kafka-sasl-password-file", "", "the `FILE` holding -kafka-sasl's password (kept out of the command line and the report)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *render != "" {
		rep, err := renderFile(*render)
		if err != nil {
			fmt.Fprintln(stderr, "connectd-bench:", err)
			return 1
		}
		rep.SummaryTable(stdout)
		return 0
	}
	if *full {
		*records = 1000000
	}
	var scs []Scenario
	switch *matrix {
	case "default":
		scs = DefaultMatrix()
	case "full":
		scs = FullMatrix()
	case "window":
		scs = WindowMatrix()
	case "bounded":
		scs = BoundedMatrix()
	case "bounded-sweep":
		scs = BoundedSweepMatrix()
	case "scaleout":
		scs = ScaleOutMatrix()
	default:
		fmt.Fprintf(stderr, "connectd-bench: -matrix %q: want default, full, window, bounded, bounded-sweep or scaleout\n", *matrix)
		return 2
	}
	var filter *regexp.Regexp
	if *only != "" {
		var err error
		if filter, err = regexp.Compile(*only); err != nil {
			fmt.Fprintln(stderr, "connectd-bench: -only:", err)
			return 2
		}
	}
	scs = selectScenarios(scs, filter, *noPeers)
	security, err := parseKafkaSecurity(*kafkaTLS, *kafkaSASL, *kafkaPass)
	if err == nil {
		err = refusePeers(scs, security)
	}
	if err != nil {
		fmt.Fprintln(stderr, "connectd-bench:", err)
		return 2
	}
	if *records < 1000 || *rounds < 1 || *warmup < 0 {
		fmt.Fprintln(stderr, "connectd-bench: want -records >= 1000, -rounds >= 1 and -warmup >= 0")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	repo, _ := os.Getwd()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "connectd-bench:", err)
		return 1
	}
	bin, err := filepath.Abs(*connectdBin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(stderr, "connectd-bench: connectd binary: %v (run `make build`)\n", err)
		return 1
	}
	if *workDir == "" {
		if *workDir, err = os.MkdirTemp("", "connectd-bench-"); err != nil {
			fmt.Fprintln(stderr, "connectd-bench:", err)
			return 1
		}
	}
	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "connectd-bench:", err)
		return 1
	}
	if *streamsEmit != "suppress" && *streamsEmit != "onclose" {
		fmt.Fprintf(stderr, "connectd-bench: -streams-window-emit %q: want suppress or onclose\n", *streamsEmit)
		return 2
	}
	if *tasks < 1 || *tasks > config.MaxTasks {
		fmt.Fprintf(stderr, "connectd-bench: -tasks %d: want 1 to %d\n", *tasks, config.MaxTasks)
		return 2
	}
	o := Options{
		Records: *records, Scenarios: scs, Rounds: *rounds, WarmupRounds: *warmup,
		LatencyRounds: *latRounds, LatencyRate: *latRate, LatencyDuration: *latDur, WindowCloseEvery: *closeEvery,
		Crash: *crash, CrashRate: *crashRate, CrashDuration: *crashDur, CrashEvery: *crashEvery,
		Profile: *profile, Micro: *micro, Tasks: *tasks,
		Brokers: strings.Split(*brokers, ","), Security: security, ReplicationFactor: *replication, PGDSN: *pgDSN, RedisAddr: *redisAddr,
		Connectd: bin, ConnectdArgs: strings.Fields(*connectdArgs), Self: self, KafkaLibs: *kafkaLibs, StreamsDir: abs(*streamsDir),
		StreamsWindowDir: abs(*streamsWin), StreamsWindowEmit: *streamsEmit,
		RepoDir: repo, WorkDir: *workDir, OutDir: *outDir, Filter: filter,
		CmdLine: commandLine(args, os.Getenv("MAKELEVEL") != ""), Log: stdout,
	}
	rep, err := Bench(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "connectd-bench:", err)
		return 1
	}
	path := filepath.Join(*outDir, rep.Date.Format("2006-01-02")+"-"+strings.Fields(rep.Versions.Commit + " x")[0]+*reportSuffix)
	if err := writeReport(rep, path); err != nil {
		fmt.Fprintln(stderr, "connectd-bench:", err)
		return 1
	}
	rep.SummaryTable(stdout)
	fmt.Fprintf(stdout, "\nreport: %s.md  chart: %s.png  raw results: %s.json  logs: %s\n", path, path, path, *workDir)
	return 0
}

// selectScenarios applies -only and -no-peers.
func selectScenarios(scs []Scenario, filter *regexp.Regexp, noPeers bool) []Scenario {
	var out []Scenario
	for _, s := range scs {
		if noPeers && (s.System == Streams || s.System == TMC) {
			continue
		}
		if filter != nil && !filter.MatchString(s.Name()) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Bench runs everything o asks for and returns the report.
func Bench(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Date: time.Now(), CmdLine: o.CmdLine, Machine: ReadMachine(), Options: o, Profiles: map[string]string{}}
	r, err := NewRunner(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	rep.Versions = r.ReadVersions(ctx)
	r.logf("connectd %s, %d scenarios × %d rounds, %d records per input; logs in %s", rep.Versions.Connectd, len(o.Scenarios), o.Rounds, o.Records, o.WorkDir)
	if err := r.Preload(ctx); err != nil {
		return nil, err
	}
	if o.WarmupRounds > 0 {
		rep.Warmup = r.RunWarmup(ctx)
	}
	rep.Results = r.RunAll(ctx)
	rep.Aggs = AggregateResults(rep.Results)
	if o.Crash && ctx.Err() == nil {
		rep.Crashes = r.CrashRuns(ctx)
	}
	if o.Micro && ctx.Err() == nil {
		r.logf("microbenchmarks: go test -bench %s", strings.Join(MicroPackages, " "))
		micro, cmd, err := RunMicro(ctx, o.RepoDir)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("microbenchmarks failed: %v", err))
		}
		rep.Micro, rep.MicroCmd = micro, cmd
	}
	rep.Targets = Targets(rep.Results, rep.Aggs, rep.Micro)
	rep.LoadAtEnd = ReadMachine().Load
	for _, t := range rep.Targets {
		if t.Known && !t.Met() && t.Profile != "" {
			if t.Memory {
				rep.Profiles[t.Name] = pprofTop(ctx, o.Connectd, heapProfilePath(t.Profile), "-sample_index=inuse_space")
			} else {
				rep.Profiles[t.Name] = pprofTop(ctx, o.Connectd, t.Profile)
			}
		}
	}
	if o.Tasks > 1 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("connectd ran every connector as %d tasks (config key tasks; the shipped default is 1)", o.Tasks))
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: the tables hold the runs finished before the interrupt")
	}
	if o.Records < 1000000 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the RSS target is stated for a 1,000,000-record backlog; this run's backlog was %d records (connectd reads at most batch.max.records = %d records per batch plus franz-go's fetch buffers, whatever the backlog; run -full to check)", o.Records, config.DefaultBatchMaxRecords))
	}
	return rep, nil
}

// pprofTop summarizes a profile: the top functions by flat and by
// cumulative value (time for a CPU profile; with -sample_index, the
// in-use bytes of a heap profile).
func pprofTop(ctx context.Context, bin, profile string, flags ...string) string {
	var b strings.Builder
	for _, mode := range [][]string{{"-top"}, {"-top", "-cum"}} {
		args := append(append([]string{"tool", "pprof", "-nodecount=18"}, flags...), mode...)
		out, err := exec.CommandContext(ctx, "go", append(args, bin, profile)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("go tool pprof %s: %v\n%s", profile, err, out)
		}
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("$ go " + strings.Join(args, " ") + " bin/connectd " + filepath.Base(profile) + "\n")
		b.Write(out)
	}
	return b.String()
}

func writeReport(rep *Report, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	png, err := os.Create(path + ".png")
	if err != nil {
		return err
	}
	title := fmt.Sprintf("connectd benchmark %s, commit %s, %d records, %d CPUs", rep.Date.Format("2006-01-02"), rep.Versions.Commit, rep.Options.Records, rep.Machine.NProc)
	if err := DrawChart(png, title, rep.Aggs); err != nil {
		png.Close()
		return err
	}
	if err := png.Close(); err != nil {
		return err
	}
	rep.ChartFile = filepath.Base(path) + ".png"
	raw, err := json.MarshalIndent(rep.raw(), "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".json", raw, 0o644); err != nil {
		return err
	}
	md, err := os.Create(path + ".md")
	if err != nil {
		return err
	}
	rep.WriteMarkdown(md)
	return md.Close()
}

func baselineMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("connectd-bench baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c BaselineConfig
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := RunBaseline(ctx, c); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "baseline:", err)
		return 1
	}
	return 0
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// defaultKafkaLibs is where test/scripts/kafka-jars.sh puts Kafka's jars.
func defaultKafkaLibs() string {
	cache := os.Getenv("CONNECTD_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "connectd")
	}
	return filepath.Join(cache, "kafka-"+env("KAFKA_VERSION", "4.1.1"), "libs")
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// commandLine is how the report says to reproduce the run: as `make bench`
// when make started the harness (with make's own -connectd argument left
// out), else as `go run`.
func commandLine(args []string, viaMake bool) string {
	if viaMake && len(args) >= 2 && args[0] == "-connectd" {
		if len(args) == 2 {
			return "make bench"
		}
		flags := strings.Join(quoteArgs(args[2:]), " ")
		return "make bench BENCH_FLAGS='" + strings.ReplaceAll(flags, "'", `'\''`) + "'"
	}
	return strings.TrimSpace("go run ./bench/cmd/connectd-bench " + strings.Join(quoteArgs(args), " "))
}

func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$*?[]|&;<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return q
}
