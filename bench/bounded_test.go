package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestBoundedScenarios: every bounded scenario of both matrices runs next
// to its streaming partner, and a bounded run with the defaults writes no
// batching keys (so connectd applies its bounded-run defaults) while a
// sweep point writes both.
func TestBoundedScenarios(t *testing.T) {
	for name, scs := range map[string][]Scenario{"bounded": BoundedMatrix(), "bounded-sweep": BoundedSweepMatrix()} {
		in := map[Scenario]bool{}
		for _, s := range scs {
			in[s] = true
		}
		for _, s := range scs {
			if s.Bounded && !in[s.streamingPartner()] {
				t.Errorf("%s: %s without %s", name, s.Name(), s.streamingPartner().Name())
			}
		}
	}
	b := BoundedMatrix()[1]
	if b.Name() != "connectd kafka EO default 100B 12p bounded" || b.slug() != "connectd-kafka-eo-default-100b-12p-bounded" {
		t.Fatalf("name %q, slug %q", b.Name(), b.slug())
	}
	yaml := connectdConfig{Scenario: b, Brokers: []string{"k:9092"}, InputTopics: []string{"in"}}.render()
	if strings.Contains(yaml, "commit.interval") || strings.Contains(yaml, "batch.max.records") {
		t.Errorf("the defaults' config sets batching:\n%s", yaml)
	}
	b.CommitInterval, b.BatchMaxRecords = time.Second, 50000
	if b.Name() != "connectd kafka EO 1s/50k 100B 12p bounded" || strings.Contains(b.slug(), "/") {
		t.Fatalf("name %q, slug %q", b.Name(), b.slug())
	}
	yaml = connectdConfig{Scenario: b, Brokers: []string{"k:9092"}, InputTopics: []string{"in"}}.render()
	if !strings.Contains(yaml, "commit.interval: 1s\n") || !strings.Contains(yaml, "batch.max.records: 50000\n") {
		t.Errorf("a sweep point's config lacks its batching:\n%s", yaml)
	}
}

// TestBoundedReport: the bounded target is judged on the worst round's
// ratio, the report's section shows median and worst, and the raw JSON
// (an unknown steady rate as null) renders the same report again.
func TestBoundedReport(t *testing.T) {
	st, b := BoundedMatrix()[0], BoundedMatrix()[1]
	var results []Result
	for round, v := range []struct{ stream, wall, steady float64 }{{300000, 2.0, 600000}, {250000, 2.5, math.NaN()}, {310000, 3.0, 400000}} {
		results = append(results,
			Result{Run: Run{Scenario: st, Round: round}, Records: 1000000, Expected: 1000000, Output: 1000000, RecordsPerSec: v.stream,
				Wall: 4 * time.Second, Commits: 100, Aborts: 0, CommitShare: 0.5},
			Result{Run: Run{Scenario: b, Round: round}, Records: 1000000, Expected: 1000000, Output: 1000000, RecordsPerSec: 1000000 / v.wall,
				Wall: time.Duration(v.wall * float64(time.Second)), Commits: 20, Aborts: math.NaN(), CommitShare: math.NaN(),
				Bounded: &BoundedResult{Wall: time.Duration(v.wall * float64(time.Second)), Startup: 300 * time.Millisecond, SteadyRate: v.steady, Tail: 50 * time.Millisecond}})
	}
	aggs := AggregateResults(results)
	targets := Targets(results, aggs, nil)
	if len(targets) != 1 {
		t.Fatalf("targets %+v, want only the bounded one", targets)
	}
	// Ratios 1.67, 1.6, 1.08: met on the median, missed on the worst.
	if tg := targets[0]; math.Abs(tg.Measured-1.6) > 1e-9 || math.Abs(tg.Worst()-1000000/3.0/310000) > 1e-9 || tg.Met() {
		t.Fatalf("target %+v (worst %v)", tg, tg.Worst())
	}
	rep := &Report{Date: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), Versions: Versions{Commit: "abc123"},
		Options: Options{Records: 1000000, Rounds: 3}, Results: results, Aggs: aggs, Targets: targets}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	for _, want := range []string{
		"## Bounded runs (issue 16)",
		"| connectd kafka EO default 100B 12p bounded | connectd kafka EO 100ms 100B 12p | 1.60× | 1.08× | 2.50 s | 3.00 s | 500000 |",
		"| 2 | 250000 | 4.00 s | 2.50 s | 400000 | 1.60× | — | 0.30 s | 0.05 s | 20; 100 |",
		"| **worst round** | | | 3.00 s | | 1.08× |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md.String())
	}
	raw, err := json.Marshal(rep.raw())
	if err != nil {
		t.Fatal(err)
	}
	var back rawReport
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	var md2 bytes.Buffer
	fromRaw(back).WriteMarkdown(&md2)
	if md2.String() != md.String() {
		t.Errorf("report from JSON differs:\n%s", md2.String())
	}
}
