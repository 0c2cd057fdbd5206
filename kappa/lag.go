package kappa

import (
	"cmp"
	"slices"

	"github.com/connectd/connectd/connector"
)

// PartitionLag is how far a shadow is behind the live connector on one
// input partition: both committed checkpoints (next offsets to read).
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Live      int64  `json:"live"`
	Shadow    int64  `json:"shadow"`
	Lag       int64  `json:"lag"`
}

// Lag is a shadow's lag against the live connector.
type Lag struct {
	// Total is the records the shadow has still to commit to reach the
	// live connector's checkpoint, summed over partitions (a partition
	// the shadow has not committed yet counts from offset 0).
	Total      int64          `json:"total"`
	Partitions []PartitionLag `json:"partitions"`
}

// Measure compares two committed checkpoints. A partition where the shadow
// is ahead (the live connector commits later, or started at the end) has
// no lag.
func Measure(live, shadow connector.Checkpoint) Lag {
	var l Lag
	for tp, at := range live {
		s := shadow[tp]
		pl := PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Live: at, Shadow: s, Lag: max(at-s, 0)}
		l.Partitions = append(l.Partitions, pl)
		l.Total += pl.Lag
	}
	for tp, s := range shadow {
		if _, ok := live[tp]; !ok {
			l.Partitions = append(l.Partitions, PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Shadow: s})
		}
	}
	slices.SortFunc(l.Partitions, func(a, b PartitionLag) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return l
}
