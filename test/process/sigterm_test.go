package process_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// sigtermCycles is how many times each SIGTERM test stops and restarts the
// instance mid-stream.
const sigtermCycles = 5

// TestSIGTERMFinishesOpenBatch: SIGTERM in the middle of a stream (inside a
// batch with records in it) makes connectd stop its connector and exit 0
// within shutdown_timeout, leaving no transaction open on the broker; a
// restart picks up where it stopped. Done sigtermCycles times, then drained:
// exactly_once must be exactly once, with every batch open at a SIGTERM
// committed, not aborted; at_least_once must lose nothing and duplicate
// nothing, since a clean stop commits the open batch's checkpoint with it.
// Each SIGTERM lands while a batch has records in flight: an open
// transaction with output in it (exactly_once), output written past the
// committed input (at_least_once).
func TestSIGTERMFinishesOpenBatch(t *testing.T) {
	t.Parallel()
	for _, guarantee := range []string{"exactly_once", "at_least_once"} {
		t.Run(guarantee, func(t *testing.T) {
			t.Parallel()
			runSIGTERM(t, guarantee)
		})
	}
}

func runSIGTERM(t *testing.T, guarantee string) {
	p := newPipe(t)
	const shutdownTimeout = 10 * time.Second
	cfg := p.writeConfig(connectorConfig{
		guarantee:          guarantee,
		commitInterval:     "1s", // long batches: SIGTERM lands inside one with records in it
		transactionTimeout: "60s",
		sessionTimeout:     "6s",
		shutdownTimeout:    shutdownTimeout.String(),
	})
	rng := rand.New(rand.NewPCG(seed(t), 2))
	start := time.Now()
	p.produce(0, minInput)
	id := p.instanceID("t")
	inst := startInstance(t, cfg, id)
	in := p.startStream(minInput, 1000)
	p.waitCommitted(minInput/2, 2*time.Minute, inst)

	exactlyOnce := guarantee == "exactly_once"
	committedOpen, abortedOpen := 0, 0
	for cycle := 1; cycle <= sigtermCycles; cycle++ {
		if exactlyOnce {
			// SIGTERM while the transaction is open with output in
			// it (the broker says so); between transactions would
			// prove less.
			waitFor(t, time.Minute, "an open transaction with output in it", func() bool {
				inst.Alive()
				d, err := p.describeTxn(id)
				return err == nil && d.State == "Ongoing" && len(d.Topics[p.out]) > 0
			})
		} else {
			// SIGTERM while records of the open batch are in the
			// output but not checkpointed: the output's end
			// offsets past the committed input (read in that order;
			// the set transform writes one output per input).
			time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
			waitFor(t, time.Minute, "output written past the committed input", func() bool {
				inst.Alive()
				written, err := p.outputEnd()
				return err == nil && written > p.committed()
			})
		}
		committedBefore := p.committed()
		mark := inst.LogSize()
		inst.kill(syscall.SIGTERM)
		sent := time.Now()
		// Bounded by shutdown_timeout for the batch plus the admin
		// API's shutdown and the exit; no timing is asserted beyond it.
		code := inst.WaitExit(shutdownTimeout + 20*time.Second)
		took := time.Since(sent).Round(time.Millisecond)
		if code != 0 {
			t.Fatalf("SIGTERM %d: exit %d, want 0", cycle, code)
		}
		logged := string(inst.LogFrom(mark))
		for _, want := range []string{`msg="shutting down" signal=terminated`, `msg="connector stopped"`, `msg="connectd stopped"`} {
			if !strings.Contains(logged, want) {
				t.Errorf("SIGTERM %d: log lacks %q:\n%s", cycle, want, logged)
			}
		}
		committedAfter := p.committed()
		if committedAfter < committedBefore {
			t.Fatalf("SIGTERM %d: committed input went back from %d to %d", cycle, committedBefore, committedAfter)
		}
		outcome := "-"
		if exactlyOnce {
			// Whatever the open batch became, nothing may stay open
			// for the broker's transaction timeout to clean up.
			// PrepareCommit and PrepareAbort are decided: the
			// coordinator writes the markers after answering EndTxn
			// (KIP-890), so they are waited out, briefly.
			d, err := p.describeTxn(id)
			for deadline := time.Now().Add(30 * time.Second); err == nil &&
				(d.State == "PrepareCommit" || d.State == "PrepareAbort") && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				d, err = p.describeTxn(id)
			}
			if err != nil {
				t.Fatalf("describe %s: %v", transactionalID(id), err)
			}
			switch outcome = d.State; outcome {
			case "CompleteCommit":
				committedOpen++
			case "CompleteAbort":
				abortedOpen++
			default:
				t.Errorf("SIGTERM %d: after exit the transaction is %s, want it ended", cycle, d.State)
			}
		}
		t.Logf("SIGTERM %d at %.1fs: exit 0 after %v (shutdown_timeout %v); committed input %d -> %d; open transaction ended %s",
			cycle, time.Since(start).Seconds(), took, shutdownTimeout, committedBefore, committedAfter, outcome)
		inst.restart()
		p.waitCommitted(committedAfter+2000, 2*time.Minute, inst)
	}
	if exactlyOnce {
		t.Logf("exactly_once: of %d batches open at SIGTERM, %d committed and %d aborted", sigtermCycles, committedOpen, abortedOpen)
		if abortedOpen > 0 {
			t.Errorf("exactly_once: %d of %d batches open at SIGTERM were aborted, want each committed by the clean stop", abortedOpen, sigtermCycles)
		}
	}

	total := in.stop(t)
	p.waitCommitted(total, 3*time.Minute, inst)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(shutdownTimeout + 20*time.Second); code != 0 {
		t.Fatalf("exit %d after the last SIGTERM, want 0", code)
	}
	if exactlyOnce {
		rep := verifyClean(t, cfg, connectorName, total)
		t.Logf("%.1fs: %s, %d SIGTERMs mid-stream: %d events: %s", time.Since(start).Seconds(), guarantee, sigtermCycles, total, rep)
		return
	}
	r := runVerify(t, cfg, connectorName)
	rep := r.report
	t.Logf("%.1fs: %s, %d SIGTERMs mid-stream: %d events: %s", time.Since(start).Seconds(), guarantee, sigtermCycles, total, rep)
	if rep.Expected != total || rep.Missing != 0 || rep.Unexpected != 0 {
		t.Fatalf("at_least_once after clean stops: %s, want %d expected, none missing or unexpected", rep, total)
	}
	// The stop commits the open batch's records and its checkpoint
	// (connector.Run writes with a context that outlives the stop by
	// shutdown_timeout): a restart re-reads nothing already written.
	if rep.Duplicates > 0 {
		t.Errorf("at_least_once: %d duplicates after %d clean stops, want 0: a stop wrote part of a batch without its checkpoint", rep.Duplicates, sigtermCycles)
	}
}

// outputEnd is the sum of the output topic's end offsets: every record
// written to it, committed or not (at_least_once writes no transactions).
func (p *pipe) outputEnd() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := p.adm.ListEndOffsets(ctx, p.out)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	var perr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			perr = o.Err
		}
		n += o.Offset
	})
	return int(n), perr
}
