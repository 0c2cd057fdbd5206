package txn

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// TestOutputProducerCommitsWhatWasWritten: records written to a
// KafkaGroupTxn are produced off the caller's goroutine (outputProducer),
// so Write must keep what it was given, not the caller's slice: the
// caller here reuses its slice right after each Write. A committed batch
// holds every record once, in written order; an aborted batch, stopped
// with records still queued, leaves nothing visible, and the session goes
// on with the next batch.
func TestOutputProducerCommitsWhatWasWritten(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seeds, k := newKfakeGroupTxn(t)
	if _, err := k.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// batch writes n records named prefix0.. in writes of 10, through one
	// slice the caller overwrites after every Write.
	batch := func(prefix string, n int) {
		t.Helper()
		if err := k.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		reused := make([]*connector.Record, 10)
		for i := 0; i < n; i += len(reused) {
			for j := range reused {
				v := prefix + strconv.Itoa(i+j)
				reused[j] = &connector.Record{Value: []byte(v), EventID: v}
			}
			if err := k.Write(ctx, reused); err != nil {
				t.Fatal(err)
			}
		}
		for j := range reused {
			reused[j] = &connector.Record{Value: []byte("overwritten"), EventID: "overwritten"}
		}
	}
	const n = 2000
	batch("a", n)
	if err := k.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Aborted with (most likely) records still queued or buffered: the
	// abort must stop the producer goroutine before ending the
	// transaction, and none of it may be visible.
	batch("x", n)
	if err := k.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	batch("b", n)
	if err := k.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(seeds, kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < 2*n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	want := make([]string, 0, 2*n)
	for _, p := range []string{"a", "b"} {
		for i := range n {
			want = append(want, p+strconv.Itoa(i))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d committed records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("committed record %d is %q, want %q (a reused slice was produced, or an aborted record is visible)", i, got[i], want[i])
		}
	}
}
