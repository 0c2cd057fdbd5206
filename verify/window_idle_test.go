package verify_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/e2e"
)

// TestIdleTimeoutAgreesWithTheOracle runs a windowed connector with
// watermark.idle_timeout on kfake. Partition 3 gets a few records and then
// falls silent while partitions 0-2 keep receiving input whose event time
// runs ahead; after idle_timeout the stage raises partition 3's watermark
// to theirs and emits its windows without any new input on it (what the
// test waits for). A record for one of those windows then comes to
// partition 3: it is late because of the idle advance (dead letter with
// connectd.late.reason=idle). The batch oracle replays the logged idle
// advances and must find the output exactly, running and stopped.
func TestIdleTimeoutAgreesWithTheOracle(t *testing.T) {
	c := e2e.Cluster(t)
	yaml := strings.Replace(windowYAML, "{max_out_of_orderness: 2s}", "{max_out_of_orderness: 2s, idle_timeout: 1s}", 1)
	cfg := e2e.Parse(t, c, yaml, "WINDOW", "{type: tumbling, size: 3s}")
	// Partition 3: keys k3-0..2 at event times 0-2.5s, window [0, 3s).
	var early []*kgo.Record
	for i := range 6 {
		early = append(early, idleRecord(3, fmt.Sprintf("k3-%d", i%3), int64(i)*500, i))
	}
	produce(t, c, early)
	d := e2e.Start(t, cfg, "a")

	// The other partitions' event time runs at 20× wall time, so their
	// watermark passes partition 3's window within a second or two.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		seq, start := 1000, time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ts := time.Since(start).Milliseconds() * 20
			var batch []*kgo.Record
			for p := range int32(3) {
				batch = append(batch, idleRecord(p, fmt.Sprintf("k%d-%d", p, seq%4), ts, seq))
				seq++
			}
			produce(t, c, batch)
		}
	}()
	stopInput := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopInput()

	// Partition 3's window is emitted with no new input on partition 3.
	waitForRecord(t, c, "out", 30*time.Second, func(r *kgo.Record) bool { return strings.HasPrefix(string(r.Key), "k3-") })
	st, _ := d.Status("win")
	if st.Window == nil || st.Window.IdleAdvances == 0 {
		t.Fatalf("partition 3's window was emitted but status shows no idle advance: %+v", st.Window)
	}

	// A record for the window the idle advance closed: late, reason idle.
	produce(t, c, []*kgo.Record{idleRecord(3, "k3-0", 2900, 99)})
	waitForRecord(t, c, "dlq", 30*time.Second, func(r *kgo.Record) bool {
		for _, h := range r.Headers {
			if h.Key == pipeline.HeaderLateReason && string(h.Value) == "idle" {
				return true
			}
		}
		return false
	})
	if rep := check(t, c, cfg, false); !rep.Clean() || rep.Late == 0 {
		t.Fatalf("running: %s, want clean with the idle-late record", rep)
	}
	stopInput()
	time.Sleep(500 * time.Millisecond) // the last batches commit
	d.Stop()
	for _, stopped := range []bool{false, true} {
		rep := check(t, c, cfg, stopped)
		if !rep.Clean() || rep.Windows == 0 || rep.Late == 0 || rep.UncheckedPartitions != 0 {
			t.Fatalf("stopped=%v: %s, want clean over windows and the idle-late record", stopped, rep)
		}
		t.Logf("stopped=%v: %s; idle advances %d, idle-late records %d", stopped, rep, st.Window.IdleAdvances, st.Window.IdleLate)
	}
}

func idleRecord(p int32, key string, ts int64, seq int) *kgo.Record {
	return &kgo.Record{Topic: "in", Partition: p, Key: []byte(key),
		Value:   fmt.Appendf(nil, `{"ts":%d,"amount":%d}`, ts, seq%7),
		Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "idle-%d", seq)}}}
}

// waitForRecord reads topic with read_committed from the start until a record
// satisfies ok, or fails the test after within.
func waitForRecord(t *testing.T, c *kfake.Cluster, topic string, within time.Duration, ok func(*kgo.Record) bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no matching record in %s within %v", topic, within)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || ok(r) })
		if found {
			return
		}
	}
}
