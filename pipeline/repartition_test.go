package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// fakeRunner is a stage with a fixed status that records what it is told.
type fakeRunner struct {
	st              connector.Status
	paused, resumed bool
	failed          error
}

func (f *fakeRunner) Name() string              { return f.st.Name }
func (f *fakeRunner) Run(context.Context) error { return nil }
func (f *fakeRunner) Status() connector.Status  { return f.st }
func (f *fakeRunner) Pause()                    { f.paused = true }
func (f *fakeRunner) Resume()                   { f.resumed = true }
func (f *fakeRunner) MarkFailed(err error)      { f.failed = err }

// TestStagedStatus: records_in is the input's (stage 1), records_out and
// the window section the sink's (stage 2), commits, aborts and dead letters
// add up, partitions are both stages', a failed stage fails the connector
// under its name; pause, resume and failure reach both stages.
func TestStagedStatus(t *testing.T) {
	t0 := time.Unix(100, 0)
	rep := &fakeRunner{st: connector.Status{Name: "c", State: connector.Running, RecordsIn: 1000, RecordsOut: 990, Commits: 7,
		DeadLettered: 10, Aborts: map[string]uint64{"abortable": 2}, LastCommit: t0.Add(time.Second),
		LastAbort:  &connector.AbortInfo{Error: "boom", At: t0},
		Partitions: []connector.PartitionStatus{{Topic: "in", Partition: 1, Checkpoint: 500}, {Topic: "in", Partition: 0, Checkpoint: 500}}}}
	win := &fakeRunner{st: connector.Status{Name: "c", State: connector.Running, RecordsIn: 990, RecordsOut: 40, Commits: 5,
		DeadLettered: 3, Aborts: map[string]uint64{"abortable": 1, "fenced": 1}, LastCommit: t0,
		Window:     &connector.WindowStatus{Aggregated: 987, Late: 3, Emitted: 40},
		Partitions: []connector.PartitionStatus{{Topic: "g-repartition", Partition: 0, Checkpoint: 1002}}}}
	g := &Staged{name: "c", rep: rep, win: win}
	st := g.Status()
	if st.RecordsIn != 1000 || st.RecordsOut != 40 || st.Commits != 12 || st.DeadLettered != 13 ||
		st.Window == nil || st.Window.Emitted != 40 || st.Aborts["abortable"] != 3 || st.Aborts["fenced"] != 1 ||
		!st.LastCommit.Equal(t0.Add(time.Second)) || st.LastAbort == nil || st.LastAbort.Error != "repartition stage: boom" ||
		st.State != connector.Running {
		t.Fatalf("merged status %+v", st)
	}
	if len(st.Partitions) != 3 || st.Partitions[0].Topic != "g-repartition" || st.Partitions[1].Partition != 0 || st.Partitions[2].Partition != 1 {
		t.Fatalf("partitions %+v: want both stages', sorted", st.Partitions)
	}
	win.st.State, win.st.Error = connector.Failed, "state cap"
	if st := g.Status(); st.State != connector.Failed || st.Error != "window stage: state cap" {
		t.Fatalf("window stage failed: status %s %q", st.State, st.Error)
	}
	g.Pause()
	g.Resume()
	g.MarkFailed(errors.New("panic"))
	for _, f := range []*fakeRunner{rep, win} {
		if !f.paused || !f.resumed || f.failed == nil {
			t.Fatalf("a stage missed pause, resume or failure: %+v", f)
		}
	}
}

// TestStagesSpecs: a window keyed by an expression repartitions; its
// stages read and write what the design says; key_partitioned: true and
// the record key do not repartition.
func TestStagesSpecs(t *testing.T) {
	yaml := `
kafka:
  brokers: [127.0.0.1:1]
connectors:
  - name: c
    guarantee: at_least_once
    errors.tolerance: all
    dead_letter_queue: {topic: dlq}
    source: {type: kafka, topics: [a, b], group: g, start_offset: latest}
    transforms:
      - type: window
        time: value.ts
        key: value.customer
        KP
        window: {type: tumbling, size: 1s}
        aggregate: {n: count()}
    sink: {type: kafka, topic: out}
`
	decode := func(kp string) *Spec {
		cfg, err := config.Parse("c.yaml", []byte(strings.ReplaceAll(yaml, "KP", kp)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Decode(cfg.Connectors[0])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if decode("key_partitioned: true").Repartitions() {
		t.Fatal("key_partitioned: true repartitions")
	}
	s := decode("repartition: true")
	if !s.Repartitions() {
		t.Fatal("key: with repartition: true does not repartition")
	}
	rep, win := s.Stages()
	if rep.Repartitions() || win.Repartitions() || rep.Processor.Window() != nil || win.Processor.Window() == nil {
		t.Fatal("a stage repartitions again, or the window is in the wrong stage")
	}
	if rep.KafkaSink.Topic != "g-repartition" || rep.Conf.Guarantee != config.ExactlyOnce || rep.KafkaSrc.Group != "g" ||
		rep.DLQTopic() != "dlq" {
		t.Fatalf("repartition stage: topic %s, guarantee %s, group %s, dlq %s", rep.KafkaSink.Topic, rep.Conf.Guarantee, rep.KafkaSrc.Group, rep.DLQTopic())
	}
	if win.KafkaSrc.Group != "g-window" || len(win.KafkaSrc.Topics) != 1 || win.KafkaSrc.Topics[0] != "g-repartition" ||
		win.KafkaSrc.StartOffset != "earliest" || win.KafkaSink.Topic != "out" || win.Conf.Guarantee != config.AtLeastOnce {
		t.Fatalf("window stage: %+v, sink %s, guarantee %s", win.KafkaSrc, win.KafkaSink.Topic, win.Conf.Guarantee)
	}
	// Stage 1 keys by the expression and keeps value, timestamp and
	// event ID; a record without the key is dead-lettered there.
	ts := time.UnixMilli(5000)
	in := []*connector.Record{
		{Key: []byte("k"), Value: []byte(`{"ts":5000,"customer":"alice"}`), Timestamp: ts,
			Headers: []connector.Header{{Key: "event-id", Value: []byte("e1")}}, Origin: connector.Origin{Topic: "a", Offset: 1}},
		{Key: []byte("k"), Value: []byte(`{"ts":5000}`), Timestamp: ts,
			Headers: []connector.Header{{Key: "event-id", Value: []byte("e2")}}, Origin: connector.Origin{Topic: "a", Offset: 2}},
	}
	out, err := rep.Processor.Process(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || string(out[0].Key) != "alice" || out[0].EventID != "e1" || out[0].Topic != "" ||
		string(out[0].Value) != string(in[0].Value) || !out[0].Timestamp.Equal(ts) || out[1].Topic != "dlq" {
		t.Fatalf("repartition stage output %+v", out)
	}
	// Stage 2 groups by the record key, whatever the value says.
	r2 := &connector.Record{Key: []byte("bob"), Value: []byte(`{"ts":5000,"customer":"alice"}`), Timestamp: ts}
	if _, key, _, err := win.Processor.Window().Eval(r2); err != nil || key != "bob" {
		t.Fatalf("window stage key %q (%v), want the record key", key, err)
	}
	if _, key, _, _ := s.Processor.Window().Eval(r2); key != "alice" {
		t.Fatalf("the connector's own window spec keys %q", key)
	}
}
