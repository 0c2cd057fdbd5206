package bench

import (
	"math"
	"time"
)

// Aggregate is a scenario's runs folded into one line: medians over the
// rounds (the machine is shared, so the median of interleaved repeats is
// the figure; the range says how noisy it was).
type Aggregate struct {
	Scenario       Scenario
	Runs, Failed   int
	Errs           []string
	Rate           float64 // records/s, median
	RateLo, RateHi float64
	MBPerSec       float64
	CPUDrain       float64 // seconds, median
	DrainSec       float64 // seconds, median
	CPUPerRecord   float64 // µs of CPU per record, median
	PeakRSS        int64   // largest over the runs
	Latency        *LatencySummary
	Commits        float64
	Aborts         float64
	CommitShare    float64 // median; NaN if not connectd
	Complete       bool    // every run's output had every record
	Profile        string
}

// AggregateResults folds results by scenario, in the order scenarios
// first appear.
func AggregateResults(results []Result) []Aggregate {
	var order []Scenario
	by := map[Scenario][]Result{}
	for _, r := range results {
		if _, ok := by[r.Scenario]; !ok {
			order = append(order, r.Scenario)
		}
		by[r.Scenario] = append(by[r.Scenario], r)
	}
	out := make([]Aggregate, 0, len(order))
	for _, s := range order {
		out = append(out, aggregate(s, by[s]))
	}
	return out
}

func aggregate(s Scenario, rs []Result) Aggregate {
	a := Aggregate{Scenario: s, Runs: len(rs), Complete: true, Commits: math.NaN(), Aborts: math.NaN(), CommitShare: math.NaN()}
	var rates, mbs, cpus, drains, perRec, commits, aborts, shares []float64
	for _, r := range rs {
		if r.Err != "" {
			a.Failed++
			a.Errs = append(a.Errs, r.Err)
			continue
		}
		rates = append(rates, r.RecordsPerSec)
		mbs = append(mbs, r.MBPerSec)
		cpus = append(cpus, r.CPUDrain.Seconds())
		drains = append(drains, r.Drain.Seconds())
		if r.Records > 0 && r.RecordsPerSec > 0 {
			// Records drained during the measured window: rate × time.
			n := r.RecordsPerSec * r.Drain.Seconds()
			perRec = append(perRec, float64(r.CPUDrain)/float64(time.Microsecond)/n)
		}
		if !math.IsNaN(r.CommitShare) {
			shares = append(shares, r.CommitShare)
		}
		if !math.IsNaN(r.Commits) {
			commits = append(commits, r.Commits)
			aborts = append(aborts, r.Aborts)
		}
		a.PeakRSS = max(a.PeakRSS, r.PeakRSS)
		if r.Latency != nil && a.Latency == nil {
			a.Latency = r.Latency
		}
		if r.Output < r.Expected {
			a.Complete = false
		}
		if r.Profile != "" && a.Profile == "" {
			a.Profile = r.Profile
		}
	}
	a.Rate = Median(rates)
	a.RateLo, a.RateHi = Spread(rates)
	a.MBPerSec = Median(mbs)
	a.CPUDrain = Median(cpus)
	a.DrainSec = Median(drains)
	a.CPUPerRecord = Median(perRec)
	if len(shares) > 0 {
		a.CommitShare = Median(shares)
	}
	if len(commits) > 0 {
		a.Commits, a.Aborts = Median(commits), Median(aborts)
	}
	if len(rates) == 0 {
		a.Complete = false
	}
	return a
}

// find returns the aggregate of the scenario matching s, or nil.
func find(aggs []Aggregate, s Scenario) *Aggregate {
	for i := range aggs {
		if aggs[i].Scenario == s {
			return &aggs[i]
		}
	}
	return nil
}

// PairedRatio compares scenario a with b round by round: each round's
// ratio of the two rates, then the median of those. Interleaving runs a
// and b close together in every round, so a slow period of the shared
// machine (another engineer's test suite on the same broker) slows both
// and cancels out of the round's ratio, where a ratio of medians taken
// over different rounds would not. It returns NaN without a common round.
func PairedRatio(results []Result, a, b Scenario) (ratio float64, rounds []float64) {
	rate := func(s Scenario) map[int]float64 {
		m := map[int]float64{}
		for _, r := range results {
			if r.Scenario == s && r.Err == "" && r.RecordsPerSec > 0 {
				m[r.Round] = r.RecordsPerSec
			}
		}
		return m
	}
	ra, rb := rate(a), rate(b)
	for round := 0; round < len(results); round++ {
		x, okA := ra[round]
		y, okB := rb[round]
		if okA && okB {
			rounds = append(rounds, x/y)
		}
	}
	return Median(rounds), rounds
}

// Target is one of issue 9's goals, measured.
type Target struct {
	Name     string
	Want     string
	Measured float64 // the ratio (or ms, or allocations)
	Unit     string  // "×", "ms", "allocs/record", "MiB"
	Limit    float64
	AtMost   bool // Measured must be <= Limit (else >=)
	Known    bool
	Profile  string    // CPU profile of the connectd run concerned
	Rounds   []float64 // per-round values behind Measured (paired ratios, p99s)
	// ByWorst judges the target on its worst round (issue 17: targets hold
	// for the worst of the interleaved rounds) instead of the median.
	ByWorst bool
}

