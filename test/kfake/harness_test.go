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

// restartJoinLeave is the schedule the kfake suites share, over connector
// name reading n input events: instance a, a's graceful restart at n/4,
// b joining at n/2 (a cooperative rebalance moves partitions to it) and
// leaving at 3n/4 (they move back). At 9n/10 it calls settle (the callers
// remove their faults there; nil: nothing) and returns verify's report once
// all n are expected, with every daemon it started; the second a is
// still running.
func restartJoinLeave(t *testing.T, c *kfake.Cluster, cfg *config.Config, name string, n int, settle func()) (verify.Report, []*daemon.Daemon) {
	t.Helper()
	var daemons []*daemon.Daemon
	start := func(id string) *daemon.Daemon {
		d := startDaemon(t, cfg, id)
		daemons = append(daemons, d)
		return d
	}
	a := start("a")
	waitExpected(t, c, cfg, name, n/4, 2*time.Minute)
	a.Stop() // graceful: commits or aborts its open batch
	start("a")
	waitExpected(t, c, cfg, name, n/2, 2*time.Minute)
	b := start("b")
	waitExpected(t, c, cfg, name, 3*n/4, 2*time.Minute)
	b.Stop()
	waitExpected(t, c, cfg, name, 9*n/10, 2*time.Minute)
	if settle != nil {
		settle()
	}
	return waitExpected(t, c, cfg, name, n, 2*time.Minute), daemons
}

// aborts sums name's aborted batches over daemons, by every reason.
func aborts(daemons []*daemon.Daemon, name string) int {
	n := 0
	for _, d := range daemons {
		st, _ := d.Status(name)
		for _, v := range st.Aborts {
			n += int(v)
		}
	}
	return n
}
