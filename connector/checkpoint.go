package connector

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
)

// TopicPartition names one source partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string {
	return tp.Topic + "/" + strconv.Itoa(int(tp.Partition))
}

// Compare orders partitions by topic, then partition number.
func (tp TopicPartition) Compare(other TopicPartition) int {
	return cmp.Or(cmp.Compare(tp.Topic, other.Topic), cmp.Compare(tp.Partition, other.Partition))
}

// Checkpoint maps each source partition to the NEXT offset to read. It is
// what a commit makes durable together with the batch's output.
type Checkpoint map[TopicPartition]int64

// Advance moves the checkpoint past o: the next offset becomes o.Offset+1
// unless the checkpoint is already further.
func (c Checkpoint) Advance(o Origin) {
	tp := TopicPartition{o.Topic, o.Partition}
	if next, ok := c[tp]; !ok || o.Offset+1 > next {
		c[tp] = o.Offset + 1
	}
}

// AdvanceRecords moves the checkpoint past every record of recs, as
// Advance on each would. A poll returns each partition's records together
// and in offset order, so the map is touched once per run of one
// partition, not once per record: each touch hashes the topic name, which
// per record was a few per cent of connectd's CPU in the Kafka → Kafka
// benchmark (issue 17). Records in any other order still end at the same
// checkpoint, only with more touches.
func (c Checkpoint) AdvanceRecords(recs []*Record) {
	for i := 0; i < len(recs); {
		o := recs[i].Origin
		j := i + 1
		for ; j < len(recs); j++ {
			n := recs[j].Origin
			if n.Partition != o.Partition || n.Topic != o.Topic {
				break
			}
			o.Offset = max(o.Offset, n.Offset)
		}
		c.Advance(o)
		i = j
	}
}

// Clone returns an independent copy.
func (c Checkpoint) Clone() Checkpoint { return maps.Clone(c) }

// Merge overwrites c's entries with other's.
func (c Checkpoint) Merge(other Checkpoint) {
	maps.Copy(c, other)
}

// Partitions returns the partitions in a stable order.
func (c Checkpoint) Partitions() []TopicPartition {
	tps := slices.Collect(maps.Keys(c))
	slices.SortFunc(tps, TopicPartition.Compare)
	return tps
}

// Contains reports whether o lies before the checkpoint, i.e. is covered by it.
func (c Checkpoint) Contains(o Origin) bool {
	next, ok := c[TopicPartition{o.Topic, o.Partition}]
	return ok && o.Offset < next
}