// Worst is the worst of Rounds for this target's direction (the largest
// when it must stay at most Limit), or Measured without rounds.
func (t Target) Worst() float64 {
	if len(t.Rounds) == 0 {
		return t.Measured
	}
	lo, hi := Spread(t.Rounds)
	if t.AtMost {
		return hi
	}
	return lo
}

// judged is the figure Met compares with the limit.
func (t Target) judged() float64 {
	if t.ByWorst {
		return t.Worst()
	}
	return t.Measured
}

// Met reports whether the target holds.
func (t Target) Met() bool {
	if !t.Known {
		return false
	}
	if t.AtMost {
		return t.judged() <= t.Limit
	}
	return t.judged() >= t.Limit
}

// MissedBy is how far the judged measurement is from the limit, as a
// fraction of the limit (0 when met).
func (t Target) MissedBy() float64 {
	if !t.Known || t.Met() || t.Limit == 0 {
		return 0
	}
	return math.Abs(t.judged()-t.Limit) / t.Limit
}

// Targets evaluates issue 9's targets from the results (throughput ratios
// paired by round, at 100 ms, 100 B, 12 partitions), the aggregates and
// the microbenchmarks, and issue 15's windowed targets when windowed
// scenarios ran. A target whose inputs did not run is reported as not
// measured, except that a run of windowed scenarios only reports theirs.
func Targets(results []Result, aggs []Aggregate, micro []MicroResult) []Target {
	windowed, copies, bounded := false, false, false
	for _, r := range results {
		windowed = windowed || r.Scenario.Windowed
		copies = copies || !r.Scenario.Windowed
		bounded = bounded || r.Scenario.Bounded
	}
	var ts []Target
	if (copies || !windowed) && !bounded {
		ts = copyTargets(results, aggs, micro)
	}
	if windowed {
		ts = append(ts, WindowTargets(results, aggs)...)
	}
	if bounded {
		// The bounded matrices' streaming scenarios are the partners of
		// bounded ones, not issue 9's matrix: only issue 16's targets.
		ts = append(ts, BoundedTargets(results, aggs)...)
	}
	return ts
}

// copyTargets are issue 9's.
func copyTargets(results []Result, aggs []Aggregate, micro []MicroResult) []Target {
	pt := func(sys System, sink Sink, g string) Scenario {
		return Scenario{System: sys, Sink: sink, Guarantee: g, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12}
	}
	kEO := pt(Connectd, SinkKafka, ExactlyOnce)
	profile := func(s Scenario) string {
		if a := find(aggs, s); a != nil {
			return a.Profile
		}
		return ""
	}
	ratio := func(name, want string, a, b Scenario, limit float64) Target {
		v, rounds := PairedRatio(results, a, b)
		return Target{Name: name, Want: want, Measured: v, Unit: "×", Limit: limit, Known: !math.IsNaN(v), Profile: profile(a), Rounds: rounds}
	}
	ts := []Target{
		ratio("Kafka→Kafka exactly_once / connectd at_least_once (100ms)", "≥ 0.90", kEO, pt(Connectd, SinkKafka, AtLeastOnce), 0.90),
		ratio("Kafka→Kafka exactly_once / bare franz-go copy loop", "≥ 0.85", kEO, pt(Bare, SinkKafka, AtLeastOnce), 0.85),
		ratio("Kafka→Kafka exactly_once / Kafka Streams exactly_once_v2", "≥ 1.2", kEO, pt(Streams, SinkKafka, ExactlyOnce), 1.2),
	}
	p99 := Target{Name: "Kafka→Kafka exactly_once p99 end-to-end latency (100ms)", Want: "≤ 150 ms", Unit: "ms", Limit: 150, AtMost: true, Profile: profile(kEO)}
	if a := find(aggs, kEO); a != nil && a.Latency != nil && a.Latency.N > 0 {
		p99.Measured, p99.Known = float64(a.Latency.P99)/float64(time.Millisecond), true
	}
	ts = append(ts, p99,
		ratio("Kafka→PostgreSQL exactly_once / bare pgx bulk upsert", "≥ 0.8", pt(Connectd, SinkPostgres, ExactlyOnce), pt(Bare, SinkPostgres, AtLeastOnce), 0.8),
		ratio("Kafka→Redis exactly_once / bare pipelined SET", "≥ 0.7", pt(Connectd, SinkRedis, ExactlyOnce), pt(Bare, SinkRedis, AtLeastOnce), 0.7),
	)
	alloc := Target{Name: "identity transform chain: allocations per record", Want: "0", Unit: "allocs/record", Limit: 0, AtMost: true}
	for _, m := range micro {
		if m.Name == "BenchmarkChainIdentity" {
			alloc.Measured, alloc.Known = m.AllocsPerOp, true
		}
	}
	rss := Target{Name: "connectd peak RSS (largest over all connectd runs)", Want: "< 256 MiB", Unit: "MiB", Limit: 256, AtMost: true}
	for _, a := range aggs {
		if a.Scenario.System == Connectd && a.PeakRSS > 0 {
			rss.Measured, rss.Known = max(rss.Measured, float64(a.PeakRSS)/(1<<20)), true
		}
	}
	return append(ts, alloc, rss)
}
