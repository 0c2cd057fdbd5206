package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/kafkaauth"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/verify"
)

// dialTimeout bounds the reachability check before verifying: a Kafka
// client retries an unreachable broker until its context ends, which would
// turn "the broker is not running" into a timeout minutes later.
const dialTimeout = 5 * time.Second

// verifyCmd runs the exactly-once checker on one connector and prints its
// report as one JSON line: exit 0 when clean, 1 when not (duplicates,
// missing or unexpected output, an event applied twice, an input partition
// with records and no checkpoint), 2 when it could not answer (bad config,
// unknown connector, unreachable Kafka). --stopped does not change what
// the codes mean, only what counts as unexpected.
func verifyCmd(args []string, stdout, stderr io.Writer) int {
	flags := newFlagSet("verify", "-c FILE --connector NAME [--timeout 2m] [--stopped]", stderr)
	path := configFlag(flags)
	name := flags.String("connector", "", "`NAME` of the connector to check")
	timeout := flags.Duration("timeout", 2*time.Minute, "give up after this long (reading input and output)")
	stopped := flags.Bool("stopped", false, "the pipeline is stopped or quiet (drained, no batch open): output whose origin lies beyond the checkpoint is unexpected, not a later batch's")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if *path == "" || *name == "" {
		fmt.Fprintln(stderr, "connectd verify: -c FILE and --connector NAME are required")
		flags.Usage()
		return exitUsage
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "connectd verify: "+format+"\n", args...)
		return exitUsage
	}

	cfg, err := config.Load(*path)
	if err != nil {
		printErrors(stderr, *path, err)
		return exitUsage
	}
	// A connector created through the admin API (a Kappa replay, say)
	// lives in admin.state_file, not in the file.
	def, found, err := daemon.Definition(cfg, *name)
	if err != nil {
		printErrors(stderr, *path, err)
		return exitUsage
	}
	if !found {
		names := make([]string, len(cfg.Connectors))
		for j, c := range cfg.Connectors {
			names[j] = c.Name
		}
		return fail("%s has no connector %q (it has: %s)", *path, *name, strings.Join(names, ", "))
	}
	spec, err := pipeline.Decode(*def)
	if err != nil {
		printErrors(stderr, *path, err)
		return exitUsage
	}

	brokers, embedded := daemon.SplitBrokers(cfg.Kafka.Brokers), cfg.Kafka.Embedded != nil
	if embedded {
		brokers = []string{cfg.Kafka.Embedded.Listen}
	}
	hint := ""
	if embedded {
		hint = " (kafka.embedded: the broker runs inside `connectd run`, which must be running with this config while verify runs)"
	}
	if err := reachable(brokers); err != nil {
		return fail("%v%s", err, hint)
	}
	secure, err := kafkaauth.Options(cfg.Kafka)
	if err != nil {
		return fail("%v", err)
	}
	if !embedded {
		// A wrong password or CA would otherwise surface as --timeout.
		if err := kafkaauth.Check(context.Background(), brokers, secure, cfg.Kafka); errors.Is(err, kafkaauth.ErrSecurity) {
			return fail("%v", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	progress, endProgress := newVerifyProgress(stderr, *name)
	rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: brokers, ClientOpts: secure, OffsetsTopic: cfg.OffsetsTopic, Stopped: *stopped, Progress: progress})
	endProgress()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail("connector %s: no answer within --timeout %s: %v%s", *name, *timeout, err, hint)
		}
		return fail("connector %s: %v%s", *name, err, hint)
	}
	line, err := json.Marshal(rep)
	if err != nil {
		return fail("encoding the report: %v", err)
	}
	fmt.Fprintln(stdout, string(line))
	if !rep.Clean() {
		fmt.Fprintf(stderr, "connectd verify: connector %s is not exactly once: %s\n", *name, rep)
		return exitFail
	}
	return exitOK
}

// reachable reports an error unless at least one broker accepts a TCP
// connection.
func reachable(brokers []string) error {
	var errs []error
	for _, b := range brokers {
		c, err := net.DialTimeout("tcp", b, dialTimeout)
		if err == nil {
			c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("cannot reach Kafka at %s: %w", strings.Join(brokers, ","), errors.Join(errs...))
}

// verifyProgressEvery spaces verify's progress lines when stderr is not a
// terminal; the first comes only after as long, so a short check prints
// none (a variable so that a test can see every report).
var verifyProgressEvery = progressLogEvery

// newVerifyProgress returns verify's progress hook and what to call when
// the check is over. On a terminal stderr shows a bar (records read of
// those known so far, rate, ETA; the total grows as the check reaches the
// output); otherwise a line every verifyProgressEvery, as a bounded run
// logs its progress.
func newVerifyProgress(stderr io.Writer, name string) (verify.Progress, func()) {
	started := time.Now()
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		var read, known int64
		update := func(r, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("verify "+name), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
					progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond))
				known = total
			}
			if total != known {
				bar.ChangeMax64(total)
				known = total
			}
			// A bar that reaches its max is finished for good, and the
			// total may still grow (the output is read after the
			// input): it reaches the max only in done.
			read = r
			_ = bar.Set64(min(r, total-1))
		}
		done := func() {
			if bar == nil {
				return
			}
			if read == known {
				_ = bar.Set64(read)
			}
			_ = bar.Exit()
			fmt.Fprintln(stderr) // the report or error starts on a line of its own
		}
		return update, done
	}
	last := started
	return func(read, total int64) {
		now := time.Now()
		if now.Sub(last) < verifyProgressEvery {
			return
		}
		last = now
		fmt.Fprintf(stderr, "connectd verify: connector %s: %d of %d records read (input and output, as far as known), %.0f records/s\n",
			name, read, total, float64(read)/max(now.Sub(started).Seconds(), 1e-9))
	}, func() {}
}
