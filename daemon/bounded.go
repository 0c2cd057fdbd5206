package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/bounded"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
)

// Bounded runs (`connectd run --until`): Start captures each connector's
// stop offsets before the connector starts; WaitBounded reports when every
// connector's committed checkpoint has reached them.

// boundedPoll is how often WaitBounded reads the committed checkpoints.
const boundedPoll = 250 * time.Millisecond

// boundedGlance is how often WaitBounded looks at the connectors' own view
// of their committed checkpoints (their status, no I/O) between those
// reads: when that view has every stop reached, it reads the checkpoints
// at once instead of at the next boundedPoll, which took 125 ms off the
// end of a job on average (in a 2 s benchmark job, 6%).
const boundedGlance = 20 * time.Millisecond

// job is one connector's bounded range.
type job struct {
	stops, starts connector.Checkpoint
}

// Total is the number of records (at most: transaction markers and
// aborted records included) between the log starts and the stops.
func (j job) total() int64 {
	n, _ := bounded.Remaining(nil, j.stops, j.starts)
	return n
}

// captureStopsLocked lists every connector's stops (and the log starts,
// for partitions it never committed) and makes its sources stop there.
// Connectors a bounded run cannot stop are refused, naming them.
func (d *Daemon) captureStopsLocked(ctx context.Context) error {
	d.boundedTuningLocked()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(d.brokersLocked()...)}, d.ClientOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d.jobs = map[string]job{}
	var errs []error
	for name, e := range d.entries {
		j, err := captureJob(ctx, adm, e.spec, *d.Until, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("connector %s: --until: %w", name, err))
			continue
		}
		d.jobs[name] = j
		d.log.Info("bounded run", "connector", name, "until", d.Until.String(), "partitions", len(j.stops), "records_at_most", j.total())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.env.Stops = d.stopsLocked
	return nil
}

// stopsLocked is a connector's stops in a bounded run or under a bounded:
// block, else nil (pipeline.Env.Stops, called while d.mu is held).
func (d *Daemon) stopsLocked(name string) connector.Checkpoint { return d.jobs[name].stops }

