package kafka

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// Bounded reading (`connectd run --until`): the source never returns a
// record at or past its partition's stop offset.
//
// A fetch returns whole batches, so records past a stop do arrive. They are
// dropped, and the client's position (and with it the uncommitted offset a
// Kafka transaction commits, see txn.KafkaGroupTxn) is set back to the stop,
// so nothing past it is ever committed as read. The partition is then paused
// until the client's position goes back below the stop: a batch that did
// not commit rewinds the client to the committed offsets, and the records
// between those and the stop must be read again.

// SetStops makes the source bounded by stops (partition → first offset not
// to read). Partitions without a stop are read as usual. Call it before
// the first Poll.
func (s *Source) SetStops(stops map[connector.TopicPartition]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stops = stops
	s.reached = map[connector.TopicPartition]bool{}
}

// resumeRewound resumes paused partitions whose client position went back
// below their stop (an abort rewound it), and forgets the pauses of a
// replaced client (a new one starts unpaused).
func (s *Source) resumeRewound(cl *kgo.Client) {
	if len(s.reached) == 0 {
		s.pausedOn = cl
		return
	}
	if cl != s.pausedOn {
		clear(s.reached)
		s.pausedOn = cl
		return
	}
	heads := cl.UncommittedOffsets()
	var resume map[string][]int32
	for tp := range s.reached {
		if head, ok := heads[tp.Topic][tp.Partition]; ok && head.Offset >= s.stops[tp] {
			continue
		}
		if resume == nil {
			resume = map[string][]int32{}
		}
		resume[tp.Topic] = append(resume[tp.Topic], tp.Partition)
		delete(s.reached, tp)
	}
	if resume != nil {
		cl.ResumeFetchPartitions(resume)
	}
}

// pastStop reports whether record r of partition tp lies at or past its
// stop.
func (s *Source) pastStop(tp connector.TopicPartition, r *kgo.Record) bool {
	stop, ok := s.stops[tp]
	return ok && r.Offset >= stop
}

// stopMarker is a control record at stop-1, returned with the first record
// a poll finds at or past a partition's stop. That record proves every
// offset below the stop was either returned or is unreadable (records of
// an aborted transaction, which read_committed skips): the marker moves
// the checkpoint to the stop as a commit marker does, processing and
// writing nothing. Without it a stop inside an aborted transaction (a time
// or an explicit offset can land there) left the checkpoint below the stop
// for ever, and the bounded run never finished. Where a record at stop-1
// was returned too, the marker changes nothing.
func stopMarker(tp connector.TopicPartition, stop int64) *connector.Record {
	return &connector.Record{Kind: connector.ControlRecord,
		Origin: connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: stop - 1}}
}

// holdAtStops sets the partitions a poll ran past back to their stops and
// pauses them.
func (s *Source) holdAtStops(cl *kgo.Client, over map[connector.TopicPartition]bool) {
	set := map[string]map[int32]kgo.EpochOffset{}
	pause := map[string][]int32{}
	for tp := range over {
		if set[tp.Topic] == nil {
			set[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		set[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: s.stops[tp]}
		pause[tp.Topic] = append(pause[tp.Topic], tp.Partition)
		s.reached[tp] = true
	}
	cl.SetOffsets(set)
	cl.PauseFetchPartitions(pause)
}
