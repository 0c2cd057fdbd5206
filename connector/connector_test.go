package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fakes below model the Source/Protocol contract: the protocol's Recover
// seeks the source to the last durably committed checkpoint, so a batch that
// did not commit is re-read from the source, never retried from memory.

// fakeSource serves a fixed log per partition. Poll hands out up to perPoll
// records (round-robin over partitions in order), or blocks until ctx is done
// when nothing is left, then returns nothing and a nil error (or ctx.Err()
// when errOnDone is set).
type fakeSource struct {
	mu        sync.Mutex
	logs      map[TopicPartition][]string // values per offset
	order     []TopicPartition
	pos       map[TopicPartition]int64
	perPoll   int
	errOnDone bool
	onIdle    func()         // called when Poll finds nothing and blocks
	reads     map[Origin]int // how often each record was polled
	hwms      map[TopicPartition]int64
	closed    bool
}

func newFakeSource(perPoll int, counts map[TopicPartition]int) *fakeSource {
	s := &fakeSource{
		logs:    map[TopicPartition][]string{},
		pos:     map[TopicPartition]int64{},
		perPoll: perPoll,
		reads:   map[Origin]int{},
	}
	for tp, n := range counts {
		for i := range n {
			s.logs[tp] = append(s.logs[tp], fmt.Sprintf("%s-%d", tp, i))
		}
	}
	s.order = Checkpoint(func() Checkpoint {
		cp := Checkpoint{}
		for tp := range counts {
			cp[tp] = 0
		}
		return cp
	}()).Partitions()
	return s
}

// end is the checkpoint after every record of the log.
func (s *fakeSource) end() Checkpoint {
	cp := Checkpoint{}
	for tp, l := range s.logs {
		cp[tp] = int64(len(l))
	}
	return cp
}

func (s *fakeSource) Poll(ctx context.Context, max int) ([]*Record, error) {
	s.mu.Lock()
	var out []*Record
	limit := min(max, s.perPoll)
	for progress := true; progress && len(out) < limit; {
		progress = false
		for _, tp := range s.order {
			if len(out) >= limit {
				break
			}
			p := s.pos[tp]
			if p >= int64(len(s.logs[tp])) {
				continue
			}
			o := Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: p}
			out = append(out, &Record{
				Key:    []byte(tp.String()),
				Value:  []byte(s.logs[tp][p]),
				Origin: o,
			})
			s.reads[o]++
			s.pos[tp] = p + 1
			progress = true
		}
	}
	onIdle := s.onIdle
	s.mu.Unlock()
	if len(out) > 0 {
		return out, nil
	}
	if onIdle != nil {
		onIdle()
	}
	<-ctx.Done()
	if s.errOnDone {
		return nil, ctx.Err()
	}
	return nil, nil
}

func (s *fakeSource) Seek(cp Checkpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos = map[TopicPartition]int64{}
	for tp, o := range cp {
		s.pos[tp] = o
	}
}

func (s *fakeSource) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *fakeSource) readsOf(o Origin) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[o]
}

// laggingSource adds high watermarks to fakeSource.
type laggingSource struct{ *fakeSource }

func (s laggingSource) HighWatermarks() map[TopicPartition]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[TopicPartition]int64{}
	for tp, o := range s.hwms {
		out[tp] = o
	}
	return out
}

// fakeProcessor passes records through (cloned), optionally emitting two
// outputs per input or failing on one value.
type fakeProcessor struct {
	double bool
	failOn string
}

func (p *fakeProcessor) Process(in []*Record) ([]*Record, error) {
	var out []*Record
	for _, r := range in {
		if p.failOn != "" && string(r.Value) == p.failOn {
			return nil, &RecordError{Origin: r.Origin, Stage: "transform", Err: errors.New("bad record")}
		}
		c := r.Clone()
		c.EventID = r.Origin.String()
		out = append(out, c)
		if p.double {
			d := r.Clone()
			d.EventID = r.Origin.String() + "/1"
			out = append(out, d)
		}
	}
	return out, nil
}

// commitOutcome scripts one Commit: err is returned; applied says whether
// the batch became durable anyway (an unknown outcome that did commit).
type commitOutcome struct {
	err     error
	applied bool
}

