// Package bounded turns a streaming connector into a batch job over a
// fixed range of its input log (`connectd run --until`): it captures, when
// the run starts, the offset each input partition stops at, and tells when
// a connector's committed checkpoint has reached every stop.
//
// The job is the connector itself, with its exactly-once commits and its
// checkpoint: a bounded run starts from the committed checkpoint like any
// run, and an interrupted one, started again with the same stop, finishes
// the job with nothing read twice. The source never reads past a stop
// (source/kafka's SetStops).
package bounded

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/connectd/connectd/connector"
)

// Until says where a bounded run stops.
type Until struct {
	// End: the last stable offset of each partition when the run starts
	// (what a read_committed consumer can read then).
	End bool
	// Time, if not zero: the first offset whose record timestamp is at or
	// after it (records before it are read), at most the end.
	Time time.Time
}

// Parse reads --until: "end" or an RFC 3339 time.
func Parse(s string) (Until, error) {
	if strings.EqualFold(s, "end") {
		return Until{End: true}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Until{}, fmt.Errorf("--until %q: want \"end\" or an RFC 3339 time such as 2026-12-04T12:00:00Z", s)
	}
	return Until{Time: t}, nil
}

func (u Until) String() string {
	if u.End {
		return "end"
	}
	return u.Time.UTC().Format(time.RFC3339Nano)
}

// Stops lists the stop offset of every partition of topics: the end with
// read_committed isolation (the last stable offset), or with a time the
// first offset at or after it, never past that end.
func Stops(ctx context.Context, adm *kadm.Client, topics []string, u Until) (connector.Checkpoint, error) {
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the end offsets of %v: %w", topics, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing the end offsets of %v: %w", topics, err)
	}
	stops := connector.Checkpoint{}
	ends.Each(func(o kadm.ListedOffset) {
		stops[connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	for _, t := range topics {
		if _, ok := ends[t]; !ok {
			return nil, fmt.Errorf("input topic %q does not exist", t)
		}
	}
	if u.Time.IsZero() {
		return stops, nil
	}
	at, err := adm.ListOffsetsAfterMilli(ctx, u.Time.UnixMilli(), topics...)
	if err == nil {
		err = at.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %v at %s: %w", topics, u, err)
	}
	at.Each(func(o kadm.ListedOffset) {
		tp := connector.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		if end, ok := stops[tp]; ok && o.Offset >= 0 && o.Offset < end {
			stops[tp] = o.Offset
		}
	})
	return stops, nil
}

// Remaining counts the records between the committed checkpoint and the
// stops (at most; aborted transactions' records and markers included), and
// the partitions not finished. A partition is finished when its checkpoint
// is at its stop, or when it has none and nothing lies before the stop
// (starts: each partition's log start offset).
func Remaining(committed, stops, starts connector.Checkpoint) (records int64, partitions int) {
	for tp, stop := range stops {
		from, ok := committed[tp]
		if !ok {
			from = starts[tp]
		}
		if from < stop {
			records += stop - from
			partitions++
		}
	}
	return records, partitions
}
