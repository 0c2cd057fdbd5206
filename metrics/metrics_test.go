package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/connectd/connectd/connector"
)

type fakeSource map[string]connector.Status

func (f fakeSource) Names() []string {
	var n []string
	for k := range f {
		n = append(n, k)
	}
	return n
}

func (f fakeSource) Status(name string) (connector.Status, bool) {
	s, ok := f[name]
	return s, ok
}

func TestMetricsLintAndValues(t *testing.T) {
	src := fakeSource{"copy": {
		Name: "copy", State: connector.Running, RecordsIn: 10, RecordsOut: 9, Commits: 2, DeadLettered: 1,
		Aborts:     map[string]uint64{"abortable": 3, "fenced": 1},
		Partitions: []connector.PartitionStatus{{Topic: "in", Partition: 12, Checkpoint: 5, HighWatermark: 8, Lag: 3}},
	}}
	m := New(src)
	now := time.Now()
	m.Observer("copy").Committed(20*time.Millisecond, now, []time.Time{now.Add(-50 * time.Millisecond), {}})
	m.Fenced("copy")

	requireLintClean(t, m)

	want := `
# HELP connectd_records_in_total Input records in committed batches.
# TYPE connectd_records_in_total counter
connectd_records_in_total{connector="copy"} 10
# HELP connectd_consumer_lag_records Offsets between the committed checkpoint and the last stable offset, per input partition.
# TYPE connectd_consumer_lag_records gauge
connectd_consumer_lag_records{connector="copy",partition="12",topic="in"} 3
# HELP connectd_batches_aborted_total Batches that did not commit, by reason: abortable, fenced, commit_unknown, fatal.
# TYPE connectd_batches_aborted_total counter
connectd_batches_aborted_total{connector="copy",reason="abortable"} 3
connectd_batches_aborted_total{connector="copy",reason="fenced"} 1
# HELP connectd_fenced_total Times a connector's session was fenced by a newer owner.
# TYPE connectd_fenced_total counter
connectd_fenced_total{connector="copy"} 1
# HELP connectd_connector_state 1 for the connector's current state, 0 for the others.
# TYPE connectd_connector_state gauge
connectd_connector_state{connector="copy",state="FAILED"} 0
connectd_connector_state{connector="copy",state="FINISHED"} 0
connectd_connector_state{connector="copy",state="PAUSED"} 0
connectd_connector_state{connector="copy",state="RUNNING"} 1
connectd_connector_state{connector="copy",state="STOPPED"} 0
connectd_connector_state{connector="copy",state="UNASSIGNED"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"connectd_records_in_total", "connectd_consumer_lag_records", "connectd_batches_aborted_total",
		"connectd_fenced_total", "connectd_connector_state"); err != nil {
		t.Fatal(err)
	}
	// One latency observation: the zero timestamp is skipped.
	if got := histogramCount(t, m, "connectd_end_to_end_latency_seconds"); got != 1 {
		t.Fatalf("latency observations %d, want 1", got)
	}
	if got := histogramCount(t, m, "connectd_commit_duration_seconds"); got != 1 {
		t.Fatalf("commit observations %d, want 1", got)
	}
}

func histogramCount(t *testing.T, m *Metrics, name string) uint64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// A two-phase connector's in-doubt transactions and resolutions are
// exported, lint-clean; other connectors have no such series.
func TestTwoPhaseMetrics(t *testing.T) {
	src := fakeSource{
		"fanout": {Name: "fanout", State: connector.Running, Aborts: map[string]uint64{},
			TwoPhase: &connector.TwoPhaseStatus{InDoubt: 2, ResolvedCommitted: 3, ResolvedRolledBack: 4}},
		"plain": {Name: "plain", State: connector.Running, Aborts: map[string]uint64{}},
	}
	m := New(src)
	requireLintClean(t, m)
	want := `
# HELP connectd_twophase_in_doubt_transactions Prepared transactions of a two-phase connector found by its last recovery and not resolved yet.
# TYPE connectd_twophase_in_doubt_transactions gauge
connectd_twophase_in_doubt_transactions{connector="fanout"} 2
# HELP connectd_twophase_resolved_total Prepared transactions a two-phase connector's recovery resolved, by outcome: committed, rolled_back.
# TYPE connectd_twophase_resolved_total counter
connectd_twophase_resolved_total{connector="fanout",outcome="committed"} 3
connectd_twophase_resolved_total{connector="fanout",outcome="rolled_back"} 4
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"connectd_twophase_in_doubt_transactions", "connectd_twophase_resolved_total"); err != nil {
		t.Fatal(err)
	}
}

// requireLintClean fails t for every promlint problem in m's registry.
func requireLintClean(t *testing.T, m *Metrics) {
	t.Helper()
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// A connector with a window stage exports its records by outcome, open
// windows, state bytes, results, state restores and idle advances.
func TestWindowMetrics(t *testing.T) {
	src := fakeSource{"win": {
		Name: "win", State: connector.Running, Aborts: map[string]uint64{},
		Window: &connector.WindowStatus{Aggregated: 90, Late: 10, Emitted: 7, OpenWindows: 3, StateBytes: 480, Restores: 4, RestoredWindows: 11, IdleAdvances: 2, IdleLate: 1},
	}}
	m := New(src)
	requireLintClean(t, m)
	want := `
# HELP connectd_window_records_total Records a window stage took, by outcome: aggregated, late (in batches processed, committed or not).
# TYPE connectd_window_records_total counter
connectd_window_records_total{connector="win",outcome="aggregated"} 90
connectd_window_records_total{connector="win",outcome="late"} 10
# HELP connectd_window_open_windows Open windows held by a window stage.
# TYPE connectd_window_open_windows gauge
connectd_window_open_windows{connector="win"} 3
# HELP connectd_window_state_bytes Estimated memory of a window stage's open windows.
# TYPE connectd_window_state_bytes gauge
connectd_window_state_bytes{connector="win"} 480
# HELP connectd_window_results_total Window results emitted (final windows or revisions).
# TYPE connectd_window_results_total counter
connectd_window_results_total{connector="win"} 7
# HELP connectd_window_state_restores_total Partition states a window stage loaded from its sink (at start, after every abort and rebalance).
# TYPE connectd_window_state_restores_total counter
connectd_window_state_restores_total{connector="win"} 4
# HELP connectd_window_restored_windows_total Windows (open, or kept for late updates) the state loads of a window stage brought back.
# TYPE connectd_window_restored_windows_total counter
connectd_window_restored_windows_total{connector="win"} 11
# HELP connectd_window_idle_advances_total Idle partitions whose watermark a window stage raised (watermark.idle_timeout) to close windows.
# TYPE connectd_window_idle_advances_total counter
connectd_window_idle_advances_total{connector="win"} 2
# HELP connectd_window_idle_late_records_total Late records (counted among outcome=late) whose window an idle advance had closed: the input came after its partition was declared idle.
# TYPE connectd_window_idle_late_records_total counter
connectd_window_idle_late_records_total{connector="win"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"connectd_window_records_total", "connectd_window_open_windows", "connectd_window_state_bytes",
		"connectd_window_results_total", "connectd_window_state_restores_total", "connectd_window_restored_windows_total",
		"connectd_window_idle_advances_total", "connectd_window_idle_late_records_total"); err != nil {
		t.Fatal(err)
	}
}