// fakeProtocol records every call and keeps the durable state: the outputs
// and the checkpoint of committed batches.
type fakeProtocol struct {
	mu         sync.Mutex
	calls      []string
	pending    []*Record
	open       bool
	outcomes   []commitOutcome   // per Commit call, in order; then success
	alwaysFail error             // every Commit fails with it, if set
	recoverErr func(n int) error // error of the n-th Recover (from 1), may be nil
	onCommit   func(durable Checkpoint)
	onWrite    func()

	commits        int
	recovers       int
	durable        Checkpoint
	outputs        []*Record
	commitCtxErr   []error // ctx.Err() seen by each Commit
	committedCPs   []Checkpoint
	batches        [][]*Record // the records written in each committed batch, per Commit call
	recoverCauses  []error
	writesAfterEnd int // Write calls without an open batch
}

func newFakeProtocol() *fakeProtocol {
	return &fakeProtocol{durable: Checkpoint{}}
}

func (p *fakeProtocol) log(call string) {
	p.calls = append(p.calls, call)
}

func (p *fakeProtocol) Begin(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log("begin")
	if p.open {
		return NewCommitError(Fatal, "begin", errors.New("batch already open"))
	}
	p.open, p.pending = true, nil
	return nil
}

func (p *fakeProtocol) Write(_ context.Context, recs []*Record) error {
	p.mu.Lock()
	p.log(fmt.Sprintf("write(%d)", len(recs)))
	if !p.open {
		p.writesAfterEnd++
	}
	p.pending = append(p.pending, recs...)
	onWrite := p.onWrite
	p.mu.Unlock()
	if onWrite != nil {
		onWrite()
	}
	return nil
}

func (p *fakeProtocol) Commit(ctx context.Context, cp Checkpoint) error {
	p.mu.Lock()
	p.log("commit")
	p.commitCtxErr = append(p.commitCtxErr, ctx.Err())
	p.committedCPs = append(p.committedCPs, cp.Clone())
	p.batches = append(p.batches, slices.Clone(p.pending))
	var out commitOutcome
	if p.commits < len(p.outcomes) {
		out = p.outcomes[p.commits]
	}
	if p.alwaysFail != nil {
		out = commitOutcome{err: p.alwaysFail}
	}
	p.commits++
	if out.err == nil || out.applied {
		p.outputs = append(p.outputs, p.pending...)
		p.durable.Merge(cp)
	}
	p.open, p.pending = false, nil
	durable := p.durable.Clone()
	onCommit := p.onCommit
	p.mu.Unlock()
	if out.err == nil && onCommit != nil {
		onCommit(durable)
	}
	return out.err
}

func (p *fakeProtocol) Abort(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log("abort")
	p.open, p.pending = false, nil
	return nil
}

func (p *fakeProtocol) Recover(_ context.Context, cause error) (Checkpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kind := "nil"
	if cause != nil {
		kind = KindOf(cause).String()
	}
	p.log("recover(" + kind + ")")
	p.recovers++
	p.recoverCauses = append(p.recoverCauses, cause)
	if p.recoverErr != nil {
		if err := p.recoverErr(p.recovers); err != nil {
			return nil, err
		}
	}
	// The contract: drop whatever is open and return the durable
	// checkpoint, re-read from where it is stored; the coordinator seeks
	// the source there.
	p.open, p.pending = false, nil
	return p.durable.Clone(), nil
}

func (p *fakeProtocol) Close() {
	p.mu.Lock()
	p.log("close")
	p.mu.Unlock()
}

func (p *fakeProtocol) callLog() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// compact merges consecutive writes into one "write" so call sequences do not
// depend on how many polls a batch took.
func compact(calls []string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, "write(") {
			c = "write"
		}
		if c == "write" && len(out) > 0 && out[len(out)-1] == "write" {
			continue
		}
		out = append(out, c)
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions() Options {
	return Options{
		Name:             "test",
		Guarantee:        "exactly_once",
		CommitInterval:   5 * time.Millisecond,
		ProgressInterval: -1,
		Logger:           quietLogger(),
	}
}

// runAsync runs c in the background and returns a function that waits for
// Run to return (failing the test after a generous deadline).
func runAsync(t *testing.T, c *Connector, ctx context.Context) func() error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Fatalf("Run did not return within 15s; status %+v", c.Status())
			return nil
		}
	}
}

func tp(topic string, p int32) TopicPartition { return TopicPartition{Topic: topic, Partition: p} }

