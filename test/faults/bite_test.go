package faults

import (
	"strings"
	"testing"
)

const exposition = `# HELP connectd_batches_aborted_total Batches that did not commit, by reason: abortable, fenced, commit_unknown, fatal.
# TYPE connectd_batches_aborted_total counter
connectd_batches_aborted_total{connector="kafka-eo",reason="abortable"} 3
connectd_batches_aborted_total{connector="kafka-eo",reason="fenced"} 1
connectd_batches_aborted_total{connector="kafka-eo",reason="commit_unknown"} 2
connectd_batches_aborted_total{connector="redis-alo",reason="fatal"} 0
connectd_batches_committed_total{connector="kafka-eo"} 812
# TYPE connectd_fenced_total counter
connectd_fenced_total{connector="kafka-eo"} 1
connectd_twophase_resolved_total{connector="twophase-eo",outcome="committed"} 2
connectd_twophase_resolved_total{connector="twophase-eo",outcome="rolled_back"} 1
go_goroutines 57
`

func TestParseCounters(t *testing.T) {
	c, err := ParseCounters(exposition)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c["kafka-eo"], (Bite{Aborts: 4, Fenced: 1, Unknown: 2}); got != want {
		t.Errorf("kafka-eo: %+v, want %+v", got, want)
	}
	if got, want := c["twophase-eo"], (Bite{Resolved: 3}); got != want {
		t.Errorf("twophase-eo: %+v, want %+v", got, want)
	}
	if got := c["redis-alo"]; got.Total() != 0 {
		t.Errorf("redis-alo: %+v, want nothing", got)
	}
	if _, err := ParseCounters("connectd_fenced_total{connector=\"x\" 1"); err == nil {
		t.Error("unterminated labels parsed")
	}
}

// The window counts what happened inside it, in every incarnation of a
// process: one killed after its last scrape keeps what it counted, one
// started inside the window counts from zero, one's count before the
// window is left out, and scrapes after the window closed are ignored.
func TestWindow(t *testing.T) {
	w := NewWindow()
	w.Observe("a1", Counters{"k": {Aborts: 5, Unknown: 1}})
	w.Open()
	w.Observe("a1", Counters{"k": {Aborts: 7, Unknown: 1}}) // a1's last word before its SIGKILL
	w.Observe("a2", Counters{"k": {Fenced: 1}})             // its heir
	w.Observe("b1", Counters{"k": {Resolved: 2}, "other": {Aborts: 9}})
	w.Close()
	w.Observe("b1", Counters{"k": {Resolved: 50}})
	if got, want := w.Bite("k"), (Bite{Aborts: 2, Fenced: 1, Resolved: 2}); got != want {
		t.Fatalf("bite %+v, want %+v", got, want)
	}
	if got := w.Bite("absent"); got.Total() != 0 {
		t.Fatalf("a connector nobody ran bit %+v", got)
	}
}

func TestBiteString(t *testing.T) {
	b := Bite{Aborts: 2, Fenced: 1, Unknown: 3, Resolved: 4, OutputAborts: 5}
	if s := b.String(); s != "2/1/3, 4 resolved, 5 abort markers" {
		t.Fatalf("%q", s)
	}
	if s := (Bite{}).String(); !strings.HasPrefix(s, "0/0/0") {
		t.Fatalf("%q", s)
	}
}

// The window stage counters: restores count from the window's opening in
// every incarnation (an heir from zero), and a process that aggregated
// records without loading state is named, whether it ran before the
// window or not.
func TestWindowStages(t *testing.T) {
	w := NewWindow()
	w.ObserveStage("a1", "w", StageCounters{Restores: 6, RestoredWindows: 60, Aggregated: 900})
	w.Open()
	w.ObserveStage("a1", "w", StageCounters{Restores: 8, RestoredWindows: 75, Aggregated: 1500}) // last word before a SIGKILL
	w.ObserveStage("a2", "w", StageCounters{Restores: 3, RestoredWindows: 30, Aggregated: 40})   // its heir
	w.ObserveStage("b1", "w", StageCounters{Aggregated: 70})                                     // began from empty windows
	w.ObserveStage("b1", "plain", StageCounters{})
	w.ObserveStage("c1", "w", StageCounters{}) // started, aggregated nothing yet
	w.Close()
	w.ObserveStage("a2", "w", StageCounters{Restores: 90, Aggregated: 90})
	if b := w.Bite("w"); b.Restores != 5 || b.RestoredWindows != 45 {
		t.Fatalf("restores in the window: %d of %d windows, want 5 (2 by a1, 3 by its heir) of 45 (15 + 30)", b.Restores, b.RestoredWindows)
	}
	if got := w.Unrestored("w"); len(got) != 1 || got[0] != "b1" {
		t.Fatalf("unrestored: %v, want [b1]", got)
	}
	if restored, aggregated := w.Heirs("w"); restored != 1 || aggregated != 2 {
		t.Fatalf("heirs: %d restored, %d aggregated; want 1 (a2), 2 (a2, b1)", restored, aggregated)
	}
	if got := w.Unrestored("plain"); len(got) != 0 {
		t.Fatalf("unrestored of a connector that aggregated nothing: %v", got)
	}
	if s := (Bite{Aborts: 1, Restores: 4, RestoredWindows: 17}).String(); s != "1/0/0, 4 state restores (17 windows)" {
		t.Fatalf("%q", s)
	}
	if (Bite{Restores: 1}).Total() != 1 {
		t.Fatal("a state restore is not counted as a bite")
	}
}
