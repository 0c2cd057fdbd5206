package memstore

import (
	"testing"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/sink/sinktest"
)

// TestConformance: the reference store passes the whole suite.
func TestConformance(t *testing.T) {
	sinktest.Store(t, func(_ *testing.T, dlqTopic string) sinktest.Harness {
		d := New(dlqTopic)
		return sinktest.Harness{
			Open:     func() sinktest.SinkStore { return d.Open() },
			Probe:    d.Probe(),
			SetEpoch: d.SetEpoch,
			Refused: func(n int64) *connector.Record {
				r := sinktest.Record(connector.TopicPartition{Topic: "in"}, n)
				r.Value = []byte(RefusedValue)
				return r
			},
		}
	})
}

// TestParticipantConformance: the reference participant passes the
// two-phase table.
func TestParticipantConformance(t *testing.T) {
	sinktest.Participant(t, func(*testing.T) sinktest.ParticipantHarness {
		d := NewPrepared()
		return sinktest.ParticipantHarness{
			Open:    func() connector.Participant { return d.Open() },
			Visible: d.Applied,
		}
	})
}
