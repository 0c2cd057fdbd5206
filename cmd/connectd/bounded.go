package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/connectd/connectd/daemon"
)

// exitInterrupted: a bounded run stopped by a signal before it finished
// (run the same command again to finish the job; nothing is read twice).
const exitInterrupted = 3

// progressLogEvery spaces the progress lines of a bounded run whose stderr
// is not a terminal.
const progressLogEvery = 5 * time.Second

// boundedSummary is what a bounded run prints when it ends.
type boundedSummary struct {
	Outcome    string             `json:"outcome"` // finished, failed, interrupted
	Until      string             `json:"until"`
	Seconds    float64            `json:"seconds"`
	Error      string             `json:"error,omitempty"`
	Connectors []connectorSummary `json:"connectors"`
}

type connectorSummary struct {
	Name          string  `json:"name"`
	State         string  `json:"state"`
	RecordsIn     uint64  `json:"records_in"`
	RecordsOut    uint64  `json:"records_out"`
	DeadLettered  uint64  `json:"dead_lettered"`
	Commits       uint64  `json:"commits"`
	RecordsPerSec float64 `json:"records_per_second"`
}

// waitBounded waits for the bounded run to finish, fail or be interrupted
// by a signal, stops the daemon, prints the summary and returns the exit
// code. Progress goes to stderr: a bar per connector on a terminal, a log
// line every few seconds otherwise.
func waitBounded(d *daemon.Daemon, log *slog.Logger, sigs <-chan os.Signal, started time.Time, stdout, stderr io.Writer, output string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	show := newProgress(stderr, log)
	done := make(chan error, 1)
	go func() { done <- d.WaitBounded(ctx, show) }()
	sum := boundedSummary{Outcome: "finished", Until: d.Until.String()}
	code := exitOK
	select {
	case err := <-done:
		if err != nil {
			sum.Outcome, sum.Error, code = "failed", err.Error(), exitFail
			log.Error("bounded run failed", "err", err)
		}
	case sig := <-sigs:
		cancel()
		<-done
		sum.Outcome, code = "interrupted", exitInterrupted
		log.Info("bounded run interrupted; run the same command again to finish it", "signal", sig.String())
	}
	stopped := make(chan struct{})
	go func() {
		d.Stop() // commits the open batches: everything read up to the stops
		close(stopped)
	}()
	select {
	case <-stopped:
	case sig := <-sigs:
		log.Error("second signal: exiting now without waiting for open batches", "signal", sig.String())
		return exitInterrupted
	}
	sum.Seconds = time.Since(started).Seconds()
	for _, name := range d.Names() {
		st, _ := d.Status(name)
		sum.Connectors = append(sum.Connectors, connectorSummary{Name: name, State: string(st.State),
			RecordsIn: st.RecordsIn, RecordsOut: st.RecordsOut, DeadLettered: st.DeadLettered, Commits: st.Commits,
			RecordsPerSec: float64(st.RecordsIn) / max(sum.Seconds, 1e-9)})
	}
	printSummary(stdout, sum, output)
	return code
}

func printSummary(w io.Writer, sum boundedSummary, output string) {
	if output == "json" {
		b, _ := json.MarshalIndent(sum, "", "  ") // plain data: always marshals
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintf(w, "bounded run %s (until %s) in %.1fs\n", sum.Outcome, sum.Until, sum.Seconds)
	if sum.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", sum.Error)
	}
	for _, c := range sum.Connectors {
		fmt.Fprintf(w, "  %s: %s, %d records in, %d out, %d dead-lettered, %d commits, %.0f records/s\n",
			c.Name, c.State, c.RecordsIn, c.RecordsOut, c.DeadLettered, c.Commits, c.RecordsPerSec)
	}
}

// newProgress returns the progress callback of WaitBounded: bars on a
// terminal (records done of the total before the stops, rate, ETA), else a
// log line per connector every progressLogEvery.
func newProgress(stderr io.Writer, log *slog.Logger) func([]daemon.Progress) {
	f, ok := stderr.(*os.File)
	if ok && term.IsTerminal(int(f.Fd())) {
		bars := map[string]*progressbar.ProgressBar{}
		return func(ps []daemon.Progress) {
			slices.SortFunc(ps, func(a, b daemon.Progress) int { return strings.Compare(a.Connector, b.Connector) })
			for _, p := range ps {
				bar := bars[p.Connector]
				if bar == nil {
					bar = progressbar.NewOptions64(p.Total, progressbar.OptionSetWriter(stderr),
						progressbar.OptionSetDescription(p.Connector), progressbar.OptionShowCount(),
						progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
						progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond))
					bars[p.Connector] = bar
				}
				_ = bar.Set64(p.Total - p.Remaining)
			}
		}
	}
	var last time.Time
	return func(ps []daemon.Progress) {
		if time.Since(last) < progressLogEvery {
			return
		}
		last = time.Now()
		for _, p := range ps {
			log.Info("bounded run progress", "connector", p.Connector, "done", p.Total-p.Remaining, "total", p.Total, "partitions_left", p.Partitions)
		}
	}
}
