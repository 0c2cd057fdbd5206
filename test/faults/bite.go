package faults

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
)

// What a fault schedule hit. A fault that lands between two batches, or on
// a pipeline with nothing to do, proves little about exactly-once: the
// matrix counts, per connector, what its processes reported during the
// fault window, and fails a scenario whose faults bit nothing.

// Bite is what the faults did to one connector during the fault window,
// from its processes' /metrics (Aborts, Fenced, Unknown, Resolved) and
// from its Kafka output (OutputAborts).
type Bite struct {
	// Aborts are batches that did not commit for another reason than an
	// unknown outcome (connectd_batches_aborted_total, reasons abortable,
	// fenced and fatal).
	Aborts int
	// Fenced counts sessions fenced by a newer owner (connectd_fenced_total).
	Fenced int
	// Unknown counts commits whose outcome was not known
	// (connectd_batches_aborted_total{reason="commit_unknown"}).
	Unknown int
	// Resolved counts prepared transactions a two-phase connector's
	// recovery found in doubt and resolved (connectd_twophase_resolved_total).
	Resolved int
	// OutputAborts counts abort markers in the connector's Kafka output
	// and dead-letter partitions: transactions that wrote records and were
	// aborted, by the connector or by its heir's epoch bump. They outlive
	// the process, so they show what a SIGKILL left open.
	OutputAborts int
	// Restores counts a windowed connector's window state loads from its
	// sink (status window.state_restores): after a crash or a rebalance
	// the partitions' new owner loads them, after an abort the owner
	// itself (it drops the batch's state), so each shows the faults
	// reaching its state.
	Restores int
	// RestoredWindows counts the windows those loads brought back
	// (status window.windows_restored): reported, not asserted. Lost
	// state shows in verify's value check, which recomputes every window.
	RestoredWindows int
}

// Total is everything the faults hit.
func (b Bite) Total() int {
	return b.Aborts + b.Fenced + b.Unknown + b.Resolved + b.OutputAborts + b.Restores
}

// String is the table cell: aborts/fenced/unknown, then what else bit.
func (b Bite) String() string {
	s := fmt.Sprintf("%d/%d/%d", b.Aborts, b.Fenced, b.Unknown)
	if b.Resolved > 0 {
		s += fmt.Sprintf(", %d resolved", b.Resolved)
	}
	if b.OutputAborts > 0 {
		s += fmt.Sprintf(", %d abort markers", b.OutputAborts)
	}
	if b.Restores > 0 {
		s += fmt.Sprintf(", %d state restores (%d windows)", b.Restores, b.RestoredWindows)
	}
	return s
}

// Add sums two bites.
func (b Bite) Add(o Bite) Bite {
	return Bite{Aborts: b.Aborts + o.Aborts, Fenced: b.Fenced + o.Fenced, Unknown: b.Unknown + o.Unknown,
		Resolved: b.Resolved + o.Resolved, OutputAborts: b.OutputAborts + o.OutputAborts,
		Restores: b.Restores + o.Restores, RestoredWindows: b.RestoredWindows + o.RestoredWindows}
}

// Counters are the fault counters of one /metrics exposition, per
// connector.
type Counters map[string]Bite

// ParseCounters reads the fault counters from a Prometheus text
// exposition; other metrics are ignored.
func ParseCounters(text string) (Counters, error) {
	out := Counters{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		conn := labels["connector"]
		b := out[conn]
		switch name {
		case "connectd_batches_aborted_total":
			if labels["reason"] == "commit_unknown" {
				b.Unknown += int(value)
			} else {
				b.Aborts += int(value)
			}
		case "connectd_fenced_total":
			b.Fenced += int(value)
		case "connectd_twophase_resolved_total":
			b.Resolved += int(value)
		default:
			continue
		}
		out[conn] = b
	}
	return out, nil
}

