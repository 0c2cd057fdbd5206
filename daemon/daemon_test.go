package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/verify"
)

const lifecycleYAML = `
admin:
  state_file: STATE
kafka:
  brokers: [BROKERS]
connectors:
  - name: copy
    commit.interval: 20ms
    batch.max.records: 200
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out}
`

func setup(t *testing.T, n int) (*kfake.Cluster, *config.Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"i":%d}`, i),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "e-%d", i)}}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	yaml := strings.ReplaceAll(lifecycleYAML, "BROKERS", strings.Join(c.ListenAddrs(), ","))
	yaml = strings.ReplaceAll(yaml, "STATE", filepath.Join(t.TempDir(), "state.json"))
	cfg, err := config.Parse("lifecycle.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func start(t *testing.T, cfg *config.Config) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(d *daemon.Daemon, name string) connector.State {
	st, _ := d.Status(name)
	return st.State
}

func recordsIn(d *daemon.Daemon, name string) uint64 {
	st, _ := d.Status(name)
	return st.RecordsIn
}

func checkClean(t *testing.T, c *kfake.Cluster, cfg *config.Config, cc config.Connector) verify.Report {
	t.Helper()
	spec, err := pipeline.Decode(cc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("not exactly once: %s", rep)
	}
	return rep
}

// Pause, resume, stop, restart and offset reads on a running exactly-once
// connector: the checker stays clean and every input is delivered once.
func TestLifecycleKeepsExactlyOnce(t *testing.T) {
	const n = 20000
	c, cfg := setup(t, n)
	d := start(t, cfg)
	ctx := context.Background()

	eventually(t, "some progress", func() bool { return recordsIn(d, "copy") > 0 })
	if err := d.Pause("copy"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "PAUSED", func() bool { return state(d, "copy") == connector.Paused })
	paused := recordsIn(d, "copy")
	time.Sleep(200 * time.Millisecond)
	if got := recordsIn(d, "copy"); got != paused {
		t.Fatalf("paused connector went on reading: %d -> %d", paused, got)
	}
	if err := d.Resume("copy"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING after resume", func() bool { return state(d, "copy") == connector.Running && recordsIn(d, "copy") > paused })

	if _, err := d.Offsets(ctx, "copy"); err != nil {
		t.Fatalf("reading offsets of a running connector: %v", err)
	}
	if err := d.AlterOffsets(ctx, "copy", connector.Checkpoint{{Topic: "in", Partition: 0}: 0}); !errors.Is(err, daemon.ErrNotStopped) {
		t.Fatalf("altering offsets while running: %v, want ErrNotStopped", err)
	}
	if err := d.StopConnector(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	if s := state(d, "copy"); s != connector.Stopped {
		t.Fatalf("state %s after stop", s)
	}
	checkClean(t, c, cfg, cfg.Connectors[0])
	if err := d.Restart(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	if s := state(d, "copy"); s != connector.Stopped {
		t.Fatalf("restart of a stopped connector started it: %s", s)
	}
	if err := d.Resume("copy"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RUNNING after resume from STOPPED", func() bool { return state(d, "copy") == connector.Running })
	if err := d.Restart(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all input committed", func() bool {
		cp, err := d.Offsets(ctx, "copy")
		var sum int64
		for _, o := range cp {
			sum += o
		}
		return err == nil && sum == n
	})
	rep := checkClean(t, c, cfg, cfg.Connectors[0])
	if rep.Expected != n {
		t.Fatalf("expected %d outputs, checker says %s", n, rep)
	}
	if _, err := d.Offsets(ctx, "nope"); !errors.Is(err, daemon.ErrNotFound) {
		t.Fatalf("unknown connector: %v", err)
	}
}

// A stopped connector's offsets can be altered and reset where they live;
// connectors created through the API, and stopped ones, come back after a
// restart of the daemon from its state file.
func TestOffsetsAndStateFile(t *testing.T) {
	c, cfg := setup(t, 300)
	d := start(t, cfg)
	ctx := context.Background()

	raw := []byte(`{"name": "gen", "source": {"type": "generator", "count": 100}, "sink": {"type": "kafka", "topic": "gen-out"}}`)
	cc, err := config.ParseConnector("body", raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, *cc, raw); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, *cc, raw); !errors.Is(err, daemon.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	eventually(t, "generator done", func() bool {
		cp, err := d.Offsets(ctx, "gen")
		return err == nil && cp[connector.TopicPartition{Topic: "generator:gen"}] == 100
	})
	eventually(t, "copy done", func() bool {
		cp, err := d.Offsets(ctx, "copy")
		var sum int64
		for _, o := range cp {
			sum += o
		}
		return err == nil && sum == 300
	})
	for _, name := range []string{"gen", "copy"} {
		if err := d.StopConnector(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	genTP := connector.TopicPartition{Topic: "generator:gen"}
	if err := d.AlterOffsets(ctx, "gen", connector.Checkpoint{genTP: 40}); err != nil {
		t.Fatal(err)
	}
	if cp, _ := d.Offsets(ctx, "gen"); cp[genTP] != 40 {
		t.Fatalf("altered generator checkpoint reads %v", cp)
	}
	if err := d.ResetOffsets(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	if cp, err := d.Offsets(ctx, "copy"); err != nil || len(cp) != 0 {
		t.Fatalf("after reset: %v, %v", cp, err)
	}
	if err := d.Delete(ctx, "copy"); err != nil {
		t.Fatal(err)
	}
	d.Stop()

	d2 := start(t, cfg)
	if names := d2.Names(); len(names) != 1 || names[0] != "gen" {
		t.Fatalf("after restart: connectors %v, want [gen] (copy deleted, gen created through the API)", names)
	}
	if s := state(d2, "gen"); s != connector.Stopped {
		t.Fatalf("gen is %s after restart, want STOPPED", s)
	}
	_ = c
}

// A windowed connector's offsets cannot be changed or reset: its window
// state belongs to its checkpoint. The refusal says why and what to do.
func TestWindowedConnectorRefusesOffsetChanges(t *testing.T) {
	_, cfg := setup(t, 300)
	d := start(t, cfg)
	ctx := context.Background()
	raw := []byte(`{"name": "win", "source": {"type": "kafka", "topics": ["in"]},
		"transforms": [{"type": "window", "time": "value.i * 1000", "key": "string(value.i % 3)", "key_partitioned": true,
			"window": {"type": "tumbling", "size": "10s"}, "late": "drop", "aggregate": {"n": "count()"}}],
		"sink": {"type": "kafka", "topic": "win-out"}}`)
	cc, err := config.ParseConnector("body", raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, *cc, raw); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the windowed connector to read its input", func() bool { return recordsIn(d, "win") == 300 })
	st, _ := d.Status("win")
	if st.Window == nil || st.Window.Emitted == 0 || st.Window.Aggregated != 300 {
		t.Fatalf("window status %+v: want 300 records aggregated and results emitted", st.Window)
	}
	if err := d.StopConnector(ctx, "win"); err != nil {
		t.Fatal(err)
	}
	for what, change := range map[string]func() error{
		"alter": func() error { return d.AlterOffsets(ctx, "win", connector.Checkpoint{{Topic: "in", Partition: 0}: 0}) },
		"reset": func() error { return d.ResetOffsets(ctx, "win") },
	} {
		if err := change(); !errors.Is(err, admin.ErrRefused) || !strings.Contains(err.Error(), "new group") {
			t.Errorf("%s: %v, want a refusal naming the way out", what, err)
		}
	}
}
