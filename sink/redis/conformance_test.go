package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/sink/sinktest"
)

// TestConformance runs the exactly-once store conformance suite against
// Redis, a fresh key prefix per property, read back through the sink's
// registered probe (the audit log, so a double application shows).
func TestConformance(t *testing.T) {
	sinktest.Store(t, func(t *testing.T, dlqTopic string) sinktest.Harness {
		cfg := sharedConfig(t)
		// The key names the JSON field i, so a value without it cannot be
		// written: with errors.tolerance none the batch fails.
		cfg.Key = "{event_id}:{json:i}"
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		sk, _ := component.LookupSink("redis")
		probe, err := sk.Probe(&cfg, component.SinkEnv{Connector: "sinktest", DLQTopic: dlqTopic})
		if err != nil {
			t.Fatal(err)
		}
		admin := newStore(t, cfg, dlqTopic)
		return sinktest.Harness{
			Open: func() sinktest.SinkStore { return newStore(t, cfg, dlqTopic) },
			// The field's "<epoch>:<next>", keeping next (-1: none).
			SetEpoch: func(group string, tp connector.TopicPartition, epoch int64) {
				key := admin.OffsetsKey(group)
				next := "-1"
				if v, err := admin.client.HGet(context.Background(), key, tp.String()).Result(); err == nil {
					next = v[strings.IndexByte(v, ':')+1:]
				}
				if err := admin.client.HSet(context.Background(), key, tp.String(), strconv.FormatInt(epoch, 10)+":"+next).Err(); err != nil {
					t.Fatal(err)
				}
			},
			Probe: probe,
			Refused: func(n int64) *connector.Record {
				r := sinktest.Record(connector.TopicPartition{Topic: "in"}, n)
				r.Value = []byte(`{"no_i":true}`)
				return r
			},
		}
	})
}
