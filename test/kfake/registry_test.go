package kfake_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/sink/sinktest/memstore"
)

// memorySinks are the test_memory sinks' stores, by config name.
var (
	memorySinksMu sync.Mutex
	memorySinks   = map[string]*memstore.Data{}
)

// memoryConfig is a test_memory sink's config: the name of its store.
type memoryConfig struct {
	Name string `yaml:"name"`
}

func (c *memoryConfig) Validate() error {
	if c.Name == "" {
		return errors.New("name: required")
	}
	return nil
}

func memorySink(name, dlqTopic string) *memstore.Data {
	memorySinksMu.Lock()
	defer memorySinksMu.Unlock()
	d := memorySinks[name]
	if d == nil {
		d = memstore.New(dlqTopic)
		memorySinks[name] = d
	}
	return d
}

// A sink written only against the registration API: the reference store
// of sinktest, registered as `type: test_memory`. Nothing in pipeline,
// verify or the daemon knows it.
func init() {
	component.RegisterSink(component.Sink{
		Name:       "test_memory",
		Summary:    "test only: the in-memory reference store",
		Fields:     []component.Field{{Name: "name", Type: "string", Required: true, Description: "The store's name."}},
		NewConfig:  func() component.Config { return new(memoryConfig) },
		Checkpoint: "the in-memory store",
		Store: func(cfg component.Config, env component.SinkEnv) connector.SinkStore {
			return memorySink(cfg.(*memoryConfig).Name, env.DLQTopic).Open()
		},
		Checkpoints: func(_ context.Context, cfg component.Config, env component.SinkEnv) (component.CheckpointStore, error) {
			return memorySink(cfg.(*memoryConfig).Name, env.DLQTopic).Open(), nil
		},
		Probe: func(cfg component.Config, env component.SinkEnv) (component.Probe, error) {
			return memorySink(cfg.(*memoryConfig).Name, env.DLQTopic).Probe(), nil
		},
	})
}

const memoryYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: mem
		commit.interval: 50ms
		batch.max.records: 400
		source: {type: kafka, topics: [in], session_timeout: 6s}
		transforms:
			- type: set
				fields: {copied: true}
		sink: {type: test_memory, name: registry-test}
`

// TestRegisteredSinkExactlyOnce runs a connector into a sink that only
// registered itself (test_memory): the pipeline builds its exactly-once
// protocol (txn.SinkOffsets) from the registration, verify checks it
// through its Probe, through a restart (which claims the partitions again
// in the store) and a second instance joining and leaving.
func TestRegisteredSinkExactlyOnce(t *testing.T) {
	const n = 8000
	c := newCluster(t)
	produceInput(t, c, "in", n)
	cfg := parse(t, c, memoryYAML)
	var daemons []*daemon.Daemon
	start := func(id string) *daemon.Daemon {
		d := startDaemon(t, cfg, id)
		daemons = append(daemons, d)
		return d
	}
	a := start("a")
	waitExpected(t, c, cfg, "mem", n/4, 2*time.Minute)
	a.Stop()
	start("a")
	waitExpected(t, c, cfg, "mem", n/2, 2*time.Minute)
	b := start("b")
	waitExpected(t, c, cfg, "mem", 3*n/4, 2*time.Minute)
	b.Stop()
	rep := waitExpected(t, c, cfg, "mem", n, 2*time.Minute)
	must(t, rep, "a registered sink, exactly_once")
	claims, fenced := memorySink("registry-test", "").Stats()
	t.Logf("%s; %d claims, %d commits fenced", rep, claims, fenced)
	// The first start claims, and the restart claims again (the second
	// instance may find the input drained before it is assigned anything).
	if claims < 2 {
		t.Fatalf("%d claims in the store: the restart did not re-claim its partitions", claims)
	}
}
