package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/bounded"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/source/generator"
)

// Bounded runs (`connectd run --until`): Start captures each connector's
// stop offsets before the connector starts; WaitBounded reports when every
// connector's committed checkpoint has reached them.

// boundedPoll is how often WaitBounded reads the committed checkpoints.
const boundedPoll = 250 * time.Millisecond

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
		s := e.spec
		switch {
		case s.Generator != nil && s.Generator.Count > 0:
			// A generator with a count is bounded by it: its
			// checkpoint (one partition, in the offsets topic) ends
			// at count.
			g, err := generator.New(name, *s.Generator)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			tp := connector.TopicPartition{Topic: g.Origin()}
			d.jobs[name] = job{stops: connector.Checkpoint{tp: s.Generator.Count}, starts: connector.Checkpoint{tp: 0}}
			continue
		case s.Generator != nil:
			errs = append(errs, fmt.Errorf("connector %s: --until needs a generator with a count (this one is unbounded)", name))
			continue
		case s.KafkaSrc == nil:
			errs = append(errs, fmt.Errorf("connector %s: --until needs a kafka source or a generator with a count; a %s source cannot be bounded yet", name, s.Conf.Source.Type))
			continue
		case s.Processor.Window() != nil && s.Processor.Window().Repartition:
			errs = append(errs, fmt.Errorf("connector %s: --until with a repartitioned window stage (repartition: true) is not supported yet", name))
			continue
		}
		stops, err := bounded.Stops(ctx, adm, s.KafkaSrc.Topics, *d.Until)
		if err != nil {
			errs = append(errs, fmt.Errorf("connector %s: %w", name, err))
			continue
		}
		starts := stops // start_offset latest: an uncommitted partition starts at its end
		if s.KafkaSrc.StartOffset != "latest" {
			ls, err := adm.ListStartOffsets(ctx, s.KafkaSrc.Topics...)
			if err == nil {
				err = ls.Error()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("connector %s: listing the log start offsets: %w", name, err))
				continue
			}
			starts = connector.Checkpoint{}
			ls.Each(func(o kadm.ListedOffset) {
				starts[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
			})
		}
		d.jobs[name] = job{stops: stops, starts: starts}
		d.log.Info("bounded run", "connector", name, "until", d.Until.String(), "partitions", len(stops), "records_at_most", job{stops, starts}.total())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.env.Stops = func(name string) connector.Checkpoint { return d.jobs[name].stops }
	return nil
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
	tick := time.NewTicker(boundedPoll)
	defer tick.Stop()
	for {
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
