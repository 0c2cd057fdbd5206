package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// VerifyReport is the JSON line `connectd verify` prints (the fields the
// report uses; the CLI's output is the contract).
type VerifyReport struct {
	Expected             int `json:"expected"`
	Actual               int `json:"actual"`
	Duplicates           int `json:"duplicates"`
	Missing              int `json:"missing"`
	Unexpected           int `json:"unexpected"`
	ApplyCountViolations int `json:"apply_count_violations"`
}

// CrashResult is one crash run: the payoff side of exactly-once.
type CrashResult struct {
	Sink      Sink
	Guarantee string
	Kills     int
	Produced  int64
	Elapsed   time.Duration // first record produced to all committed
	Verify    VerifyReport
	Err       string
}

// CrashRuns runs connectd into every sink at both guarantees while it is
// SIGKILLed every CrashEvery and restarted at once, then verifies the
// output with `connectd verify`.
func (r *Runner) CrashRuns(ctx context.Context) []CrashResult {
	var out []CrashResult
	for _, sink := range []Sink{SinkKafka, SinkPostgres, SinkRedis} {
		for _, g := range []string{AtLeastOnce, ExactlyOnce} {
			if ctx.Err() != nil {
				return out
			}
			cr := r.crashRun(ctx, sink, g)
			if cr.Err != "" {
				r.logf("crash %s %s: FAILED: %s", sink, g, cr.Err)
			} else {
				r.logf("crash %s %s: %d SIGKILLs over %d records: duplicates %d, missing %d, unexpected %d, apply_count violations %d",
					sink, g, cr.Kills, cr.Produced, cr.Verify.Duplicates, cr.Verify.Missing, cr.Verify.Unexpected, cr.Verify.ApplyCountViolations)
			}
			out = append(out, cr)
		}
	}
	return out
}

func (r *Runner) crashRun(ctx context.Context, sink Sink, g string) (cr CrashResult) {
	cr = CrashResult{Sink: sink, Guarantee: g}
	fail := func(err error) CrashResult { cr.Err = err.Error(); return cr }
	s := Scenario{System: Connectd, Sink: sink, Guarantee: g, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12}
	n := r.names("crash-" + s.slug())
	in := "bench-crash-in-" + n.id
	defer func() {
		r.cleanup(s, n)
		_ = r.kafka.deleteTopics(context.Background(), in)
	}()
	if err := r.kafka.createTopic(ctx, in, s.Partitions); err != nil {
		return fail(err)
	}
	if sink == SinkKafka {
		if err := r.kafka.createTopic(ctx, n.out, s.Partitions); err != nil {
			return fail(err)
		}
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	admin := "127.0.0.1:" + fmt.Sprint(port)
	cfg := connectdConfig{
		Scenario: s, AdminListen: admin, Brokers: r.o.Brokers, Security: r.o.Security, InputTopics: []string{in}, Group: n.group,
		OutputTopic: n.out, Table: "public." + n.table, RedisAddr: r.o.RedisAddr, KeyPrefix: n.prefix, Crash: true,
	}
	if r.pg != nil {
		cfg.PGDSN = r.pg.dsn
	}
	cfgPath := filepath.Join(r.o.WorkDir, n.id+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.render()), 0o644); err != nil {
		return fail(err)
	}
	logPath := filepath.Join(r.o.WorkDir, n.id+".log")
	start := func() (*child, error) {
		c, err := startChild("connectd", logPath, nil, r.o.Connectd, "run", "-c", cfgPath)
		if err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := waitHTTP(wctx, c, "http://"+admin+"/health"); err != nil {
			c.kill()
			return nil, err
		}
		return c, nil
	}
	c, err := start()
	if err != nil {
		return fail(err)
	}
	defer func() { c.kill() }()

	began := time.Now()
	produced := make(chan *liveProducer, 1)
	go func() {
		produced <- r.kafka.produceAt(ctx, in, r.o.CrashRate, r.o.CrashDuration, s.RecordSize, 0, s.Input().EventIDHeader)
	}()
	var lp *liveProducer
	tick := time.NewTicker(r.o.CrashEvery)
	defer tick.Stop()
	for lp == nil {
		select {
		case lp = <-produced:
		case <-tick.C:
			c.kill()
			cr.Kills++
			if c, err = start(); err != nil {
				return fail(fmt.Errorf("restart after SIGKILL %d: %w", cr.Kills, err))
			}
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	cr.Produced = int64(len(lp.recs))
	front := r.frontier(s, n)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		f, err := front(ctx, in)
		if err == nil && sum(f) >= cr.Produced {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not drained 3 minutes after the last kill\n%s", c.logTail(15)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cr.Elapsed = time.Since(began)
	c.stop(30 * time.Second)

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.o.Connectd, "verify", "-c", cfgPath, "--connector", connectorName, "--timeout", "3m")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // exit 1 means "not exactly once", which at_least_once may be
	line := strings.TrimSpace(stdout.String())
	if err := json.Unmarshal([]byte(line), &cr.Verify); err != nil {
		return fail(fmt.Errorf("connectd verify: %q: %v; stderr: %s", line, err, stderr.String()))
	}
	return cr
}
