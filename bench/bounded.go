package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/connectd/connectd/config"
)

// Issue 16's bounded-run benchmark: the same pre-loaded backlog, sink and
// guarantee, drained once by connectd streaming (runOne: the drain rate from
// the first to the last poll of the sink's frontier, start-up left out) and
// once by `connectd run --until end`, a bounded job measured by its wall
// time from the moment the harness starts the process to its exit 0,
// start-up and shutdown included. Both read the run's empty live topic too
// (the same config, only --until differs). The bounded figure is records /
// wall time; the ratio bounded / streaming is taken round by round.
//
// While the bounded job runs, the harness polls the same frontier every 20
// ms as for a streaming drain, which splits the wall time into start-up
// (process start to the first record visible), the steady drain (measured
// exactly like the streaming one) and the tail (all records visible to the
// process's exit: the last batch's wait, the daemon noticing the end, and
// its stop).

// BoundedResult is what a bounded run adds to its Result.
type BoundedResult struct {
	// Wall is from just before the process started to just after it
	// exited.
	Wall time.Duration
	// Startup is from the start to the first poll with records visible.
	Startup time.Duration
	// SteadyRate is the drain rate between the first poll with records
	// visible and the first with all of them (DrainRate), NaN if the
	// polls did not see both.
	SteadyRate float64
	// Tail is from the first poll with every record visible to the exit.
	Tail time.Duration
	// Summary is connectd's own JSON summary (stdout).
	Summary boundedSummary
}

// boundedSummary is the part of `connectd run --until … --output json`'s
// summary the report uses.
type boundedSummary struct {
	Outcome    string  `json:"outcome"`
	Seconds    float64 `json:"seconds"`
	Error      string  `json:"error,omitempty"`
	Connectors []struct {
		Name      string `json:"name"`
		RecordsIn uint64 `json:"records_in"`
		Commits   uint64 `json:"commits"`
	} `json:"connectors"`
}

// MarshalJSON writes an unknown steady rate as null.
func (b BoundedResult) MarshalJSON() ([]byte, error) {
	type plain BoundedResult
	return json.Marshal(struct {
		plain
		SteadyRate *float64
	}{plain(b), optional(b.SteadyRate)})
}

