package batch_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// killAt is where the bounded run is SIGKILLed: as soon as the run has
// committed something and the job (all connectors) at least this share of
// its records. The first kill thus comes right after the first commit,
// when every connector still has input to read, and the kills later on
// restart connectors from checkpoints (and window state) mid-job.
var killAt = []float64{0, 0.3, 0.6}

// TestBatchEqualsStream: a stateless and a windowed exactly_once connector
// into Kafka, PostgreSQL and Redis (six connectors, one config) over one
// input topic of 100,000 events and a sentinel per partition.
//
//   - The stream: `connectd run -c stream.yaml` drains the input and is
//     stopped with SIGTERM.
//   - The batch: the same connectors with their own groups and outputs,
//     `connectd run -c batch.yaml --until end`, SIGKILLed three times with
//     every connector (the first time) or some (later) below its stops,
//     then run again until it exits 0.
//
// `connectd verify --stopped` must be clean on all twelve, and each
// connector's two outputs equal as multisets of (key, value, event ID),
// Kafka read with read_committed. One difference is by design: a stream
// emits a window once its partition's watermark passes it, and the end of
// a bounded run emits every window still open. The sentinels' event time
// closes every window of the events in the stream, so the windowed outputs
// differ exactly by the sentinels' own windows, which only the batch
// emits; that is asserted too.
func TestBatchEqualsStream(t *testing.T) {
	began := time.Now()
	brokers := testenv.Kafka(t)
	svc := services{brokers: brokers, input: testenv.KafkaTopic(t, brokers, partitions), dsn: testenv.Postgres(t), eventBase: eventTimeBase()}
	svc.redisAddr, svc.redisPrefix = testenv.Redis(t)
	bin := connectd.Path(t)
	dir := t.TempDir()
	stream := newSide(t, svc, "stream", dir)
	batch := newSide(t, svc, "batch", dir)

	mark := time.Now()
	stops := produceInput(t, brokers, svc.input)
	t.Logf("input: %d events and %d sentinels on %s in %.1fs (setup and build %.1fs)", events, partitions, svc.input,
		time.Since(mark).Seconds(), mark.Sub(began).Seconds())

	mark = time.Now()
	runStream(t, bin, svc, stream, stops, dir)
	t.Logf("stream: drained and stopped in %.1fs", time.Since(mark).Seconds())

	mark = time.Now()
	runBatch(t, svc, batch, stops, filepath.Join(dir, "batch.log"))
	t.Logf("batch: %d kills, finished in %.1fs", len(killAt), time.Since(mark).Seconds())

	mark = time.Now()
	windows := inputWindows()
	for _, s := range []*side{stream, batch} {
		for _, c := range connectors {
			rep := verifyStopped(t, s, c.name())
			want := events + partitions
			if c.kind == winKind {
				want = windows
				if s == batch {
					want += partitions // the sentinels' windows, closed by the end of input
				}
				if rep.Windows != want || rep.Late != 0 {
					t.Errorf("%s %s: verify counted %d windows and %d late records, want %d and none", s.label, c.name(), rep.Windows, rep.Late, want)
				}
			}
			if rep.Expected != want || rep.Actual != want {
				t.Errorf("%s %s: verify covered %d expected / %d actual outputs, want %d", s.label, c.name(), rep.Expected, rep.Actual, want)
			}
		}
	}
	if t.Failed() {
		logKafkaOffsets(t, brokers, stream, batch)
	}
	t.Logf("verify: %d connectors in %.1fs", 2*len(connectors), time.Since(mark).Seconds())

	mark = time.Now()
	outs := readOutputs(t, svc, stream, batch)
	for _, c := range connectors {
		compareOutputs(t, c, outs[stream.label][c.name()], outs[batch.label][c.name()], windows)
	}
	t.Logf("outputs compared in %.1fs; whole test %.1fs", time.Since(mark).Seconds(), time.Since(began).Seconds())
}

// runStream runs the stream side until every connector has committed the
// whole input, then stops it with SIGTERM, which must exit 0.
func runStream(t *testing.T, bin string, svc services, s *side, stops connector.Checkpoint, dir string) {
	t.Helper()
	proc := testenv.NewProcess(t, bin, s.cfgPath, filepath.Join(dir, "stream.log"), s.instance, testenv.ProcessOptions{Dir: dir})
	proc.Start()
	alive := func() error {
		if st := proc.ExitState(); st != nil {
			return fmt.Errorf("the stream exited (%v)\n%s", st, proc.LogTail(40))
		}
		return nil
	}
	s.waitProgress(t, svc.brokers, stops, 10*time.Minute, "the whole input committed", alive,
		func(p progress) bool { return len(p.unfinished) == 0 })
	proc.Signal(syscall.SIGTERM)
	if code := proc.WaitExit(time.Minute); code != 0 {
		t.Fatalf("stream: exit %d after SIGTERM, want 0\n%s", code, proc.LogTail(40))
	}
}

