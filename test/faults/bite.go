package faults

import (
	"fmt"
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
}

// Total is everything the faults hit.
func (b Bite) Total() int { return b.Aborts + b.Fenced + b.Unknown + b.Resolved + b.OutputAborts }

// String is the table cell: aborts/fenced/unknown, then what else bit.
func (b Bite) String() string {
	s := fmt.Sprintf("%d/%d/%d", b.Aborts, b.Fenced, b.Unknown)
	if b.Resolved > 0 {
		s += fmt.Sprintf(", %d resolved", b.Resolved)
	}
	if b.OutputAborts > 0 {
		s += fmt.Sprintf(", %d abort markers", b.OutputAborts)
	}
	return s
}

// Add sums two bites.
func (b Bite) Add(o Bite) Bite {
	return Bite{Aborts: b.Aborts + o.Aborts, Fenced: b.Fenced + o.Fenced, Unknown: b.Unknown + o.Unknown,
		Resolved: b.Resolved + o.Resolved, OutputAborts: b.OutputAborts + o.OutputAborts}
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
}

// NewWindow returns a window not yet open.
func NewWindow() *Window {
	return &Window{latest: map[string]Counters{}, base: map[string]Counters{}}
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
	return b
}