// captureJob captures one connector's bounded range: its stops (where u
// says, or the explicit offsets if not nil; a generator stops at its
// count) and its log starts, for partitions it never committed. A
// connector that cannot be bounded is an error saying why.
func captureJob(ctx context.Context, adm *kadm.Client, s *pipeline.Spec, u bounded.Until, explicit map[string]map[int32]int64) (job, error) {
	switch {
	case s.Source.End != nil:
		// A finite source (a generator with a count) is bounded by its
		// own end; its checkpoint (in the offsets topic) starts at 0.
		stops, err := s.Source.End(s.SourceConfig, s.Conf.Name)
		if err != nil {
			return job{}, fmt.Errorf("a bounded run needs a source that ends: %w", err)
		}
		starts := connector.Checkpoint{}
		for tp := range stops {
			starts[tp] = 0
		}
		return job{stops: stops, starts: starts}, nil
	case s.KafkaSrc == nil:
		return job{}, fmt.Errorf("a bounded run needs a kafka source or a source that ends (a generator with a count); a %s source cannot be bounded yet", s.Conf.Source.Type)
	case s.Processor.Window() != nil && s.Processor.Window().Repartition:
		return job{}, errors.New("a bounded run of a repartitioned window stage (repartition: true) is not supported yet")
	}
	var stops connector.Checkpoint
	var err error
	if explicit != nil {
		stops, err = bounded.Explicit(ctx, adm, s.KafkaSrc.Topics, explicit)
	} else {
		stops, err = bounded.Stops(ctx, adm, s.KafkaSrc.Topics, u)
	}
	if err != nil {
		return job{}, err
	}
	starts := stops // start_offset latest: an uncommitted partition starts at its end
	if s.KafkaSrc.StartOffset != "latest" {
		ls, err := adm.ListStartOffsets(ctx, s.KafkaSrc.Topics...)
		if err == nil {
			err = ls.Error()
		}
		if err != nil {
			return job{}, fmt.Errorf("listing the log start offsets: %w", err)
		}
		starts = connector.Checkpoint{}
		ls.Each(func(o kadm.ListedOffset) {
			starts[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
		})
	}
	return job{stops: stops, starts: starts}, nil
}

// boundedFetchMaxWait is how long the broker may hold a bounded run's
// fetch that finds no records (franz-go's default is 5 s, Java's
// fetch.max.wait.ms 500 ms). franz-go has one fetch in flight
// per broker, and partitions that become fetchable while it is out wait
// for it to return: in about 1 bounded run of 16 in the benchmark harness
// the first fetch went out with only the empty partitions of one of two
// topics, the broker held it the full 5 s, and the backlog waited that
// long (debug log: "read Fetch", time_to_read=5.0s, 372 bytes). A backlog
// job gains nothing from a long poll: a fetch that finds records returns
// at once whatever the wait, and an empty one costs a round trip.
const boundedFetchMaxWait = 100 * time.Millisecond

// boundedTuningLocked sets a bounded run's throughput settings before the
// connectors start: every connector gets the bounded-run defaults for
// commit.interval and batch.max.records (keys its config set stay; see
// config.Connector.BoundedDefaults for the values), and every Kafka
// client a short fetch wait (boundedFetchMaxWait).
func (d *Daemon) boundedTuningLocked() {
	d.ClientOpts = append(slices.Clip(d.ClientOpts), kgo.FetchMaxWait(boundedFetchMaxWait))
	for name, e := range d.entries {
		c := &e.spec.Conf
		c.BoundedDefaults()
		d.log.Info("bounded run batching", "connector", name, "commit_interval", c.CommitInterval.D(),
			"batch_max_records", c.BatchMaxRecords, "explicit", c.Explicit.CommitInterval || c.Explicit.BatchMaxRecords)
	}
}

// boundedDoneInStatus reports whether every connector's status shows its
// stops reached, or a connector failed: WaitBounded should read the
// committed checkpoints now.
func (d *Daemon) boundedDoneInStatus() bool {
	for name, j := range d.jobs {
		st, _ := d.Status(name)
		if st.State == connector.Failed {
			return true
		}
		cp := connector.Checkpoint{}
		for _, p := range st.Partitions {
			cp[connector.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.Checkpoint
		}
		if _, parts := bounded.Remaining(cp, j.stops, j.starts); parts > 0 {
			return false
		}
	}
	return true
}

// Progress is one connector's progress in a bounded run.
type Progress struct {
	Connector string
	// Remaining records (at most) and partitions before the stops.
	Remaining, Total int64
	Partitions       int
}

// WaitBounded waits until every connector's committed checkpoint has
// reached its stops (nil), a connector failed (its error), or ctx ends. It
// calls progress, if not nil, after every check.
func (d *Daemon) WaitBounded(ctx context.Context, progress func([]Progress)) error {
	tick := time.NewTicker(boundedGlance)
	defer tick.Stop()
	var last time.Time // of the last read of the checkpoints
	early := false     // that read came before its time, on the status's word
	for {
		due := time.Since(last) >= boundedPoll
		if !due && (early || !d.boundedDoneInStatus()) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			continue
		}
		early, last = !due, time.Now()
		done := true
		var ps []Progress
		for name, j := range d.jobs {
			st, _ := d.Status(name)
			if st.State == connector.Failed {
				return fmt.Errorf("connector %s failed: %s", name, st.Error)
			}
			cp, err := d.Offsets(ctx, name)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				done = false
				continue
			}
			rec, parts := bounded.Remaining(cp, j.stops, j.starts)
			ps = append(ps, Progress{Connector: name, Remaining: rec, Total: j.total(), Partitions: parts})
			done = done && parts == 0
		}
		if progress != nil {
			progress(ps)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