// runBatch runs the bounded side, SIGKILLs it at killAt, and runs the
// same command once more, which must finish the job (exit 0).
func runBatch(t *testing.T, svc services, s *side, stops connector.Checkpoint, logPath string) {
	t.Helper()
	adm := kadm.NewClient(testenv.KafkaClient(t, svc.brokers))
	prev := s.readProgress(svc.brokers, stops) // when the previous process died
	for k, at := range killAt {
		r := startBounded(t, s, logPath, k+1)
		deadline := time.Now().Add(limit(t, 10*time.Minute))
		for {
			// The groups' offsets lag the checkpoints, so more than the
			// checkpoints after the last kill means this run committed.
			done := s.groupsDone(context.Background(), adm, stops)
			if done > prev.done && float64(done) >= at*float64(prev.total) {
				break
			}
			if err := r.exited(); err != nil {
				t.Fatalf("before SIGKILL %d: %v\n%s", k+1, err, logTail(logPath, 40))
			}
			if time.Now().After(deadline) {
				t.Fatalf("before SIGKILL %d: the job did not reach %.0f%%: %s", k+1, 100*at, s.readProgress(svc.brokers, stops))
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.kill()
		// Read once the process is gone: nothing of it commits any
		// more, so a connector below its stops had work in flight.
		after := s.readProgress(svc.brokers, stops)
		switch {
		case len(after.unfinished) == 0:
			t.Fatalf("SIGKILL %d found the job finished: no work in flight (%s)", k+1, after)
		case k == 0 && len(after.unfinished) != len(connectors):
			t.Fatalf("SIGKILL %d, right after the first commit, found a connector finished: %s", k+1, after)
		case after.done <= prev.done:
			t.Fatalf("SIGKILL %d: the killed run committed nothing: %s, before it %s", k+1, after, prev)
		}
		t.Logf("SIGKILL %d: the run took the job from %d to %d of %d records; %d connectors below their stops: %s",
			k+1, prev.done, after.done, after.total, len(after.unfinished), after.perConnector(stops))
		prev = after
	}
	r := startBounded(t, s, logPath, len(killAt)+1)
	code, sum := r.wait(10*time.Minute, logPath)
	if code != 0 || sum.Outcome != "finished" {
		t.Fatalf("the bounded run after %d kills: exit %d, %+v; want 0, finished\n%s", len(killAt), code, sum, logTail(logPath, 40))
	}
	final := s.readProgress(svc.brokers, stops)
	if len(final.unfinished) != 0 || final.done <= prev.done {
		t.Fatalf("the bounded run exited 0 but the job is not done: %s", final)
	}
	t.Logf("final bounded run: exit 0 in %.1fs, took the job from %d to %d records: %+v", sum.Seconds, prev.done, final.done, sum.Connectors)
}

// compareOutputs requires the stream's and the batch's outputs of c to be
// equal record for record; a windowed connector's batch output also holds
// the sentinels' windows, one per partition, which the stream keeps open.
func compareOutputs(t *testing.T, c connectorDef, stream, batch multiset, windows int) {
	t.Helper()
	want := events + partitions
	if c.kind == winKind {
		var sentStream, sentBatch multiset
		stream, sentStream = withoutSentinels(stream)
		batch, sentBatch = withoutSentinels(batch)
		if len(sentStream) != 0 {
			t.Errorf("%s: the stream emitted a sentinel's window, which no watermark closed: %v", c.name(), sentStream)
		}
		keys := map[string]bool{}
		for r, n := range sentBatch {
			for range n {
				keys[r.key] = true
			}
		}
		if sentBatch.size() != partitions || len(keys) != partitions {
			t.Errorf("%s: the batch emitted %d sentinel windows of %d keys, want one per partition (%d): %v", c.name(), sentBatch.size(), len(keys), partitions, sentBatch)
		}
		want = windows
	}
	onlyStream, ss := difference(stream, batch, 10)
	onlyBatch, bs := difference(batch, stream, 10)
	switch {
	case onlyStream > 0 || onlyBatch > 0:
		t.Errorf("%s: outputs differ: %d records only in the stream's, e.g. %v; %d only in the batch's, e.g. %v",
			c.name(), onlyStream, ss, onlyBatch, bs)
	case stream.size() != want:
		t.Errorf("%s: %d records in both outputs, want %d", c.name(), stream.size(), want)
	default:
		t.Logf("%s: stream and batch outputs equal: %d records (%d distinct)", c.name(), stream.size(), len(stream))
	}
}
