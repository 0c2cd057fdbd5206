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
	Skipped   string        // why the cell did not run, if it did not
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

// Verdict is the row's last column.
func (r Row) Verdict() string {
	switch {
	case r.Skipped != "":
		return "not run: " + r.Skipped
	case !r.Pass():
		return "**FAIL**"
	case r.Guarantee == "at_least_once" && r.Findings.Duplicates+r.Findings.ApplyCount > 0:
		return "ok (duplicates allowed)"
	default:
		return "ok"
	}
}

// WriteMarkdown writes rows as the RESULTS.md table, preceded by a header
// saying how the run was made.
func WriteMarkdown(w io.Writer, title string, header []string, rows []Row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for _, h := range header {
		fmt.Fprintf(&b, "%s\n", h)
	}
	if len(header) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| scenario | faults | sink | guarantee | events | duplicates | missing | aborted visible | apply≠1 | order | watcher dups | checkpoint gaps | hanging txns | recovery | result |\n")
	b.WriteString("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		f := r.Findings
		if r.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | | | | | | | | | | | %s |\n", r.Scenario, r.Faults, r.Sink, r.Guarantee, r.Verdict())
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s |\n",
			r.Scenario, r.Faults, r.Sink, r.Guarantee, r.Events, f.Duplicates, f.Missing+f.Unexpected, f.AbortedVisible,
			f.ApplyCount, f.OrderViolations, f.WatcherDuplicates, f.CheckpointGaps, f.Hanging,
			r.Recovery.Round(100*time.Millisecond), r.Verdict())
	}
	b.WriteString("\n")
	b.WriteString(summary(rows))
	_, err := io.WriteString(w, b.String())
	return err
}

// summary totals the rows per guarantee.
func summary(rows []Row) string {
	type tot struct{ cells, pass, events, dups, missing, aborted int }
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
		t.events += r.Events
		t.dups += r.Findings.Duplicates + r.Findings.ApplyCount
		t.missing += r.Findings.Missing + r.Findings.Unexpected
		t.aborted += r.Findings.AbortedVisible
	}
	gs := make([]string, 0, len(by))
	for g := range by {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	var b strings.Builder
	for _, g := range gs {
		t := by[g]
		fmt.Fprintf(&b, "- %s: %d/%d cells pass; %d events; %d duplicates or re-applications, %d missing, %d aborted visible\n",
			g, t.pass, t.cells, t.events, t.dups, t.missing, t.aborted)
	}
	return b.String()
}
