package bench

import (
	"math"
	"slices"
	"time"
)

// LatencySummary is the distribution of end-to-end latencies of one run:
// producer timestamp to visible in the sink under read_committed.
type LatencySummary struct {
	N                    int
	P50, P99, P999, Max  time.Duration
	PollResolution       time.Duration // added uncertainty of polled sinks; 0 for consumed Kafka output
	Dropped              int           // records produced but never seen visible before the deadline
	MeasuredAtRecordsSec float64       // the offered rate during the measurement
}

// Summarize computes percentiles by nearest rank (the smallest sample with
// at least p of the samples at or below it), which never reports a latency
// no record had. It sorts d in place.
func Summarize(d []time.Duration) LatencySummary {
	if len(d) == 0 {
		return LatencySummary{}
	}
	slices.Sort(d)
	return LatencySummary{
		N:    len(d),
		P50:  Percentile(d, 0.50),
		P99:  Percentile(d, 0.99),
		P999: Percentile(d, 0.999),
		Max:  d[len(d)-1],
	}
}

// Percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return sorted[rank]
}

// Median returns the median of xs (the mean of the two middle values for
// an even count) without modifying xs; NaN for none. Runs are repeated and
// their median reported because this machine is shared: one slow run
// (another engineer's test suite starting) must not decide a ratio.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Spread returns the smallest and largest of xs.
func Spread(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// Ratio is a/b, NaN when either is unknown or b is zero.
func Ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// DrainRate is the steady-state throughput of a backlog drain from progress
// samples: records per second between the first sample that shows progress
// and the first that shows all want records. Start-up (process start, JVM
// warm-up, group join) is excluded, the same way for every system. It
// returns the rate, the elapsed time between those samples, and false if
// the samples never show both.
func DrainRate(samples []Progress, want int64) (rate float64, elapsed time.Duration, ok bool) {
	var first, last *Progress
	for i := range samples {
		s := &samples[i]
		if first == nil && s.Records > 0 {
			first = s
		}
		if s.Records >= want {
			last = s
			break
		}
	}
	if first == nil || last == nil || !last.At.After(first.At) {
		return 0, 0, false
	}
	elapsed = last.At.Sub(first.At)
	return float64(want-first.Records) / elapsed.Seconds(), elapsed, true
}

// Progress is one sample of a run: records visible in the sink and the CPU
// time the process under test had used by then.
type Progress struct {
	At      time.Time
	Records int64
	CPU     time.Duration
}

// CPUBetween is the CPU time used between the samples DrainRate measured
// from (the first with progress) and to (the first complete one).
func CPUBetween(samples []Progress, want int64) time.Duration {
	var from, to time.Duration = -1, -1
	for _, s := range samples {
		if from < 0 && s.Records > 0 {
			from = s.CPU
		}
		if s.Records >= want {
			to = s.CPU
			break
		}
	}
	if from < 0 || to < 0 {
		return 0
	}
	return to - from
}