// parseSample splits one sample line, `name{k="v",...} value`.
func parseSample(line string) (string, map[string]string, float64, error) {
	labels := map[string]string{}
	name, rest := line, ""
	if i := strings.IndexAny(line, "{ "); i >= 0 {
		name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			return "", nil, 0, fmt.Errorf("metrics: unterminated labels: %q", line)
		}
		for pair := range strings.SplitSeq(rest[1:end], ",") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				continue
			}
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			labels[k] = v
		}
		rest = rest[end+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, fmt.Errorf("metrics: no value: %q", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("metrics: %q: %w", line, err)
	}
	return name, labels, v, nil
}

// Window accumulates the fault counters of every process of a scenario
// (each incarnation of each instance, told apart by its admin address)
// over the fault window. Counters live in the process and die with it:
// the last scrape before a process ends is its final word, so the window
// keeps each process's latest counters and subtracts what it had when
// the window opened (nothing, for a process started later).
type Window struct {
	mu     sync.Mutex
	state  int                 // 0 before, 1 open, 2 closed
	latest map[string]Counters // by process
	base   map[string]Counters // at the window's opening
	// The window stages' counters (from each connector's status), by
	// process and connector, latest and at the window's opening.
	stages, stagesBase map[string]map[string]StageCounters
}

// StageCounters are a window stage's counters in one process: state loads
// and records aggregated.
type StageCounters struct{ Restores, RestoredWindows, Aggregated uint64 }

// NewWindow returns a window not yet open.
func NewWindow() *Window {
	return &Window{latest: map[string]Counters{}, base: map[string]Counters{},
		stages: map[string]map[string]StageCounters{}, stagesBase: map[string]map[string]StageCounters{}}
}

// ObserveStage records the window stage counters of connector in process
// proc; after Close it is ignored.
func (w *Window) ObserveStage(proc, connector string, c StageCounters) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state >= 2 {
		return
	}
	if w.stages[proc] == nil {
		w.stages[proc] = map[string]StageCounters{}
	}
	w.stages[proc][connector] = c
}

// Heirs counts the processes that reported connector's stage only after
// the window opened (restarted after a crash, or joined) and restored
// state, and those of them that aggregated records.
func (w *Window) Heirs(connector string) (restored, aggregated int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for proc, cs := range w.stages {
		c, ok := cs[connector]
		if _, before := w.stagesBase[proc][connector]; !ok || before {
			continue
		}
		if c.Restores > 0 {
			restored++
		}
		if c.Aggregated > 0 {
			aggregated++
		}
	}
	return restored, aggregated
}

// Unrestored lists the processes whose window stage of connector
// aggregated records without loading any state: a process that restarted
// after a crash, or took partitions over, and began from empty windows
// instead of the checkpoint's. The stage loads a partition's state before
// it adds the partition's first record, so every scrape of a correct
// process that aggregated shows a restore.
func (w *Window) Unrestored(connector string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for proc, cs := range w.stages {
		if c, ok := cs[connector]; ok && c.Aggregated > 0 && c.Restores == 0 {
			out = append(out, proc)
		}
	}
	return out
}

// Observe records a scrape of process proc; after Close it is ignored.
func (w *Window) Observe(proc string, c Counters) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state < 2 {
		w.latest[proc] = c
	}
}

// Open starts the window: what every process has counted so far is left
// out.
func (w *Window) Open() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for proc, c := range w.latest {
		w.base[proc] = c
	}
	for proc, c := range w.stages {
		w.stagesBase[proc] = maps.Clone(c) // ObserveStage updates the inner maps
	}
	w.state = 1
}

// Close ends the window; later scrapes are ignored.
func (w *Window) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = 2
}

// Bite is what connector's processes counted inside the window.
func (w *Window) Bite(connector string) Bite {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b Bite
	for proc, c := range w.latest {
		now, then := c[connector], w.base[proc][connector]
		b = b.Add(Bite{Aborts: now.Aborts - then.Aborts, Fenced: now.Fenced - then.Fenced,
			Unknown: now.Unknown - then.Unknown, Resolved: now.Resolved - then.Resolved})
	}
	for proc, cs := range w.stages {
		now, ok := cs[connector]
		if !ok {
			continue
		}
		then := w.stagesBase[proc][connector]
		b.Restores += int(now.Restores - then.Restores)
		b.RestoredWindows += int(now.RestoredWindows - then.RestoredWindows)
	}
	return b
}
