// Package e2e is the shared harness of connectd's end-to-end tests: an
// in-process kfake Kafka cluster, configs written as YAML in the test,
// daemons started and stopped in the test process, input with unique event
// IDs, injected broker faults, and the exactly-once checker.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/verify"
)

// Cluster starts a three-broker kfake cluster with auto-created 4-partition
// topics, closed when the test ends.
func Cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(3),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(4),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Parse parses a config written in the test with tabs for indentation;
// BROKERS becomes the cluster's addresses and each pair of replace is an
// old, new substitution.
func Parse(t testing.TB, c *kfake.Cluster, yaml string, replace ...string) *config.Config {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "\t", "  ")
	yaml = strings.ReplaceAll(yaml, "BROKERS", strings.Join(c.ListenAddrs(), ","))
	yaml = strings.NewReplacer(replace...).Replace(yaml)
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg
}

// FastClient shortens franz-go's retry backoff so faults resolve quickly.
var FastClient = []kgo.Opt{
	kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
}

// Logger logs the pipeline's warnings (everything with CONNECTD_TEST_DEBUG
// set) to the test log.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CONNECTD_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Start runs cfg's connectors as instance id until the test ends.
func Start(t testing.TB, cfg *config.Config, id string, opts ...kgo.Opt) *daemon.Daemon {
	t.Helper()
	cfg.InstanceID = id
	d, err := daemon.New(cfg, Logger(t).With("instance", id))
	if err != nil {
		t.Fatal(err)
	}
	d.ClientOpts = append(append([]kgo.Opt{}, FastClient...), opts...)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// Check runs the exactly-once checker on connector name of cfg.
func Check(t testing.TB, c *kfake.Cluster, cfg *config.Config, name string) verify.Report {
	t.Helper()
	for _, cc := range cfg.Connectors {
		if cc.Name != name {
			continue
		}
		spec, err := pipeline.Decode(cc)
		if err != nil {
			t.Fatal(err)
		}
		// The checker reads the input through the same faulty broker: a
		// fetch fault can fail one run of it, so try a few times.
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			var rep verify.Report
			rep, err = verify.Run(ctx, verify.Options{Spec: spec, Brokers: c.ListenAddrs(), ClientOpts: FastClient})
			cancel()
			if err == nil {
				return rep
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("verify %s: %v", name, err)
	}
	t.Fatalf("no connector %q", name)
	return verify.Report{}
}

// WaitExpected waits until the checker counts at least n expected outputs
// (it reads the committed checkpoint) and returns its report.
func WaitExpected(t testing.TB, c *kfake.Cluster, cfg *config.Config, name string, n int, within time.Duration) verify.Report {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep := Check(t, c, cfg, name)
		if rep.Expected >= n {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector %s: %d of %d expected outputs committed after %v: %s", name, rep.Expected, n, within, rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// MustBeClean fails the test unless rep is exactly once.
func MustBeClean(t testing.TB, rep verify.Report, what string) {
	t.Helper()
	if !rep.Clean() {
		t.Fatalf("%s: not exactly once: %s", what, rep)
	}
	t.Logf("%s: %s", what, rep)
}

// Produce writes records from..to-1 to topic with unique event IDs
// ("in-<i>"), repeating keys and JSON values {"i":i,"amount":i%1000}.
func Produce(t testing.TB, c *kfake.Cluster, topic string, from, to int) {
	t.Helper()
	if err := ProduceRecords(c, topic, InputRecords(from, to)); err != nil {
		t.Fatal(err)
	}
}

// ProduceRecords writes recs to topic; it returns its error, for
// goroutines.
func ProduceRecords(c *kfake.Cluster, topic string, recs []*kgo.Record) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// InputRecords are Produce's records from..to-1, for the client's default
// topic.
func InputRecords(from, to int) []*kgo.Record {
	return PoisonedRecords(from, to, 0)
}

// PoisonedRecords are InputRecords with every poison-th value (i%poison
// == poison-1) not JSON: a poison record for a json: column or transform,
// which goes to the dead letters. poison 0: none.
func PoisonedRecords(from, to, poison int) []*kgo.Record {
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		v := fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i%1000)
		if poison > 0 && i%poison == poison-1 {
			v = fmt.Appendf(nil, "not json %d", i)
		}
		recs = append(recs, &kgo.Record{
			Key:     fmt.Appendf(nil, "k-%d", i%97),
			Value:   v,
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
		})
	}
	return recs
}

// ConsumerFaults are the broker faults a Kafka-source, non-Kafka-sink
// pipeline meets: fetches and group offset commits failing, including
// REQUEST_TIMED_OUT answered after kfake applied the commit.
var ConsumerFaults = []kfake.Fault{
	{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.UnknownServerError},
	{Keys: []kmsg.Key{kmsg.OffsetCommit}, Err: kerr.RequestTimedOut},
	{Keys: []kmsg.Key{kmsg.Heartbeat}, Err: kerr.RebalanceInProgress},
}

// Injector fails each request matching one of its faults with probability
// p (the fault rate follows the traffic), and each fault once for sure.
type Injector struct {
	faults       []kfake.Fault
	sure, random []*kfake.FaultHandle
}

// Inject installs faults on c.
func Inject(c *kfake.Cluster, faults []kfake.Fault, seed uint64, p float64) *Injector {
	return inject(c, Schedule{Faults: faults, Seed: seed, P: p})
}

// inject installs s's faults on c; s.SureWhen chooses a fault's sure hit.
func inject(c *kfake.Cluster, s Schedule) *Injector {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed))
	in := &Injector{faults: s.Faults}
	for i, f := range s.Faults {
		sure := f
		if w := s.SureWhen[i]; w != nil {
			sure.When = w
		}
		in.sure = append(in.sure, c.Fault(sure))
		f.Count = -1
		f.When = func(kmsg.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < s.P
		}
		in.random = append(in.random, c.Fault(f))
	}
	return in
}

// SureHits is how many requests the i-th fault's sure hit failed (0 or 1).
func (in *Injector) SureHits(i int) int { return in.sure[i].Hits() }

// Fired reports whether the i-th fault failed at least one request.
func (in *Injector) Fired(i int) bool { return in.sure[i].Hits()+in.random[i].Hits() > 0 }

// Stop removes the faults and returns how many requests they failed and a
// summary per fault.
func (in *Injector) Stop() (int, string) {
	hits := 0
	var sum []string
	for i, f := range in.faults {
		n := in.sure[i].Hits() + in.random[i].Hits()
		in.sure[i].Remove()
		in.random[i].Remove()
		hits += n
		sum = append(sum, fmt.Sprintf("%s %s: %d", f.Keys[0].Name(), f.Err.Message, n))
	}
	return hits, strings.Join(sum, "; ")
}