// stopWhenDurable cancels the run once the protocol's durable checkpoint
// covers want.
func stopWhenDurable(p *fakeProtocol, want Checkpoint, cancel context.CancelFunc) {
	p.onCommit = func(durable Checkpoint) {
		for tp, o := range want {
			if durable[tp] < o {
				return
			}
		}
		cancel()
	}
}

// assertExactlyOnce checks that the durable outputs hold every record of the
// source's log exactly once and the durable checkpoint is the log's end.
func assertExactlyOnce(t *testing.T, src *fakeSource, p *fakeProtocol, perInput int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]int{}
	for _, r := range p.outputs {
		seen[r.EventID]++
	}
	want := 0
	for tp, l := range src.logs {
		for off := range l {
			o := Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: int64(off)}
			if n := seen[o.String()]; n != 1 {
				t.Errorf("output of %s committed %d times, want 1", o, n)
			}
			want += perInput
		}
	}
	if len(p.outputs) != want {
		t.Errorf("%d outputs committed, want %d", len(p.outputs), want)
	}
	end := src.end()
	for tp, o := range end {
		if p.durable[tp] != o {
			t.Errorf("durable checkpoint of %s = %d, want %d", tp, p.durable[tp], o)
		}
	}
	if len(p.durable) != len(end) {
		t.Errorf("durable checkpoint %v, want %v", p.durable, end)
	}
	if p.writesAfterEnd != 0 {
		t.Errorf("%d writes outside a begun batch", p.writesAfterEnd)
	}
}

func TestBatchCommitsCheckpointAfterItsRecords(t *testing.T) {
	tests := []struct {
		name     string
		counts   map[TopicPartition]int
		maxBatch int
		perPoll  int
		// wantFirst is the checkpoint of the first commit.
		wantFirst Checkpoint
	}{
		{
			name:      "one partition",
			counts:    map[TopicPartition]int{tp("a", 0): 5},
			maxBatch:  3,
			perPoll:   100,
			wantFirst: Checkpoint{tp("a", 0): 3},
		},
		{
			name:      "three partitions round robin",
			counts:    map[TopicPartition]int{tp("a", 0): 4, tp("a", 1): 4, tp("b", 0): 4},
			maxBatch:  5,
			perPoll:   100,
			wantFirst: Checkpoint{tp("a", 0): 2, tp("a", 1): 2, tp("b", 0): 1},
		},
		{
			// Where the batches end depends on the commit interval; only
			// the checkpoint-after-records rule is checked.
			name:     "several polls per batch",
			counts:   map[TopicPartition]int{tp("a", 0): 6, tp("b", 2): 1},
			maxBatch: 4,
			perPoll:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(tt.perPoll, tt.counts)
			proto := newFakeProtocol()
			opts := testOptions()
			opts.MaxBatch = tt.maxBatch
			// Full batches close at MaxBatch at once; the last, partial one
			// at the interval.
			opts.CommitInterval = 50 * time.Millisecond
			c := New(opts, src, &fakeProcessor{}, proto)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopWhenDurable(proto, src.end(), cancel)
			wait := runAsync(t, c, ctx)
			if err := wait(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.wantFirst != nil && cpString(proto.committedCPs[0]) != cpString(tt.wantFirst) {
				t.Errorf("first commit checkpoint %s, want %s", cpString(proto.committedCPs[0]), cpString(tt.wantFirst))
			}
			// Every commit's checkpoint names exactly the partitions of the
			// batch's input records, each at the offset after its last one.
			for i, cp := range proto.committedCPs {
				want := Checkpoint{}
				for _, r := range proto.batches[i] {
					want[TopicPartition{r.Origin.Topic, r.Origin.Partition}] = r.Origin.Offset + 1
				}
				if cpString(cp) != cpString(want) {
					t.Errorf("commit %d: checkpoint %s, want %s (after its records)", i, cpString(cp), cpString(want))
				}
			}
			assertExactlyOnce(t, src, proto, 1)
			st := c.Status()
			if st.State != Stopped {
				t.Errorf("state %s, want STOPPED", st.State)
			}
			for _, ps := range st.Partitions {
				if want := src.end()[TopicPartition{ps.Topic, ps.Partition}]; ps.Checkpoint != want {
					t.Errorf("status checkpoint of %s/%d = %d, want %d", ps.Topic, ps.Partition, ps.Checkpoint, want)
				}
			}
			if got, want := st.RecordsIn, uint64(len(proto.outputs)); got != want {
				t.Errorf("RecordsIn %d, want %d", got, want)
			}
			if got := st.Commits; got != uint64(len(proto.committedCPs)) {
				t.Errorf("Commits %d, want %d", got, len(proto.committedCPs))
			}
		})
	}
}

