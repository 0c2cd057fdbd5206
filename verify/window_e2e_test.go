package verify_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/e2e"
)

// windowYAML is an exactly_once windowed connector: session windows per
// record key, late records and records the window cannot read to dlq.
const windowYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: win
		commit.interval: 50ms
		batch.max.records: 150
		transaction.timeout: 10s
		errors.tolerance: all
		dead_letter_queue: {topic: dlq}
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: window
				time: value.ts
				window: WINDOW
				watermark: {max_out_of_orderness: 2s}
				allowed_lateness: 500ms
				late: dead_letter
				aggregate:
					n: count()
					total: sum(value.amount)
					hi: max(value.amount)
					mean: avg(value.amount)
		sink: {type: kafka, topic: out}
`

// TestWindowedConnectorAgreesWithTheOracle runs a real windowed connector
// on kfake over out-of-order input (keys bound to partitions, event times
// jittering up to 8s back, fractional amounts, some unreadable ones) and
// requires the batch oracle to find its output exactly: every closed
// window once, with the oracle's values, every late record dead-lettered.
func TestWindowedConnectorAgreesWithTheOracle(t *testing.T) {
	for _, window := range []string{"{type: tumbling, size: 3s}", "{type: hopping, size: 4s, advance: 2s}", "{type: session, gap: 800ms}"} {
		t.Run(window, func(t *testing.T) {
			c := e2e.Cluster(t)
			input := windowInput(4000)
			produce(t, c, input[:1000])
			cfg := e2e.Parse(t, c, windowYAML, "WINDOW", window)
			d := e2e.Start(t, cfg, "a")
			// Checks of the running pipeline while it drains each
			// new chunk: output of batches committed after the
			// checkpoint was read must be left out, windows open at
			// it included.
			for _, upTo := range []int{2000, 3000, 4000} {
				produce(t, c, input[upTo-1000:upTo])
				if rep := check(t, c, cfg, false); !rep.Clean() {
					t.Fatalf("running, input up to %d produced: %s", upTo, rep)
				} else {
					t.Logf("running, input up to %d produced: %s", upTo, rep)
				}
			}
			waitCommitted(t, c, "connectd-win", len(input))
			d.Stop()
			for _, stopped := range []bool{false, true} {
				rep := check(t, c, cfg, stopped)
				if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 || rep.UncheckedPartitions != 0 {
					t.Fatalf("stopped=%v: %s, want clean over windows and late records", stopped, rep)
				}
				t.Logf("stopped=%v: %s", stopped, rep)
			}
		})
	}
}

// windowInput is n records for the four partitions of in: key k<p>-<j>
// always in partition p, value {"ts":…,"amount":…} with event times rising
// per partition and jittering up to 8s back, every 101st amount a string.
func windowInput(n int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(42, 1))
	clock := [4]int64{}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		p := int32(rng.IntN(4))
		clock[p] += int64(rng.IntN(300))
		amount := fmt.Sprintf("%.2f", rng.Float64()*50)
		if i%101 == 100 {
			amount = `"n/a"`
		}
		recs[i] = &kgo.Record{Topic: "in", Partition: p,
			Key:     fmt.Appendf(nil, "k%d-%d", p, rng.IntN(5)),
			Value:   fmt.Appendf(nil, `{"ts":%d,"amount":%s}`, clock[p]-int64(rng.IntN(8000)), amount),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}}}
	}
	return recs
}

// produce writes recs to their partitions.
func produce(t *testing.T, c *kfake.Cluster, recs []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitCommitted waits until group's checkpoint covers n input records.
func waitCommitted(t *testing.T, c *kfake.Cluster, group string, n int) {
	t.Helper()
	adm, _ := admin(t, c)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := adm.FetchOffsets(ctx, group)
		cancel()
		sum := int64(0)
		if err == nil && resp.Error() == nil {
			resp.Each(func(r kadm.OffsetResponse) { sum += r.At })
		}
		if sum >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %d of %d records", group, sum, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
