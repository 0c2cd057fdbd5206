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
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// Until says where a bounded run stops: "end" or a time (config.Until,
// which a connector's bounded: block holds too).
type Until = config.Until

// Parse reads --until: "end" or an RFC 3339 time.
func Parse(s string) (Until, error) {
	u, err := config.ParseUntil(s)
	if err != nil {
		return Until{}, fmt.Errorf("--until: %w", err)
	}
	return u, nil
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

// Explicit checks explicit stops (a bounded: block's offsets: topic →
// partition → the first offset not to read) against the partitions of
// topics and returns them: every partition of every topic must be listed,
// and only those. A stop beyond a partition's end is kept: the run waits
// for the input to reach it.
func Explicit(ctx context.Context, adm *kadm.Client, topics []string, offsets map[string]map[int32]int64) (connector.Checkpoint, error) {
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing the partitions of %v: %w", topics, err)
	}
	for _, t := range topics {
		unknown := true
		for _, o := range ends[t] {
			unknown = unknown && errors.Is(o.Err, kerr.UnknownTopicOrPartition)
		}
		if unknown {
			return nil, fmt.Errorf("input topic %q does not exist", t)
		}
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("listing the partitions of %v: %w", topics, err)
	}
	stops := connector.Checkpoint{}
	var problems []string
	for _, t := range topics {
		parts := ends[t]
		var missing []int32
		for p := range parts {
			stop, ok := offsets[t][p]
			if !ok {
				missing = append(missing, p)
				continue
			}
			stops[connector.TopicPartition{Topic: t, Partition: p}] = stop
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			problems = append(problems, fmt.Sprintf("%s has %d partitions, not listed: %v", t, len(parts), missing))
		}
		for p := range offsets[t] {
			if _, ok := parts[p]; !ok {
				problems = append(problems, fmt.Sprintf("%s has no partition %d", t, p))
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("bounded offsets must list every partition of every input topic: %s", strings.Join(problems, "; "))
	}
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
