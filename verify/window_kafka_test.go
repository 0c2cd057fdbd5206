package verify

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// The batch oracle end to end through `connectd verify` on an in-process
// kfake cluster: the input is produced to topic in, the real window stage
// (pipeline.Windowed, in batches of 40) computes the output, which the
// test writes to out and dlq with the Kafka sink's own conversion
// (sinkkafka.ToKgo), changed first the way a broken connector would; the
// checkpoint is committed to the connector's group. No connector runs, so
// the faults are exactly the injected ones.

const windowBatch = 40

// windowInput starts a kfake cluster with topics in, out and dlq of two
// partitions, and produces input to in at the offsets of its origins. The
// client it returns is closed when the test ends.
func windowInput(t *testing.T, input []*connector.Record) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, "in", "out", "dlq"); err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, len(input))
	for i, r := range input {
		recs[i] = &kgo.Record{Topic: "in", Partition: r.Origin.Partition, Key: r.Key, Value: r.Value,
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: r.Headers[0].Value}}}
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	// ProduceSync's results come in completion order, not input order.
	at := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		at[r] = i
	}
	for _, r := range res {
		i := at[r.Record]
		if want := input[i].Origin; r.Record.Partition != want.Partition || r.Record.Offset != want.Offset {
			t.Fatalf("input %d landed at %d/%d, want %d/%d", i, r.Record.Partition, r.Record.Offset, want.Partition, want.Offset)
		}
	}
	return c, cl
}

// windowedKafka sets up the cluster and returns a check of it.
func windowedKafka(t *testing.T, window string, cut int, mutate func([]*connector.Record) []*connector.Record) (check func(stopped bool) Report, out []*connector.Record) {
	t.Helper()
	spec := windowedConnector(t, window, "final")
	input := randomInput(2000, 11)
	c, cl := windowInput(t, input)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out = runStage(t, spec, input, windowBatch)
	written := out
	if mutate != nil {
		written = make([]*connector.Record, len(out))
		for i, r := range out {
			written[i] = r.Clone()
		}
		written = mutate(written)
	}
	outRecs := make([]*kgo.Record, len(written))
	for i, r := range written {
		outRecs[i] = sinkkafka.ToKgo(r, "out")
		outRecs[i].Partition = r.Origin.Partition
	}
	if err := cl.ProduceSync(ctx, outRecs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	offsets := kadm.Offsets{}
	for tp, at := range all(input[:cut]) {
		offsets.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: at, LeaderEpoch: -1})
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, spec.KafkaSrc.Group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	return func(stopped bool) Report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := Run(ctx, Options{Spec: spec, Brokers: c.ListenAddrs(), Stopped: stopped})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return rep
	}, out
}

func TestWindowedKafkaSinkClean(t *testing.T) {
	for _, window := range []string{"{type: tumbling, size: 5s}", "{type: hopping, size: 6s, advance: 2s}", "{type: session, gap: 1500ms}"} {
		t.Run(window, func(t *testing.T) {
			check, _ := windowedKafka(t, window, 2000, nil)
			for _, stopped := range []bool{false, true} {
				rep := check(stopped)
				if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 || rep.UncheckedPartitions != 0 {
					t.Fatalf("stopped=%v: %s, want clean over windows and late records", stopped, rep)
				}
				t.Logf("stopped=%v: %s", stopped, rep)
			}
		})
	}
}

// A checkpoint behind the output, as on a running pipeline: the output of
// later batches (results whose last record lies beyond it, windows still
// open at it that later records closed, dead letters beyond it) is left
// out of the running check and unexpected in the stopped one.
func TestWindowedKafkaSinkBehindTheCheckpoint(t *testing.T) {
	const cut = 30 * windowBatch // a batch boundary
	check, _ := windowedKafka(t, "{type: session, gap: 1500ms}", cut, nil)
	live, stopped := check(false), check(true)
	if !live.Clean() || live.Windows == 0 {
		t.Fatalf("running: %s, want clean", live)
	}
	if stopped.Clean() || stopped.BeyondCheckpoint == 0 || stopped.Unexpected != stopped.BeyondCheckpoint ||
		stopped.Missing+stopped.Duplicates+stopped.ValueMismatches != 0 {
		t.Fatalf("stopped: %s, want only output beyond the checkpoint", stopped)
	}
	t.Logf("running: %s; stopped: %s", live, stopped)
}

// Each injected fault is caught by `connectd verify` on the connector's
// real output: a wrong count, a window emitted twice, a window missing, a
// late record missing from the dead-letter topic.
func TestWindowedKafkaSinkFaults(t *testing.T) {
	const window = "{type: tumbling, size: 5s}"
	_, out := windowedKafka(t, window, 2000, nil)
	victim := -1
	for i, r := range out {
		if r.Topic == "" && i > len(out)/2 {
			victim = i
			break
		}
	}
	id := "out:" + out[victim].EventID
	late := slices.IndexFunc(out, func(r *connector.Record) bool {
		_, ok := r.Header(pipeline.HeaderLateReason)
		return ok
	})
	if late < 0 {
		t.Fatal("no late record in the stage's output")
	}
	for _, tc := range []struct {
		name   string
		mutate func([]*connector.Record) []*connector.Record
		caught func(Report) bool
	}{
		{"wrong count", func(rs []*connector.Record) []*connector.Record {
			rs[victim].Value = replaceField(t, rs[victim].Value, "n", func(v float64) float64 { return v - 1 })
			return rs
		}, func(r Report) bool {
			return r.ValueMismatches == 1 && strings.HasPrefix(r.ValueMismatchIDs[0], id+": expected ") && r.Missing+r.Duplicates+r.Unexpected == 0
		}},
		{"emitted twice", func(rs []*connector.Record) []*connector.Record { return append(rs, rs[victim]) },
			func(r Report) bool {
				return r.Duplicates == 1 && r.DuplicateIDs[0] == id && r.Missing+r.Unexpected+r.ValueMismatches == 0
			}},
		{"missing", func(rs []*connector.Record) []*connector.Record { return slices.Delete(rs, victim, victim+1) },
			func(r Report) bool {
				return r.Missing == 1 && r.MissingIDs[0] == id && r.Duplicates+r.Unexpected+r.ValueMismatches == 0
			}},
		{"late record not dead-lettered", func(rs []*connector.Record) []*connector.Record { return slices.Delete(rs, late, late+1) },
			func(r Report) bool {
				return r.Missing == 1 && r.MissingIDs[0] == "dlq:"+out[late].EventID && r.Duplicates+r.Unexpected+r.ValueMismatches == 0
			}},
		{"timestamp not the window end", func(rs []*connector.Record) []*connector.Record {
			rs[victim].Timestamp = rs[victim].Timestamp.Add(-time.Millisecond)
			return rs
		}, func(r Report) bool {
			return r.ValueMismatches == 1 && strings.Contains(r.ValueMismatchIDs[0], "timestamp")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check, _ := windowedKafka(t, window, 2000, tc.mutate)
			for _, stopped := range []bool{false, true} {
				rep := check(stopped)
				if rep.Clean() || !tc.caught(rep) {
					t.Fatalf("stopped=%v: %s", stopped, rep)
				}
				t.Logf("stopped=%v: %s", stopped, rep)
			}
		})
	}
}
