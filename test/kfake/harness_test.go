// Package kfake_test runs connectd's exactly-once pipelines against franz-go's
// in-process kfake broker with injected faults. These tests need no services
// and run with -short too. The harness is the shared one of test/e2e.
package kfake_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/verify"
)

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster { return e2e.Cluster(t, opts...) }

func parse(t *testing.T, c *kfake.Cluster, yaml string) *config.Config {
	t.Helper()
	return e2e.Parse(t, c, yaml)
}

func startDaemon(t *testing.T, cfg *config.Config, id string) *daemon.Daemon {
	t.Helper()
	return e2e.Start(t, cfg, id)
}

func startDaemonWith(t *testing.T, cfg *config.Config, id string, opts []kgo.Opt) *daemon.Daemon {
	t.Helper()
	return e2e.Start(t, cfg, id, opts...)
}

func check(t *testing.T, c *kfake.Cluster, cfg *config.Config, name string) verify.Report {
	t.Helper()
	return e2e.Check(t, c, cfg, name)
}

func waitExpected(t *testing.T, c *kfake.Cluster, cfg *config.Config, name string, n int, within time.Duration) verify.Report {
	t.Helper()
	return e2e.WaitExpected(t, c, cfg, name, n, within)
}

func must(t *testing.T, rep verify.Report, what string) {
	t.Helper()
	e2e.MustBeClean(t, rep, what)
}