// cpString renders a checkpoint in partition order, for comparisons.
func cpString(c Checkpoint) string {
	var b strings.Builder
	for _, tp := range c.Partitions() {
		fmt.Fprintf(&b, "%s=%d ", tp, c[tp])
	}
	return strings.TrimSpace(b.String())
}

func TestFailedCommitIsReReadAfterRecover(t *testing.T) {
	abortable := NewCommitError(Abortable, "commit", errors.New("txn aborted"))
	fenced := NewCommitError(Fenced, "commit", errors.New("producer fenced"))
	unknown := NewCommitError(CommitUnknown, "commit", errors.New("timed out"))
	tests := []struct {
		name     string
		outcome  commitOutcome
		wantKind string
	}{
		{"abortable", commitOutcome{err: abortable}, "abortable"},
		{"fenced", commitOutcome{err: fenced}, "fenced"},
		{"commit unknown, not applied", commitOutcome{err: unknown}, "commit_unknown"},
		{"commit unknown, applied", commitOutcome{err: unknown, applied: true}, "commit_unknown"},
		{"unclassified error counts as unknown", commitOutcome{err: errors.New("connection reset")}, "commit_unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := map[TopicPartition]int{tp("in", 0): 5, tp("in", 1): 4}
			src := newFakeSource(100, counts)
			proto := newFakeProtocol()
			proto.outcomes = []commitOutcome{{}, tt.outcome} // the second commit fails
			opts := testOptions()
			opts.MaxBatch = 3
			opts.CommitInterval = time.Minute
			c := New(opts, src, &fakeProcessor{}, proto)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stopWhenDurable(proto, src.end(), cancel)
			if err := runAsync(t, c, ctx)(); err != nil {
				t.Fatalf("Run: %v", err)
			}

			calls := compact(proto.callLog())
			wantPrefix := []string{
				"recover(nil)", "begin", "write", "commit", // batch 1 commits
				"begin", "write", "commit", // batch 2 fails
				"recover(" + tt.wantKind + ")", // before anything else
				"begin", "write", "commit",
			}
			if len(calls) < len(wantPrefix) || !slices.Equal(calls[:len(wantPrefix)], wantPrefix) {
				t.Fatalf("calls %v\nwant prefix %v", calls, wantPrefix)
			}
			if slices.Contains(calls, "abort") {
				t.Errorf("Abort called after a failed Commit: %v", calls)
			}
			if proto.recoverCauses[1] != tt.outcome.err {
				t.Errorf("Recover cause %v, want %v", proto.recoverCauses[1], tt.outcome.err)
			}

			// The failed batch's records (batch 2) were polled again from
			// the source, unless its commit had in fact applied.
			batch2 := proto.committedCPs[1]
			first := proto.committedCPs[0]
			for tp, next := range batch2 {
				for off := first[tp]; off < next; off++ {
					o := Origin{tp.Topic, tp.Partition, off}
					want := 2
					if tt.outcome.applied {
						want = 1
					}
					if got := src.readsOf(o); got != want {
						t.Errorf("%s polled %d times, want %d", o, got, want)
					}
				}
			}
			assertExactlyOnce(t, src, proto, 1)
			st := c.Status()
			if st.Aborts[tt.wantKind] != 1 {
				t.Errorf("aborts %v, want one %s", st.Aborts, tt.wantKind)
			}
			if st.State != Stopped || st.Error != "" {
				t.Errorf("state %s error %q, want STOPPED and no error", st.State, st.Error)
			}
		})
	}
}

