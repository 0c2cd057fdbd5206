package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
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

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: brokers, OffsetsTopic: cfg.OffsetsTopic, Stopped: *stopped})
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
