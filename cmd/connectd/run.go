package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/bounded"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/gctune"
	"github.com/connectd/connectd/kafkaauth"
	"github.com/connectd/connectd/metrics"
)

// adminShutdownTimeout bounds how long in-flight admin requests may take
// once the connectors have stopped.
const adminShutdownTimeout = 5 * time.Second

// runCmd runs the connectors of a config until SIGINT or SIGTERM (or, with
// --until, until every connector has committed its input up to its stops:
// bounded.go). The first
// signal stops every connector, each committing or aborting its open batch
// within its shutdown_timeout, and exits 0; a second signal while stopping
// exits 1 at once (whatever was not committed is aborted by the broker or
// fenced on the next start, so exactly-once still holds).
func runCmd(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("run", "-c FILE [--log-level LEVEL] [--until end|TIME] [--output text|json]", stderr)
	path := configFlag(flags)
	level := logLevelFlag(flags)
	format := logFormatFlag(flags)
	cpuprofile := flags.String("cpuprofile", "", "write a CPU profile to `FILE` (off by default; for the benchmark harness)")
	memprofile := flags.String("memprofile", "", "write to `FILE` the heap profile taken at the run's highest heap (off by default; for the benchmark harness)")
	until := flags.String("until", "", "run as a bounded job: read each input up to `WHERE` (\"end\": the last stable offsets at start; or an RFC 3339 time), commit it, and exit")
	output := flags.String("output", "text", "the bounded run's summary on stdout: text or json")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "connectd run: -c FILE is required")
		flags.Usage()
		return exitUsage
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "connectd run: --output %q: want text or json\n", *output)
		return exitUsage
	}
	var bound *bounded.Until
	if *until != "" {
		u, err := bounded.Parse(*until)
		if err != nil {
			fmt.Fprintln(stderr, "connectd run:", err)
			return exitUsage
		}
		bound = &u
	}
	started := time.Now()
	log, err := newLogger(stderr, level.Level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "connectd run:", err)
		return exitUsage
	}

	for _, prof := range []struct {
		path  string
		start func(path string) (stop func(), err error)
	}{{*cpuprofile, startCPUProfile}, {*memprofile, startPeakHeapProfile}} {
		if prof.path == "" {
			continue
		}
		stop, err := prof.start(prof.path)
		if err != nil {
			fmt.Fprintln(stderr, "connectd run:", err)
			return exitUsage
		}
		defer stop() // at return: the profiles are written at a clean stop
	}

	cfg, err := loadAndValidate(*path)
	if err != nil {
		printErrors(stderr, *path, err)
		return exitFail
	}
	d, err := daemon.New(cfg, log)
	if err != nil {
		printErrors(stderr, *path, err)
		return exitFail
	}
	b := readBuildInfo()
	d.Metrics = metrics.New(d)
	d.Until = bound
	// franz-go's own logs (rebalances, transaction aborts) go through slog
	// too, at warnings and above unless debugging.
	kafkaHandler, _ := newHandler(stderr, max(level.Level, slog.LevelWarn), *format) // format checked above
	if level.Level <= slog.LevelDebug {
		kafkaHandler, _ = newHandler(stderr, level.Level, *format)
	}
	d.ClientOpts = append(d.ClientOpts, kgo.WithLogger(kslog.New(slog.New(kafkaHandler).With("component", "kafka-client"))))
	// kafka.tls and kafka.sasl reach every client the daemon opens
	// (pipelines, offsets API, transactions routes) through ClientOpts.
	secure, err := kafkaauth.Options(cfg.Kafka)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	d.ClientOpts = append(d.ClientOpts, secure...)
	opts := []admin.Option{admin.WithVersion(b.Version, b.Revision), admin.WithConfig(cfg), admin.WithMetrics(d.Metrics.Registry),
		admin.WithTransactions(d.API())}
	if cfg.Admin.Token != "" {
		opts = append(opts, admin.WithToken(cfg.Admin.Token), admin.WithAuth(cfg.Admin.Auth))
	}
	if cfg.Admin.TLS != nil {
		tlsCfg, err := admin.TLSConfig(cfg.Admin.TLS)
		if err != nil {
			log.Error("cannot start", "err", err)
			return exitFail
		}
		opts = append(opts, admin.WithTLS(tlsCfg))
	}
	if err := checkKafka(cfg, d.ClientOpts, log); err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	if bound != nil && cfg.Cluster != nil {
		fmt.Fprintln(stderr, "connectd run: --until runs this process's connectors as a bounded job; a cluster member runs the config topic's connectors as streams (remove the cluster block, or --until)")
		return exitUsage
	}
	members, err := openCluster(context.Background(), cfg, d.ClientOpts, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	if members != nil {
		d.Configs = members.configs
		opts = append(opts, admin.WithWorkerID(cfg.InstanceID), admin.WithClusterStatus(members.log))
		defer members.stop()
	}
	srv := admin.New(d.API(), log, opts...)
	// Bind the admin port before starting anything, so a taken port fails
	// the start instead of leaving connectors running unobservable.
	if err := srv.Listen(cfg.Admin.Listen); err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}

	// Registered before the connectors start, so a signal during start-up
	// is a clean stop too rather than the default abrupt exit.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	stopTuner := startGCTuner(log)
	defer stopTuner()
	log.Info("starting connectd", "version", b.Version, "config", *path, "connectors", len(cfg.Connectors))
	if err := d.Start(context.Background()); err != nil {
		log.Error("cannot start", "err", err)
		d.Stop()
		shutdownAdmin(srv)
		return exitFail
	}
	if members != nil {
		members.start(d)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	if bound != nil {
		code := waitBounded(d, log, sigs, started, stdout, stderr, *output)
		shutdownAdmin(srv)
		return code
	}

	// A connector that fails stays FAILED and inspectable through the admin
	// API (its status carries the trace) until an operator restarts it.
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
	case err := <-serveErr:
		log.Error("admin API failed; shutting down", "err", err)
		d.Stop()
		return exitFail
	}
	stopped := make(chan struct{})
	go func() {
		d.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case sig := <-sigs:
		log.Error("second signal: exiting now without waiting for open batches", "signal", sig.String())
		d.CloseBroker()
		os.Exit(exitFail)
	}
	shutdownAdmin(srv)
	log.Info("connectd stopped")
	return exitOK
}

