package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/bounded"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
)

// Connectors with a bounded: block (config.Bounded) in a streaming
// daemon. Each time such a connector starts (the daemon's start, a
// create, resume, restart or config change) its stops are captured anew,
// with the bounded-run batching defaults (startBlockLocked); a watcher
// reads its committed checkpoint and, once every stop is reached, stops
// it and shows it FINISHED (watchBlock). It is not restarted; its
// checkpoint stays, so a restart — of the connector or of the daemon —
// runs it again from there to its stops of then: for until: end, the new
// end; for a time or explicit offsets, the same stops, which a finished
// run has reached already. With `connectd run --until` the flag's stops
// apply to every connector instead (captureStopsLocked) and the daemon
// waits for them all (WaitBounded).

// blockCaptureTimeout bounds the capture of one connector's stops. It runs
// with the daemon's lock held, as the capture of --until does at Start, so
// a broker that does not answer must not hold the admin API for long; the
// connector is then FAILED, and a restart tries again.
const blockCaptureTimeout = 10 * time.Second

// startBlockLocked prepares e's start: under a bounded: block it captures
// e's stops, which its sources then never read past (Build takes them from
// d.jobs through Env.Stops), and gives it the bounded-run batching
// defaults. It does nothing for a connector without a block, nor under
// --until, whose stops Start captured for every connector. An error means
// e must not start: it would run unbounded.
func (d *Daemon) startBlockLocked(e *entry) error {
	e.finished = ""
	name, b := e.spec.Conf.Name, e.spec.Conf.Bounded
	if d.Until != nil {
		return nil
	}
	if b == nil {
		delete(d.jobs, name) // a block removed by a config change
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(d.brokersLocked()...)}, d.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("bounded %s: %w", b, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(d.ctx, blockCaptureTimeout)
	defer cancel()
	j, err := captureJob(ctx, kadm.NewClient(cl), e.spec, b.Until, b.Stops())
	if err != nil {
		return fmt.Errorf("bounded %s: capturing the stops: %w", b, err)
	}
	if d.jobs == nil {
		d.jobs = map[string]job{}
	}
	d.jobs[name] = j
	d.env.Stops = d.stopsLocked
	e.spec.Conf.BoundedDefaults()
	d.log.Info("bounded connector starting", "connector", name, "bounded", b.String(), "partitions", len(j.stops),
		"records_at_most", j.total(), "commit_interval", e.spec.Conf.CommitInterval.D(), "batch_max_records", e.spec.Conf.BatchMaxRecords)
	return nil
}

// watchBlockLocked starts, for a connector whose block startBlockLocked
// captured, the watcher of the run that ctx ends.
func (d *Daemon) watchBlockLocked(ctx context.Context, e *entry) {
	j, ok := d.jobs[e.spec.Conf.Name]
	if d.Until != nil || e.spec.Conf.Bounded == nil || !ok {
		return
	}
	store := pipeline.Offsets(e.spec, d.connectorEnv(e.spec.Conf.Name, "offsets"))
	go d.watchBlock(ctx, e, store, j)
}

// watchBlock polls the committed checkpoint of e's run every boundedPoll
// until it has reached every stop of j, then ends the run and marks e
// FINISHED. A run ended otherwise (a stop, restart, config change or the
// daemon stopping: ctx) ends the watch; a failed run is left FAILED.
func (d *Daemon) watchBlock(ctx context.Context, e *entry, store pipeline.OffsetStore, j job) {
	tick := time.NewTicker(boundedPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cp, err := store.Get(ctx)
		if err != nil {
			continue // read again at the next tick; a failure shows in the connector's status
		}
		if _, parts := bounded.Remaining(cp, j.stops, j.starts); parts > 0 {
			continue
		}
		d.mu.Lock()
		if ctx.Err() != nil { // ended meanwhile by whoever halted it
			d.mu.Unlock()
			return
		}
		stop := e.stop
		if stop == nil {
			d.mu.Unlock()
			return
		}
		e.stop = nil
		e.finished = fmt.Sprintf("finished at %s: committed its input up to its stops (bounded %s, %d partitions); a restart runs it again to its stops of then",
			time.Now().UTC().Format(time.RFC3339), e.spec.Conf.Bounded, len(j.stops))
		d.mu.Unlock()
		stop() // the open batch holds nothing past the stops: it commits or aborts empty
		d.log.Info("bounded connector finished", "connector", e.spec.Conf.Name, "bounded", e.spec.Conf.Bounded.String())
		return
	}
}

// unstarted is the runner of a connector that could not start: FAILED,
// saying why, until a restart tries again.
type unstarted struct {
	name, guarantee string
	err             error
}

var _ connector.Runner = (*unstarted)(nil)

func (u *unstarted) Name() string              { return u.name }
func (u *unstarted) Run(context.Context) error { return u.err }
func (u *unstarted) Pause()                    {}
func (u *unstarted) Resume()                   {}
func (u *unstarted) MarkFailed(err error)      { u.err = err }
func (u *unstarted) Status() connector.Status {
	return connector.Status{Name: u.name, State: connector.Failed, Guarantee: u.guarantee, Error: u.err.Error(),
		Aborts: map[string]uint64{}, Partitions: []connector.PartitionStatus{}}
}