// UnmarshalJSON reads a null steady rate as unknown.
func (b *BoundedResult) UnmarshalJSON(data []byte) error {
	type plain BoundedResult
	var j struct {
		plain
		SteadyRate *float64
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*b = BoundedResult(j.plain)
	b.SteadyRate = orNaN(j.SteadyRate)
	return nil
}

// runBounded runs `connectd run --until end` over the backlog on a fresh
// group and sink and measures it (see the top of this file).
func (r *Runner) runBounded(ctx context.Context, run Run, profile bool) (res Result) {
	s := run.Scenario
	res = Result{Run: run, Records: r.o.Records, Expected: r.o.Records, Commits: math.NaN(), Aborts: math.NaN(), CommitShare: math.NaN(),
		Bounded: &BoundedResult{SteadyRate: math.NaN()}}
	fail := func(err error) Result { res.Err = err.Error(); return res }
	if s.System != Connectd {
		return fail(fmt.Errorf("bounded runs are connectd's"))
	}
	n := r.names(s.slug() + "-" + run.label())
	in := r.inputs[s.Input()]
	defer r.cleanup(s, n)
	if err := r.kafka.createTopic(ctx, n.live, s.Partitions); err != nil {
		return fail(err)
	}
	if s.Sink == SinkKafka {
		if err := r.kafka.createTopic(ctx, n.out, s.Partitions); err != nil {
			return fail(err)
		}
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	cfg := connectdConfig{
		Scenario: s, AdminListen: "127.0.0.1:" + strconv.Itoa(port), Brokers: r.o.Brokers, Security: r.o.Security,
		InputTopics: []string{in, n.live}, Group: n.group, OutputTopic: n.out,
		Table: "public." + n.table, RedisAddr: r.o.RedisAddr, KeyPrefix: n.prefix, Tasks: r.o.Tasks,
	}
	if r.pg != nil {
		cfg.PGDSN = r.pg.dsn
	}
	path := filepath.Join(r.o.WorkDir, n.id+".yaml")
	if err := os.WriteFile(path, []byte(cfg.render()), 0o644); err != nil {
		return fail(err)
	}
	argv := []string{r.o.Connectd, "run", "-c", path, "--until", "end", "--output", "json"}
	if profile {
		res.Profile = filepath.Join(r.o.WorkDir, n.id+".cpu.pprof")
		argv = append(argv, "--cpuprofile", res.Profile)
	}
	summaryPath := filepath.Join(r.o.WorkDir, n.id+".summary.json")
	c, err := startChildOut("connectd (bounded)", filepath.Join(r.o.WorkDir, n.id+".log"), summaryPath, nil, argv...)
	if err != nil {
		return fail(err)
	}
	defer c.kill() // a no-op once it exited

	samples, err := r.watchBounded(ctx, c, r.frontier(s, n), in)
	if err != nil {
		return fail(err)
	}
	b := res.Bounded
	b.Wall = c.exitedAt.Sub(c.started)
	if raw, err := os.ReadFile(summaryPath); err == nil {
		_ = json.Unmarshal(raw, &b.Summary) // a missing summary shows as such in the report
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		return fail(fmt.Errorf("connectd run --until end exited %d (%s %s)\n%s", code, b.Summary.Outcome, b.Summary.Error, c.logTail(15)))
	}
	res.RecordsPerSec = float64(r.o.Records) / b.Wall.Seconds()
	res.MBPerSec = res.RecordsPerSec * float64(s.RecordSize) / 1e6
	res.Drain, res.Wall = b.Wall, b.Wall
	res.CPUTotal = c.cpu()
	res.CPUDrain = res.CPUTotal // a batch job's CPU is its whole life's
	res.PeakRSS = c.peakRSS()
	for _, cs := range b.Summary.Connectors {
		res.Commits = float64(cs.Commits)
	}
	for _, p := range samples {
		if p.Records > 0 {
			b.Startup = p.At.Sub(c.started)
			break
		}
	}
	for _, p := range samples {
		if p.Records >= r.o.Records {
			b.Tail = max(c.exitedAt.Sub(p.At), 0)
			break
		}
	}
	if rate, _, ok := DrainRate(samples, r.o.Records); ok {
		b.SteadyRate = rate
	}
	res.Output, err = r.countOutput(ctx, s, n, res.Expected)
	if err != nil {
		return fail(fmt.Errorf("counting the output: %w", err))
	}
	return res
}

// watchBounded polls the frontier of topic every 20 ms, sampling the
// child's RSS and CPU, until the child exits, and once more after; it
// fails if the child is still running after the drain timeout.
func (r *Runner) watchBounded(ctx context.Context, c *child, front func(context.Context, string) (map[int32]int64, error), topic string) ([]Progress, error) {
	timeout := max(3*time.Minute, time.Duration(r.o.Records/1000)*time.Second)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var samples []Progress
	poll := func() {
		f, err := front(dctx, topic)
		now := time.Now()
		c.sampleRSS()
		if err == nil {
			samples = append(samples, Progress{At: now, Records: sum(f), CPU: c.cpu()})
		}
	}
	for !c.exited() {
		if dctx.Err() != nil {
			return nil, fmt.Errorf("bounded run not finished after %s\n%s", timeout, c.logTail(15))
		}
		poll()
		select {
		case <-c.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
	poll()
	return samples, nil
}

// BoundedTargets are issue 16's: a bounded run with the bounded-run
// defaults at least 1.2 times the streaming drain's records/s, start-up
// included, judged on the worst round.
func BoundedTargets(results []Result, aggs []Aggregate) []Target {
	var ts []Target
	for _, a := range aggs {
		s := a.Scenario
		if !s.Bounded || s.CommitInterval != 0 || s.BatchMaxRecords != 0 {
			continue
		}
		v, rounds := PairedRatio(results, s, s.streamingPartner())
		ts = append(ts, Target{Name: fmt.Sprintf("bounded run (wall time, start-up included) / streaming drain, %s %s", sinkLabel(s.Sink), s.Guarantee),
			Want: "≥ 1.2 every round", Measured: v, Unit: "×", Limit: 1.2, Known: !math.IsNaN(v), Profile: a.Profile, Rounds: rounds, ByWorst: true})
	}
	return ts
}

func sinkLabel(s Sink) string {
	return map[Sink]string{SinkKafka: "Kafka→Kafka", SinkPostgres: "Kafka→PostgreSQL", SinkRedis: "Kafka→Redis"}[s]
}

// writeBounded is the report's section on bounded runs: how they are
// measured, a summary line per bounded scenario, then every round next to
// its streaming partner.
func (rep *Report) writeBounded(p func(string, ...any)) {
	var bounded []Scenario
	for _, a := range rep.Aggs {
		if a.Scenario.Bounded {
			bounded = append(bounded, a.Scenario)
		}
	}
	if len(bounded) == 0 {
		return
	}
	p("## Bounded runs (issue 16): `connectd run --until end` vs the streaming drain")
	p("")
	p("Both drain the same pre-loaded backlog of %d records into the same sink at the same guarantee, each on a fresh group and output, with the same generated config (which also lists the run's empty live topic); only `--until end` differs. "+
		"**Streaming** is connectd's drain rate as everywhere in this report: from the first to the last poll (every 20 ms) of the sink's frontier, so process start and the group join are left out; "+
		"*start→drained* is from the process start to that last poll. "+
		"**Bounded** is `connectd run --until end --output json`, timed from just before the harness starts the process to just after it exits 0, so start-up (config, stop offsets, group join, recovery) and the end (the last batch, the daemon noticing every stop reached, the clean stop) are included; its records/s is the backlog over that wall time. "+
		"The harness polls the same frontier during the bounded run, splitting its wall time into *start-up* (to the first records visible), the *steady* drain rate (measured as the streaming one) and the *tail* (all records visible to exit). "+
		"A scenario whose batching reads `default` leaves commit.interval and batch.max.records out of its config: the streaming runs get %s / %d records, the bounded runs the bounded-run defaults, %s / %d records. "+
		"The ratio bounded / streaming is taken within each round; medians and the worst round are reported.",
		rep.Options.Records, config.DefaultCommitInterval, config.DefaultBatchMaxRecords, config.DefaultBoundedCommitInterval, config.DefaultBoundedBatchMaxRecords)
	p("")
	byRound := func(s Scenario) map[int]Result {
		m := map[int]Result{}
		for _, r := range rep.Results {
			if r.Scenario == s {
				m[r.Round] = r
			}
		}
		return m
	}
	p("| bounded scenario | vs | bounded / streaming, median | worst round | bounded wall, median | worst | steady drain, median | start-up, median | tail, median | commits (bounded; streaming) | peak RSS (bounded; streaming) |")
	p("|---|---|---|---|---|---|---|---|---|---|---|")
	type detail struct {
		s, st    Scenario
		bs, sts  map[int]Result
		rounds   []int
		ratios   []float64
		walls    []float64
		steady   []float64
		startups []float64
		tails    []float64
	}
	var details []detail
	for _, s := range bounded {
		st := s.streamingPartner()
		d := detail{s: s, st: st, bs: byRound(s), sts: byRound(st)}
		for round := 0; round < len(rep.Results); round++ {
			b, okB := d.bs[round]
			t, okS := d.sts[round]
			if !okB && !okS {
				continue
			}
			d.rounds = append(d.rounds, round)
			if okB && b.Err == "" && b.Bounded != nil {
				d.walls = append(d.walls, b.Bounded.Wall.Seconds())
				d.startups = append(d.startups, b.Bounded.Startup.Seconds())
				d.tails = append(d.tails, b.Bounded.Tail.Seconds())
				if !math.IsNaN(b.Bounded.SteadyRate) {
					d.steady = append(d.steady, b.Bounded.SteadyRate)
				}
				if okS && t.Err == "" && t.RecordsPerSec > 0 {
					d.ratios = append(d.ratios, b.RecordsPerSec/t.RecordsPerSec)
				}
			}
		}
		details = append(details, d)
		ba, sa := find(rep.Aggs, s), find(rep.Aggs, st)
		commits, rss := "—", "—"
		if ba != nil && sa != nil {
			commits = fmtCount(ba.Commits) + "; " + fmtCount(sa.Commits)
			rss = fmtMiB(ba.PeakRSS) + "; " + fmtMiB(sa.PeakRSS)
		}
		lo, _ := Spread(d.ratios)
		_, hiWall := Spread(d.walls)
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", s.Name(), st.Name(), fmtRatio(Median(d.ratios)), fmtRatio(lo),
			fmtSec(Median(d.walls)), fmtSec(hiWall), fmtRate(Median(d.steady)), fmtSec(Median(d.startups)), fmtSec(Median(d.tails)), commits, rss)
	}
	p("")
	for _, d := range details {
		p("**%s** against **%s**, per round:", d.s.Name(), d.st.Name())
		p("")
		p("| round | streaming records/s | streaming start→drained | bounded wall | bounded records/s | bounded / streaming | bounded steady records/s | start-up | tail | commits (bounded; streaming) | CPU s (bounded whole run; streaming drain) | output complete |")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, round := range d.rounds {
			b, okB := d.bs[round]
			t, okS := d.sts[round]
			cell := func(ok bool, r Result, f func(Result) string) string {
				switch {
				case !ok:
					return "—"
				case r.Err != "":
					return "failed: " + oneLine(r.Err)
				}
				return f(r)
			}
			ratio := "—"
			if okB && okS && b.Err == "" && t.Err == "" && t.RecordsPerSec > 0 {
				ratio = fmt.Sprintf("%.2f×", b.RecordsPerSec/t.RecordsPerSec)
			}
			bnd := func(f func(*BoundedResult) string) string {
				return cell(okB, b, func(r Result) string {
					if r.Bounded == nil {
						return "—"
					}
					return f(r.Bounded)
				})
			}
			complete := func(r Result) string {
				if r.Output >= r.Expected {
					return "yes"
				}
				return fmt.Sprintf("**no** (%d of %d)", r.Output, r.Expected)
			}
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s; %s | %s; %s | %s; %s |", round+1,
				cell(okS, t, func(r Result) string { return fmtRate(r.RecordsPerSec) }),
				cell(okS, t, func(r Result) string { return fmtSec(r.Wall.Seconds()) }),
				bnd(func(br *BoundedResult) string { return fmtSec(br.Wall.Seconds()) }),
				cell(okB, b, func(r Result) string { return fmtRate(r.RecordsPerSec) }),
				ratio,
				bnd(func(br *BoundedResult) string { return fmtRate(br.SteadyRate) }),
				bnd(func(br *BoundedResult) string { return fmtSec(br.Startup.Seconds()) }),
				bnd(func(br *BoundedResult) string { return fmtSec(br.Tail.Seconds()) }),
				cell(okB, b, func(r Result) string { return fmtCount(r.Commits) }),
				cell(okS, t, func(r Result) string { return fmtCount(r.Commits) }),
				cell(okB, b, func(r Result) string { return fmt.Sprintf("%.2f", r.CPUTotal.Seconds()) }),
				cell(okS, t, func(r Result) string { return fmt.Sprintf("%.2f", r.CPUDrain.Seconds()) }),
				cell(okB, b, complete), cell(okS, t, complete))
		}
		lo, _ := Spread(d.ratios)
		_, hiWall := Spread(d.walls)
		p("| **median** | | | %s | | %s | %s | %s | %s | | | |", fmtSec(Median(d.walls)), fmtRatio(Median(d.ratios)), fmtRate(Median(d.steady)), fmtSec(Median(d.startups)), fmtSec(Median(d.tails)))
		p("| **worst round** | | | %s | | %s | | | | | | |", fmtSec(hiWall), fmtRatio(lo))
		p("")
	}
}

func fmtSec(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.2f s", v)
}
