package faults

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Row is one cell of the matrix: a scenario run against one sink setup with
// one guarantee.
type Row struct {
	Scenario  string
	Sink      string
	Guarantee string
	Events    int // committed input events (what the output must reflect)
	Findings  Findings
	Recovery  time.Duration // from the end of the fault schedule to the drained pipeline
	Faults    string        // what the schedule did, e.g. "3 SIGKILL"
	// FaultChecked: a fault of the schedule checked its own bite (the
	// scenario fails if it hit nothing) and Faults says what it hit.
	FaultChecked bool
	Skipped      string // why the cell did not run, if it did not
	// Bite is what the faults hit in this connector during the fault
	// window; Input replaces it for a scenario whose fault is its input.
	Bite  Bite
	Input string
	// MustDuplicate: an at_least_once cell whose fault can duplicate
	// output; without a duplicate the fault did not bite and the cell
	// fails. NoDupsWhy says why an at_least_once cell need not duplicate.
	MustDuplicate bool
	NoDupsWhy     string
}

// Pass says whether the row meets its guarantee.
func (r Row) Pass() bool {
	if r.Skipped != "" {
		return true
	}
	if r.Guarantee == "at_least_once" {
		return r.Findings.AtLeastOnce()
	}
	return r.Findings.ExactlyOnce()
}

// Dups are the at_least_once duplicates: output records beyond the
// expected and writes applied more than once.
func (r Row) Dups() int { return r.Findings.Duplicates + r.Findings.ApplyCount }

// Bit says whether the cell shows its fault's bite where it must: an
// at_least_once cell whose fault can duplicate did duplicate (the scenario
// fails only if none of its such cells did).
func (r Row) Bit() bool { return r.Skipped != "" || !r.MustDuplicate || r.Dups() > 0 }

// WindowBit says whether a windowed cell shows its fault's bite: each
// windowed connector runs only in scenarios whose faults reach its sink or
// its processes, so each must have had batches undone or state restored
// during the fault window (its own bite, not the scenario's).
func (r Row) WindowBit() bool {
	return r.Skipped != "" || !r.Findings.Windowed || r.Input != "" || r.Bite.Total() > 0
}

// Verdict is the row's last column.
func (r Row) Verdict() string {
	switch {
	case r.Skipped != "":
		return "not run: " + r.Skipped
	case !r.Pass():
		return "**FAIL**"
	case !r.WindowBit():
		return "**FAIL** (nothing bit this windowed connector)"
	case !r.Bit():
		return "ok (no duplicate in this cell this run; the scenario must duplicate somewhere)"
	case r.Guarantee == "at_least_once" && r.Dups() > 0:
		return "ok (duplicates allowed)"
	default:
		return "ok"
	}
}

// BiteCell is the "fault bit" column.
func (r Row) BiteCell() string {
	if r.Input != "" {
		return r.Input
	}
	s := r.Bite.String()
	if r.Guarantee == "at_least_once" {
		s += fmt.Sprintf(", %d dups", r.Dups())
	}
	return s
}

// WriteMarkdown writes rows as the RESULTS.md table, preceded by a header
// saying how the run was made, followed by a summary per scenario and per
// guarantee.
func WriteMarkdown(w io.Writer, title string, header []string, rows []Row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for _, h := range header {
		fmt.Fprintf(&b, "%s\n", h)
	}
	if len(header) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(scenarioSummary(rows))
	b.WriteString("| scenario | faults | sink | guarantee | events | fault bit | duplicates | missing | aborted visible | apply≠1 | order | watcher dups | checkpoint gaps | hanging txns | expected | dead letters | values≠ | recovery | result |\n")
	b.WriteString("|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|\n")
	for _, r := range rows {
		f := r.Findings
		if r.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | | | | | | | | | | | | | | | %s |\n", r.Scenario, r.Faults, r.Sink, r.Guarantee, r.Verdict())
			continue
		}
		values := "" // only a windowed connector's results have values to compare
		if f.Windowed {
			values = fmt.Sprint(f.ValueMismatches)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Faults, r.Sink, r.Guarantee, r.Events, r.BiteCell(), f.Duplicates, f.Missing+f.Unexpected, f.AbortedVisible,
			f.ApplyCount, f.OrderViolations, f.WatcherDuplicates, f.CheckpointGaps+f.Unchecked, f.Hanging,
			f.ExpectedCell(), f.DeadLetterCell(), values, r.Recovery.Round(100*time.Millisecond), r.Verdict())
	}
	b.WriteString("\n")
	b.WriteString(summary(rows))
	b.WriteString(noDupsNotes(rows))
	_, err := io.WriteString(w, b.String())
	return err
}

