// Package kfake_test runs connectd's exactly-once pipelines against franz-go's
// in-process kfake broker with injected faults. These tests need no services
// and run with -short too.
package kfake_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/verify"
)

// newCluster starts a kfake cluster closed at the end of the test.
func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(3),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(4),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// parse parses a YAML config written in the test, with brokers filled in.
func parse(t *testing.T, c *kfake.Cluster, yaml string) *config.Config {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "\t", "  ")
	yaml = strings.ReplaceAll(yaml, "BROKERS", strings.Join(c.ListenAddrs(), ","))
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg
}

// testLogger logs warnings and errors of the pipeline to the test log.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CONNECTD_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fastClient shortens franz-go's retry timings so faults resolve quickly.
var fastClient = []kgo.Opt{
	kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
}

// startDaemon runs cfg's connectors as instance id until the test ends.
func startDaemon(t *testing.T, cfg *config.Config, id string) *daemon.Daemon {
	t.Helper()
	return startDaemonWith(t, cfg, id, fastClient)
}

func startDaemonWith(t *testing.T, cfg *config.Config, id string, opts []kgo.Opt) *daemon.Daemon {
	t.Helper()
	cfg.InstanceID = id
	d, err := daemon.New(cfg, testLogger(t).With("instance", id))
	if err != nil {
		t.Fatal(err)
	}
	d.ClientOpts = opts
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// check runs the exactly-once checker on connector name of cfg.
func check(t *testing.T, c *kfake.Cluster, cfg *config.Config, name string) verify.Report {
	t.Helper()
	for _, cc := range cfg.Connectors {
		if cc.Name != name {
			continue
		}
		spec, err := pipeline.Decode(cc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: c.ListenAddrs(), ClientOpts: fastClient})
		if err != nil {
			t.Fatalf("verify %s: %v", name, err)
		}
		return rep
	}
	t.Fatalf("no connector %q", name)
	return verify.Report{}
}

// waitCommitted waits until connector name of d has committed n input
// records in total across its lifetime as reported by the checker's
// expected count (which reads the committed checkpoint).
func waitExpected(t *testing.T, c *kfake.Cluster, cfg *config.Config, name string, n int, within time.Duration) verify.Report {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep := check(t, c, cfg, name)
		if rep.Expected >= n {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector %s: %d of %d expected outputs committed after %v: %s", name, rep.Expected, n, within, rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must(t *testing.T, rep verify.Report, what string) {
	t.Helper()
	if !rep.Clean() {
		t.Fatalf("%s: not exactly once: %s", what, rep)
	}
	t.Logf("%s: %s", what, rep)
}

var _ = fmt.Sprintf
