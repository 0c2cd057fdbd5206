package pg_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

// env is one test's Kafka (kfake) and PostgreSQL database.
type env struct {
	t   *testing.T
	c   *kfake.Cluster
	dsn string
}

func newEnv(t *testing.T, opts ...kfake.Opt) *env {
	t.Helper()
	dsn := testenv.Postgres(t) // first: skips under -short
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(3),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(4),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{t: t, c: c, dsn: dsn}
}

// parse parses a YAML config written in the test (tabs for indentation),
// with BROKERS and DSN filled in.
func (e *env) parse(yaml string) *config.Config {
	e.t.Helper()
	yaml = strings.ReplaceAll(yaml, "\t", "  ")
	yaml = strings.ReplaceAll(yaml, "BROKERS", strings.Join(e.c.ListenAddrs(), ","))
	yaml = strings.ReplaceAll(yaml, "DSN", e.dsn)
	cfg, err := config.Parse(e.t.Name()+".yaml", []byte(yaml))
	if err != nil {
		e.t.Fatalf("config:\n%v", err)
	}
	return cfg
}

// fastClient shortens franz-go's retry timings so faults resolve quickly.
var fastClient = []kgo.Opt{
	kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
}

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CONNECTD_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startDaemon runs cfg's connectors as instance id until the test ends.
func (e *env) startDaemon(cfg *config.Config, id string, opts []kgo.Opt) *daemon.Daemon {
	e.t.Helper()
	cfg.InstanceID = id
	d, err := daemon.New(cfg, testLogger(e.t).With("instance", id))
	if err != nil {
		e.t.Fatal(err)
	}
	d.ClientOpts = opts
	if err := d.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(d.Stop)
	return d
}

// check runs the exactly-once checker on connector name of cfg.
func (e *env) check(cfg *config.Config, name string) verify.Report {
	e.t.Helper()
	for _, cc := range cfg.Connectors {
		if cc.Name != name {
			continue
		}
		spec, err := pipeline.Decode(cc)
		if err != nil {
			e.t.Fatal(err)
		}
		// The checker reads the input through the same faulty broker: a
		// fetch fault fails one run of it, so try a few times.
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			var rep verify.Report
			rep, err = verify.Run(ctx, verify.Options{Spec: spec, Brokers: e.c.ListenAddrs(), ClientOpts: fastClient})
			cancel()
			if err == nil {
				return rep
			}
			time.Sleep(100 * time.Millisecond)
		}
		e.t.Fatalf("verify %s: %v", name, err)
	}
	e.t.Fatalf("no connector %q", name)
	return verify.Report{}
}

// waitExpected waits until the checker sees at least n expected outputs
// (inputs below the committed checkpoint).
func (e *env) waitExpected(cfg *config.Config, name string, n int, within time.Duration) verify.Report {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		rep := e.check(cfg, name)
		if rep.Expected >= n {
			return rep
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("connector %s: %d of %d expected outputs committed after %v: %s", name, rep.Expected, n, within, rep)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must(t *testing.T, rep verify.Report, what string) {
	t.Helper()
	if !rep.Clean() {
		t.Fatalf("%s: not exactly once: %s", what, rep)
	}
	t.Logf("%s: %s", what, rep)
}

// produce writes records from..to-1 to topic: event IDs "in-<i>", JSON
// values with an amount, every 500th value not JSON (a poison record for a
// json: column).
func (e *env) produce(topic string, from, to int) {
	e.t.Helper()
	if err := e.produceErr(topic, from, to); err != nil {
		e.t.Fatal(err)
	}
}

// produceErr is produce returning its error, for goroutines.
func (e *env) produceErr(topic string, from, to int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.ListenAddrs()...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := make([]*kgo.Record, 0, to-from)
	for i := from; i < to; i++ {
		v := fmt.Appendf(nil, `{"i":%d,"amount":%d}`, i, i%1000)
		if i%500 == 499 {
			v = fmt.Appendf(nil, "not json %d", i)
		}
		recs = append(recs, &kgo.Record{
			Key:     fmt.Appendf(nil, "k-%d", i%97),
			Value:   v,
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", i)}},
		})
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// feeder produces records to a topic in the background, keeping the
// connector's backlog (records produced and not yet committed) at least
// feedAhead records long: the connector always has a full batch in
// flight, on a fast quiet machine as on a slow loaded one.
type feeder struct {
	next     int // the next record to produce; read after stop
	err      error
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// feedAhead is the backlog a feeder keeps, and feedChunk the records it
// produces at a time: several batches of copyYAML's 400 records.
const (
	feedAhead = 5000
	feedChunk = 1000
)

// feed starts a feeder producing records from on to topic; committed
// reports how many input records the connector has committed. It stops at
// the latest when the test ends.
func (e *env) feed(topic string, from int, committed func() int) *feeder {
	f := &feeder{next: from, quit: make(chan struct{}), done: make(chan struct{})}
	e.t.Cleanup(f.halt)
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.quit:
				return
			default:
			}
			if f.next-committed() >= feedAhead {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if f.err = e.produceErr(topic, f.next, f.next+feedChunk); f.err != nil {
				return
			}
			f.next += feedChunk
		}
	}()
	return f
}

// stop stops the feeder and returns how many records the topic holds.
func (f *feeder) stop(t *testing.T) int {
	t.Helper()
	f.halt()
	if f.err != nil {
		t.Fatalf("feeding the input: %v", f.err)
	}
	return f.next
}

func (f *feeder) halt() {
	f.stopOnce.Do(func() { close(f.quit) })
	<-f.done
}

// checkpointed is the input records a connector on d has committed: the
// sum of its partitions' checkpoints.
func checkpointed(d *daemon.Daemon, name string) int {
	st, _ := d.Status(name)
	n := 0
	for _, p := range st.Partitions {
		n += int(p.Checkpoint)
	}
	return n
}

// query runs a one-value query on the test database.
func (e *env) query(q string, args ...any) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// aborts sums a connector's aborted batches on d.
func aborts(d *daemon.Daemon, name string) int {
	st, _ := d.Status(name)
	n := 0
	for _, v := range st.Aborts {
		n += int(v)
	}
	return n
}