// scenarioSummary is one line per scenario: what its faults hit in all
// its connectors together, and the at_least_once duplicates per sink.
func scenarioSummary(rows []Row) string {
	var order []string
	type sum struct {
		bite   Bite
		input  string
		faults string // set when the faults checked their own bite
		dups   []string
		bit    bool
		cells  int
	}
	by := map[string]*sum{}
	for _, r := range rows {
		s := by[r.Scenario]
		if s == nil {
			s = &sum{}
			by[r.Scenario] = s
			order = append(order, r.Scenario)
		}
		if r.Skipped != "" {
			continue
		}
		s.cells++
		s.bite = s.bite.Add(r.Bite)
		s.input = r.Input
		if r.FaultChecked {
			s.faults = r.Faults
		}
		if r.Guarantee == "at_least_once" {
			mark := ""
			if r.MustDuplicate {
				mark = " (required)"
			}
			s.dups = append(s.dups, fmt.Sprintf("%s %d%s", r.Sink, r.Dups(), mark))
			if r.Dups() > 0 {
				s.bit = true
			}
		}
	}
	var b strings.Builder
	b.WriteString("| scenario | fault bit, all connectors (aborts/fenced/unknown, more) | at_least_once duplicates |\n|---|---|---|\n")
	for _, name := range order {
		s := by[name]
		if s.cells == 0 {
			continue
		}
		bit := s.bite.String()
		if s.input != "" {
			bit = s.input
		} else if s.bite.Total() == 0 && !s.bit {
			if s.faults != "" {
				// The connectors rode the fault out without an abort; the
				// fault's own check is what shows it bit.
				bit += " (no abort; the fault checked itself: " + s.faults + ")"
			} else {
				bit += " **nothing bit**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, bit, strings.Join(s.dups, ", "))
	}
	b.WriteString("\n")
	return b.String()
}

// noDupsNotes lists, per scenario, why its at_least_once cells that need
// not duplicate cannot.
func noDupsNotes(rows []Row) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Skipped != "" || r.Guarantee != "at_least_once" || r.NoDupsWhy == "" {
			continue
		}
		var sinks []string
		for _, o := range rows {
			if o.Scenario == r.Scenario && o.Guarantee == "at_least_once" && o.Skipped == "" && o.NoDupsWhy == r.NoDupsWhy {
				sinks = append(sinks, o.Sink)
			}
		}
		key := r.Scenario + "\x00" + r.NoDupsWhy
		if seen[key] {
			continue
		}
		seen[key] = true
		if b.Len() == 0 {
			b.WriteString("\nat_least_once cells whose fault cannot duplicate by design (not required to):\n")
		}
		fmt.Fprintf(&b, "- %s, %s: %s\n", r.Scenario, strings.Join(sinks, ", "), r.NoDupsWhy)
	}
	return b.String()
}

// summary totals the rows per guarantee.
func summary(rows []Row) string {
	type tot struct{ cells, pass, events, dups, missing, aborted, can, did int }
	by := map[string]*tot{}
	for _, r := range rows {
		if r.Skipped != "" {
			continue
		}
		t := by[r.Guarantee]
		if t == nil {
			t = &tot{}
			by[r.Guarantee] = t
		}
		t.cells++
		if r.Pass() {
			t.pass++
		}
		if r.MustDuplicate {
			t.can++
			if r.Dups() > 0 {
				t.did++
			}
		}
		t.events += r.Events
		t.dups += r.Findings.Duplicates + r.Findings.ApplyCount
		t.missing += r.Findings.Missing + r.Findings.Unexpected
		t.aborted += r.Findings.AbortedVisible
	}
	var wcells, wpass, windows, mismatches, restores, restored int
	for _, r := range rows {
		if r.Skipped == "" && r.Findings.Windowed {
			wcells++
			if r.Pass() && r.WindowBit() {
				wpass++
			}
			windows += r.Findings.Windows
			mismatches += r.Findings.ValueMismatches
			restores += r.Bite.Restores
			restored += r.Bite.RestoredWindows
		}
	}
	gs := make([]string, 0, len(by))
	for g := range by {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	var b strings.Builder
	for _, g := range gs {
		t := by[g]
		fmt.Fprintf(&b, "- %s: %d/%d cells pass; %d events; %d duplicates or re-applications, %d missing, %d aborted visible",
			g, t.pass, t.cells, t.events, t.dups, t.missing, t.aborted)
		if t.can > 0 {
			fmt.Fprintf(&b, "; duplicates in %d of the %d cells whose faults can duplicate", t.did, t.can)
		}
		b.WriteString("\n")
	}
	if wcells > 0 {
		fmt.Fprintf(&b, "- windowed connectors (exactly_once, among the above): %d/%d cells pass; %d windows checked value for value by verify's batch oracle, %d value mismatches; %d window state restores during the fault windows, which brought back %d windows\n",
			wpass, wcells, windows, mismatches, restores, restored)
	}
	return b.String()
}