func TestFatalProcessErrorFailsConnector(t *testing.T) {
	tests := []struct {
		name      string
		perPoll   int
		failOn    string
		wantCalls []string
	}{
		{
			// The first poll holds the bad record: no batch was begun, so
			// nothing needs aborting.
			name:      "bad record in first poll",
			perPoll:   100,
			failOn:    "a/0-2",
			wantCalls: []string{"recover(nil)", "close"},
		},
		{
			// Two polls were written before the bad one: the open batch
			// is aborted.
			name:      "bad record after writes",
			perPoll:   1,
			failOn:    "a/0-2",
			wantCalls: []string{"recover(nil)", "begin", "write(1)", "write(1)", "abort", "close"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(tt.perPoll, map[TopicPartition]int{tp("a", 0): 5})
			proto := newFakeProtocol()
			proc := &fakeProcessor{failOn: tt.failOn}
			opts := testOptions()
			opts.CommitInterval = time.Minute // the batch stays open across polls
			c := New(opts, src, proc, proto)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := runAsync(t, c, ctx)()
			if err == nil {
				t.Fatal("Run returned nil, want the record error")
			}
			var re *RecordError
			if !errors.As(err, &re) || re.Origin != (Origin{"a", 0, 2}) {
				t.Errorf("Run error %v does not carry the RecordError of a/0/2", err)
			}
			if KindOf(err) != Fatal {
				t.Errorf("KindOf(%v) = %s, want fatal", err, KindOf(err))
			}
			st := c.Status()
			if st.State != Failed {
				t.Errorf("state %s, want FAILED", st.State)
			}
			if st.Error == "" || st.Error != err.Error() || !strings.Contains(st.Error, "a/0/2") {
				t.Errorf("status error %q, want %q naming a/0/2", st.Error, err)
			}
			if st.Aborts["fatal"] != 1 || st.Commits != 0 {
				t.Errorf("aborts %v commits %d, want one fatal and no commit", st.Aborts, st.Commits)
			}
			if got := proto.callLog(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("calls %v, want %v", got, tt.wantCalls)
			}
			if len(proto.outputs) != 0 {
				t.Errorf("%d outputs committed, want none", len(proto.outputs))
			}
			if !src.closed {
				t.Error("source not closed after Run")
			}
		})
	}
}

func TestRetryTimeoutFails(t *testing.T) {
	abortable := NewCommitError(Abortable, "produce", errors.New("broker down"))
	tests := []struct {
		name  string
		setup func(p *fakeProtocol)
	}{
		{"commit always abortable", func(p *fakeProtocol) { p.alwaysFail = abortable }},
		{"recover always abortable", func(p *fakeProtocol) {
			p.recoverErr = func(int) error { return abortable }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(100, map[TopicPartition]int{tp("a", 0): 3})
			proto := newFakeProtocol()
			tt.setup(proto)
			opts := testOptions()
			opts.RetryTimeout = 300 * time.Millisecond
			c := New(opts, src, &fakeProcessor{}, proto)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := runAsync(t, c, ctx)()
			if err == nil {
				t.Fatal("Run returned nil, want a retry-timeout error")
			}
			if !errors.Is(err, abortable) {
				t.Errorf("Run error %v does not wrap the last failure", err)
			}
			if !strings.Contains(err.Error(), "retry timeout") {
				t.Errorf("Run error %q does not mention the retry timeout", err)
			}
			st := c.Status()
			if st.State != Failed || st.Error != err.Error() {
				t.Errorf("state %s error %q, want FAILED with %q", st.State, st.Error, err)
			}
			if st.Aborts["abortable"] < 2 || st.Commits != 0 {
				t.Errorf("aborts %v commits %d, want several abortable and no commit", st.Aborts, st.Commits)
			}
		})
	}
}

func TestGracefulStopCommitsOpenBatch(t *testing.T) {
	tests := []struct {
		name string
		// errOnDone makes the blocked Poll return ctx.Err() at the stop.
		errOnDone bool
		// duringPoll stops while Poll waits for more records, else right
		// after the batch's write.
		duringPoll bool
	}{
		{"stop after write", false, false},
		{"stop during poll, poll returns nothing", false, true},
		{"stop during poll, poll returns context.Canceled", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(100, map[TopicPartition]int{tp("a", 0): 4, tp("a", 1): 2})
			src.errOnDone = tt.errOnDone
			proto := newFakeProtocol()
			opts := testOptions()
			opts.CommitInterval = time.Hour // only the stop closes the batch
			c := New(opts, src, &fakeProcessor{}, proto)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Stop while the batch holds records.
			if tt.duringPoll {
				src.onIdle = cancel
			} else {
				proto.onWrite = cancel
			}
			if err := runAsync(t, c, ctx)(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			want := []string{"recover(nil)", "begin", "write(6)", "commit", "close"}
			if got := proto.callLog(); !slices.Equal(got, want) {
				t.Errorf("calls %v, want %v", got, want)
			}
			if len(proto.commitCtxErr) != 1 || proto.commitCtxErr[0] != nil {
				t.Errorf("Commit context errors %v, want one live context", proto.commitCtxErr)
			}
			assertExactlyOnce(t, src, proto, 1)
			if st := c.Status(); st.State != Stopped || st.Error != "" {
				t.Errorf("state %s error %q, want STOPPED", st.State, st.Error)
			}
		})
	}
}

