package faults

import (
	"strings"
	"testing"
)

// TestScenarioSummaryLabels: a scenario whose connectors saw no abort is
// flagged "nothing bit" unless its fault checked its own bite, and then
// the summary says what that fault hit instead.
func TestScenarioSummaryLabels(t *testing.T) {
	rows := []Row{
		{Scenario: "quiet", Sink: "kafka", Guarantee: "exactly_once", Faults: "nothing"},
		{Scenario: "restart", Sink: "kafka", Guarantee: "exactly_once", FaultChecked: true,
			Faults: "rolling restart of 3 brokers (connectd connections each shutdown ended: 7, 4, 5)"},
		{Scenario: "kill", Sink: "kafka", Guarantee: "exactly_once", Bite: Bite{Aborts: 2}},
	}
	got := scenarioSummary(rows)
	line := func(name string) string {
		for l := range strings.SplitSeq(got, "\n") {
			if strings.HasPrefix(l, "| "+name+" |") {
				return l
			}
		}
		t.Fatalf("no summary line for %s in:\n%s", name, got)
		return ""
	}
	if l := line("quiet"); !strings.Contains(l, "**nothing bit**") {
		t.Errorf("a scenario nothing hit is not flagged: %s", l)
	}
	if l := line("restart"); strings.Contains(l, "nothing bit") || !strings.Contains(l, "ended: 7, 4, 5") {
		t.Errorf("a self-checked fault is flagged or not named: %s", l)
	}
	if l := line("kill"); strings.Contains(l, "nothing bit") {
		t.Errorf("a scenario with aborts is flagged: %s", l)
	}
}
