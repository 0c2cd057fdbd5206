package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const topic = "_connectd-configs"

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func open(t *testing.T, c *kfake.Cluster) *ConfigLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, c.ListenAddrs(), topic, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func def(s string) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"name":%q}`, s)) }

// eventually waits until cond holds on l's snapshot, or fails.
func eventually(t *testing.T, what string, l *ConfigLog, cond func(map[string]Entry) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(l.Snapshot()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: snapshot %v", what, l.Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPutIsVisibleEverywhere: a write through member A returns once A
// reads it back (no wait needed on A), and member B converges to it with
// the same version; a pause is a write of the target; a delete is gone on
// both.
func TestPutIsVisibleEverywhere(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	a, b := open(t, c), open(t, c)
	v, err := a.Put(ctx, "orders", def("orders"), Running)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := a.Snapshot()["orders"]; !ok || e.Version != v || e.Target != Running || string(e.Definition) != string(def("orders")) {
		t.Fatalf("A right after its Put: %+v, %v; want version %d", e, ok, v)
	}
	eventually(t, "B sees A's write", b, func(s map[string]Entry) bool { return s["orders"].Version == v })

	pv, err := b.Put(ctx, "orders", def("orders"), Paused)
	if err != nil || pv <= v {
		t.Fatalf("pause via B: version %d (after %d), %v", pv, v, err)
	}
	eventually(t, "A sees B's pause", a, func(s map[string]Entry) bool { return s["orders"].Target == Paused })

	if _, err := a.Delete(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Snapshot()["orders"]; ok {
		t.Fatal("A still has the connector right after its Delete")
	}
	eventually(t, "B sees the delete", b, func(s map[string]Entry) bool { _, ok := s["orders"]; return !ok })
}

// TestConcurrentPutsConverge: A and B write the same connector at once,
// many times; both end with the same entry, the one at the highest offset.
func TestConcurrentPutsConverge(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	a, b := open(t, c), open(t, c)
	var wg sync.WaitGroup
	var mu sync.Mutex
	last := int64(-1)
	for i, m := range []*ConfigLog{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				v, err := m.Put(ctx, "c", def(fmt.Sprintf("m%d-%d", i, j)), Running)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				last = max(last, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, m := range []*ConfigLog{a, b} {
		eventually(t, "convergence", m, func(s map[string]Entry) bool { return s["c"].Version == last })
	}
	if da, db := a.Snapshot()["c"].Definition, b.Snapshot()["c"].Definition; string(da) != string(db) {
		t.Fatalf("A holds %s, B holds %s", da, db)
	}
}

// TestSeedAndRestart: seeding writes a connector only if it was never
// written, a deleted one included; a member opened later (a restart)
// rebuilds the same snapshot; the topic is one compacted partition.
func TestSeedAndRestart(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	a := open(t, c)
	if wrote, err := a.SeedIfAbsent(ctx, "fromfile", def("v1")); err != nil || !wrote {
		t.Fatalf("first seed: %v, %v", wrote, err)
	}
	if _, err := a.Put(ctx, "fromfile", def("v2 via the API"), Running); err != nil {
		t.Fatal(err)
	}
	if wrote, err := a.SeedIfAbsent(ctx, "fromfile", def("v1")); err != nil || wrote {
		t.Fatalf("seeding over an API change: wrote %v, %v", wrote, err)
	}
	if _, err := a.Put(ctx, "gone", def("gone"), Running); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if wrote, _ := a.SeedIfAbsent(ctx, "gone", def("gone")); wrote {
		t.Fatal("a deleted connector was seeded again")
	}

	restarted := open(t, c) // everything before Open returns is read
	got, want := restarted.Snapshot(), a.Snapshot()
	if len(got) != 1 || string(got["fromfile"].Definition) != string(def("v2 via the API")) || got["fromfile"].Version != want["fromfile"].Version {
		t.Fatalf("after a restart: %v, want %v", got, want)
	}
	if wrote, _ := restarted.SeedIfAbsent(ctx, "gone", def("gone")); wrote {
		t.Fatal("a restarted member seeded a deleted connector")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil || len(td[topic].Partitions) != 1 {
		t.Fatalf("config topic: %v, %v; want one partition", td[topic], err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := rc.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range policy.Configs {
		if cfg.Key == "cleanup.policy" && cfg.MaybeValue() != "compact" {
			t.Fatalf("cleanup.policy %q, want compact", cfg.MaybeValue())
		}
	}
}

// TestUnknownRecordsAreSkipped: a record this version cannot read (another
// key, a value that is not an entry) is skipped, and the reader goes on.
func TestUnknownRecordsAreSkipped(t *testing.T) {
	ctx := t.Context()
	c := newCluster(t)
	a := open(t, c)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Key: []byte("task/x"), Value: []byte(`{}`)},
		&kgo.Record{Key: []byte("connector/bad"), Value: []byte(`not json`)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "good", def("good"), Running); err != nil {
		t.Fatal(err)
	}
	if s := a.Snapshot(); len(s) != 1 || s["good"].Target != Running {
		t.Fatalf("snapshot %v, want only good", s)
	}
}
