package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A batch histogram counts what a prometheus.Histogram with the same
// buckets counts, value for value, bounds included, across batches, and
// skips zero timestamps; a deleted series is no longer collected.
func TestBatchHistogramMatchesPrometheus(t *testing.T) {
	bounds := prometheus.ExponentialBuckets(0.001, 2, 16)
	vec := newBatchHistogramVec("test_seconds", "test", bounds, "connector")
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref_seconds", Help: "ref", Buckets: bounds})

	at := time.Unix(1_700_000_000, 0)
	var batch []time.Time
	add := func(d time.Duration) {
		batch = append(batch, at.Add(-d))
		ref.Observe(max(d, 0).Seconds())
	}
	h := vec.with("copy")
	for _, b := range bounds { // on each bound, just under and just over
		d := time.Duration(math.Round(b * 1e9))
		add(d)
		add(d - 1)
		add(d + 1)
	}
	add(-time.Second) // a timestamp after the commit counts as 0
	add(time.Hour)    // +Inf
	batch = append(batch, time.Time{})
	h.observeSince(at, batch[:len(batch)/2])
	h.observeSince(at, batch[len(batch)/2:])
	h.observeSince(at, nil)

	got := collectOne(t, vec).GetHistogram()
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	if got.GetSampleCount() != want.GetHistogram().GetSampleCount() {
		t.Fatalf("count %d, want %d", got.GetSampleCount(), want.GetHistogram().GetSampleCount())
	}
	if math.Abs(got.GetSampleSum()-want.GetHistogram().GetSampleSum()) > 1e-9 {
		t.Fatalf("sum %v, want %v", got.GetSampleSum(), want.GetHistogram().GetSampleSum())
	}
	for i, b := range want.GetHistogram().GetBucket() {
		g := got.GetBucket()[i]
		if g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
			t.Fatalf("bucket %d: le %v count %d, want le %v count %d", i, g.GetUpperBound(), g.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
		}
	}

	vec.delete("copy")
	ch := make(chan prometheus.Metric, 1)
	vec.Collect(ch)
	if len(ch) != 0 {
		t.Fatal("a deleted series is still collected")
	}
}

func collectOne(t *testing.T, c prometheus.Collector) *dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 2)
	c.Collect(ch)
	if len(ch) != 1 {
		t.Fatalf("%d series, want 1", len(ch))
	}
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return &m
}