// checkKafka connects to the external brokers once before any connector
// starts. franz-go retries a refused login or TLS handshake like any
// connection error, so a wrong password or CA would otherwise show only as
// connectors that never progress; such a cause stops the start with an
// error naming the broker. A broker that is down or slow is only logged:
// the connectors retry until it is back, as without the check.
func checkKafka(cfg *config.Config, opts []kgo.Opt, log *slog.Logger) error {
	if len(cfg.Kafka.Brokers) == 0 {
		return nil // the embedded broker: plaintext, in this process
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := kafkaauth.Check(ctx, daemon.SplitBrokers(cfg.Kafka.Brokers), opts, cfg.Kafka)
	if errors.Is(err, kafkaauth.ErrSecurity) {
		return err
	}
	if err != nil {
		log.Warn("kafka not reachable at start; connectors retry", "err", err)
	}
	return nil
}

func shutdownAdmin(srv *admin.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// gcBudgetEnv sets the garbage collector's heap budget in MiB (package
// gctune); 0 turns the tuner off. GOGC or GOMEMLIMIT turn it off too.
const gcBudgetEnv = "CONNECTD_GC_HEAP_BUDGET_MIB"

// startGCTuner lets the collector run less often while the live heap is
// small (gctune), unless the operator said otherwise; it returns how to
// stop it.
func startGCTuner(log *slog.Logger) (stop func()) {
	budget := uint64(gctune.DefaultBudget)
	if v := os.Getenv(gcBudgetEnv); v != "" {
		mib, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			log.Warn("ignoring "+gcBudgetEnv+": want a whole number of MiB (0: off)", "value", v)
		} else {
			budget = mib << 20
		}
	}
	if why := gctune.Disabled(budget); why != "" {
		log.Debug("garbage collector left at Go's settings", "why", why)
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		gctune.Run(ctx, budget)
		close(done)
	}()
	log.Debug("garbage collector tuned within a heap budget", "budget_mib", budget>>20)
	return func() { cancel(); <-done }
}