func TestIdleNeverBegins(t *testing.T) {
	src := newFakeSource(100, nil)
	proto := newFakeProtocol()
	c := New(testOptions(), src, &fakeProcessor{}, proto)
	ctx, cancel := context.WithCancel(context.Background())
	wait := runAsync(t, c, ctx)
	time.Sleep(100 * time.Millisecond) // many commit intervals
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := proto.callLog(), []string{"recover(nil)", "close"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	st := c.Status()
	if st.State != Stopped || st.Commits != 0 || len(st.Partitions) != 0 {
		t.Errorf("status %+v, want STOPPED with no commits and no partitions", st)
	}
}

func TestStatusCheckpointLagAndAborts(t *testing.T) {
	base := newFakeSource(100, map[TopicPartition]int{tp("b", 0): 3, tp("a", 1): 2})
	base.hwms = map[TopicPartition]int64{
		tp("b", 0): 10, // committed 3: lag 7
		tp("a", 1): 2,  // committed 2: lag 0
		tp("a", 0): 5,  // assigned, nothing committed: lag 5
	}
	src := laggingSource{base}
	proto := newFakeProtocol()
	proto.outcomes = []commitOutcome{
		{err: NewCommitError(Abortable, "commit", errors.New("x"))},
		{err: NewCommitError(Fenced, "commit", errors.New("y"))},
		{err: NewCommitError(Abortable, "commit", errors.New("z"))},
	}
	opts := testOptions()
	opts.Name, opts.Guarantee = "lagger", "at_least_once"
	opts.CommitInterval = time.Hour
	opts.MaxBatch = 5
	c := New(opts, src, &fakeProcessor{double: true}, proto)
	if st := c.Status(); st.State != Unassigned {
		t.Errorf("state before Run %s, want UNASSIGNED", st.State)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, base.end(), cancel)
	if err := runAsync(t, c, ctx)(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := c.Status()
	want := []PartitionStatus{
		{Topic: "a", Partition: 0, Checkpoint: 0, HighWatermark: 5, Lag: 5},
		{Topic: "a", Partition: 1, Checkpoint: 2, HighWatermark: 2, Lag: 0},
		{Topic: "b", Partition: 0, Checkpoint: 3, HighWatermark: 10, Lag: 7},
	}
	if !slices.Equal(st.Partitions, want) {
		t.Errorf("partitions %+v\nwant %+v", st.Partitions, want)
	}
	wantAborts := map[string]uint64{"abortable": 2, "fenced": 1, "commit_unknown": 0, "fatal": 0}
	for k, n := range wantAborts {
		if st.Aborts[k] != n {
			t.Errorf("aborts[%s] = %d, want %d (all: %v)", k, st.Aborts[k], n, st.Aborts)
		}
	}
	if len(st.Aborts) != len(wantAborts) {
		t.Errorf("aborts %v, want exactly the kinds %v", st.Aborts, wantAborts)
	}
	if a := st.LastAbort; a == nil || a.Kind != "abortable" || !strings.Contains(a.Error, "z") || a.At.IsZero() {
		t.Errorf("last abort %+v, want the third one (abortable, z)", a)
	}
	if st.Name != "lagger" || st.Guarantee != "at_least_once" {
		t.Errorf("name %q guarantee %q", st.Name, st.Guarantee)
	}
	if st.RecordsIn != 5 || st.RecordsOut != 10 || st.Commits != 1 {
		t.Errorf("records in %d out %d commits %d, want 5, 10, 1", st.RecordsIn, st.RecordsOut, st.Commits)
	}
	if st.LastCommit.IsZero() {
		t.Error("LastCommit not set after a commit")
	}
	assertExactlyOnce(t, base, proto, 2)
}

func TestStatusHighWatermarkBelowCheckpoint(t *testing.T) {
	// A stale high watermark never gives negative lag.
	base := newFakeSource(100, map[TopicPartition]int{tp("a", 0): 4})
	base.hwms = map[TopicPartition]int64{tp("a", 0): 1}
	proto := newFakeProtocol()
	opts := testOptions()
	opts.CommitInterval = time.Hour
	opts.MaxBatch = 4
	c := New(opts, laggingSource{base}, &fakeProcessor{}, proto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, base.end(), cancel)
	if err := runAsync(t, c, ctx)(); err != nil {
		t.Fatal(err)
	}
	want := []PartitionStatus{{Topic: "a", Partition: 0, Checkpoint: 4, HighWatermark: 1, Lag: 0}}
	if got := c.Status().Partitions; !slices.Equal(got, want) {
		t.Errorf("partitions %+v, want %+v", got, want)
	}
}

// A batch closes one interval after the previous one closed, so the time
// the previous commit took is not added to every record's wait, but it is
// never open less than half an interval.
func TestBatchDeadlineKeepsTheCommitCadence(t *testing.T) {
	c := New(Options{CommitInterval: 100 * time.Millisecond}, nil, nil, nil)
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		lastClose time.Time
		now       time.Time
		want      time.Duration // after t0
	}{
		{"first batch: a whole interval", time.Time{}, t0, 100 * time.Millisecond},
		{"after a 30ms commit: the rest of the interval", t0, t0.Add(30 * time.Millisecond), 100 * time.Millisecond},
		{"after a 70ms commit: half an interval", t0, t0.Add(70 * time.Millisecond), 120 * time.Millisecond},
		{"after an idle stretch: half an interval", t0, t0.Add(time.Second), time.Second + 50*time.Millisecond},
	}
	for _, tc := range cases {
		c.lastClose = tc.lastClose
		if got := c.batchDeadline(tc.now); !got.Equal(t0.Add(tc.want)) {
			t.Errorf("%s: deadline t0+%v, want t0+%v", tc.name, got.Sub(t0), tc.want)
		}
	}
}

// idleProcessor is a stateful pass-through whose AdvanceIdle always
// reports partition idle at offset at, and counts its calls.
type idleProcessor struct {
	fakeProcessor
	idle  TopicPartition
	at    int64
	calls int
}

func (p *idleProcessor) Prepare(context.Context, []*Record) error { return nil }
func (p *idleProcessor) Flush() ([]*Record, error)                { return nil, nil }
func (p *idleProcessor) Committed()                               {}
func (p *idleProcessor) Discard()                                 {}
func (p *idleProcessor) AdvanceIdle(context.Context, time.Time, func() map[TopicPartition]int64) (Checkpoint, error) {
	p.calls++
	return Checkpoint{p.idle: p.at, tp("a", 0): 0}, nil
}

// A batch commits the idle partitions AdvanceIdle names at their offsets
// (so the sink fences them), never overriding a partition the batch read;
// batches that read nothing do not ask.
func TestIdlePartitionsJoinTheBatchCheckpoint(t *testing.T) {
	src := newFakeSource(3, map[TopicPartition]int{tp("a", 0): 6})
	proto := newFakeProtocol()
	proc := &idleProcessor{idle: tp("a", 1), at: 7}
	opts := testOptions()
	opts.MaxBatch = 3
	c := New(opts, src, proc, proto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, src.end(), cancel)
	if err := runAsync(t, c, ctx)(); err != nil {
		t.Fatal(err)
	}
	proto.mu.Lock()
	defer proto.mu.Unlock()
	if len(proto.committedCPs) != 2 || proc.calls != 2 {
		t.Fatalf("%d commits, %d AdvanceIdle calls; want 2 and 2 (one per batch that read records)", len(proto.committedCPs), proc.calls)
	}
	for i, cp := range proto.committedCPs {
		if cp[tp("a", 1)] != 7 || cp[tp("a", 0)] != int64(3*(i+1)) {
			t.Errorf("commit %d: checkpoint %v, want a/1 at 7 and a/0 where the batch read to", i, cp)
		}
	}
}

// dueProcessor reports results due in partition a/0 once it has seen
// offset from there.
type dueProcessor struct {
	fakeProcessor
	from int64
	seen int64
}

func (p *dueProcessor) Process(in []*Record) ([]*Record, error) {
	for _, r := range in {
		p.seen = max(p.seen, r.Origin.Offset)
	}
	return p.fakeProcessor.Process(in)
}

func (p *dueProcessor) DuePartitions() []TopicPartition {
	if p.seen >= p.from {
		return []TopicPartition{tp("a", 0)}
	}
	return nil
}

// A batch whose records made results due ends once their partition is
// caught up and the floor (1ms here) has passed, not at the commit
// interval (an hour); before it is caught up, it keeps reading.
func TestDueResultsEndTheBatchWhenCaughtUp(t *testing.T) {
	base := newFakeSource(2, map[TopicPartition]int{tp("a", 0): 10})
	base.hwms = map[TopicPartition]int64{tp("a", 0): 10}
	proto := newFakeProtocol()
	opts := testOptions()
	opts.CommitInterval = time.Hour
	opts.DueBatchFloor = time.Millisecond
	c := New(opts, laggingSource{base}, &dueProcessor{from: 5}, proto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, base.end(), cancel)
	wait := runAsync(t, c, ctx)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	proto.mu.Lock()
	defer proto.mu.Unlock()
	if len(proto.batches) != 1 || len(proto.batches[0]) != 10 {
		t.Fatalf("batches %d (first of %d records), want one of all 10: it ends when a/0 is caught up", len(proto.batches), len(proto.batches[0]))
	}
}

// markerSource is fakeSource whose records at marks are input
// transaction markers (ControlRecord).
type markerSource struct {
	*fakeSource
	marks map[int64]bool
}

func (s markerSource) Poll(ctx context.Context, max int) ([]*Record, error) {
	recs, err := s.fakeSource.Poll(ctx, max)
	for _, r := range recs {
		if s.marks[r.Origin.Offset] {
			r.Kind = ControlRecord
		}
	}
	return recs, err
}

// Input transaction markers move the checkpoint past themselves and are
// never processed or written, also when a batch holds nothing else.
func TestControlRecordsOnlyMoveTheCheckpoint(t *testing.T) {
	base := newFakeSource(1, map[TopicPartition]int{tp("a", 0): 4})
	src := markerSource{base, map[int64]bool{1: true, 3: true}}
	proto := newFakeProtocol()
	opts := testOptions()
	c := New(opts, src, &fakeProcessor{}, proto)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopWhenDurable(proto, base.end(), cancel)
	if err := runAsync(t, c, ctx)(); err != nil {
		t.Fatal(err)
	}
	proto.mu.Lock()
	defer proto.mu.Unlock()
	var ids []string
	for _, r := range proto.outputs {
		ids = append(ids, r.EventID)
	}
	if fmt.Sprint(ids) != "[a/0/0 a/0/2]" || proto.durable[tp("a", 0)] != 4 {
		t.Fatalf("outputs %v, checkpoint %v; want the two data records and the checkpoint past the last marker", ids, proto.durable)
	}
}

// claimingProtocol reports a failed claim, as txn.SinkOffsets does.
type claimingProtocol struct {
	*fakeProtocol
	failure *AbortInfo
}

func (p *claimingProtocol) ClaimFailure() *AbortInfo { return p.failure }

// TestStatusShowsClaimFailure: while the sink refuses the claim (no batch
// runs, so none aborts), the status's last abort is the claim's failure;
// an older batch abort does not hide it, and it is gone once a claim
// succeeds.
func TestStatusShowsClaimFailure(t *testing.T) {
	p := &claimingProtocol{fakeProtocol: newFakeProtocol()}
	c := New(Options{Name: "c", CommitInterval: 100 * time.Millisecond}, nil, nil, p)
	c.noteAbort(Abortable, errors.New("an old batch"))
	p.failure = &AbortInfo{Kind: "claim", Error: "connect to postgres: password authentication failed", At: time.Now().Add(time.Second)}
	if a := c.Status().LastAbort; a == nil || a.Kind != "claim" || !strings.Contains(a.Error, "password") {
		t.Fatalf("last abort %+v, want the claim failure", a)
	}
	p.failure = nil
	if a := c.Status().LastAbort; a == nil || a.Kind != "abortable" {
		t.Fatalf("last abort %+v after the claim succeeded, want the old batch's", a)
	}
}
