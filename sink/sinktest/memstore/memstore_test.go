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
			Open:  func() sinktest.SinkStore { return d.Open() },
			Probe: d.Probe(),
			Refused: func(n int64) *connector.Record {
				r := sinktest.Record(connector.TopicPartition{Topic: "in"}, n)
				r.Value = []byte(RefusedValue)
				return r
			},
		}
	})
}
