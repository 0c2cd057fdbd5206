package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// TestKafkaGroupTxnRecoverRewindsBeforeBegin: a batch that fails after it
// polled but before its transaction began (TwoPhase's in-doubt resolution
// runs in Begin) ends in no End call. Recover keeps the session after such
// a known abort, so it must still rewind the consumer: otherwise the next
// batch starts past the polled records and commits offsets past them,
// losing them in every sink (the fault matrix's scenario 4 lost 2,748 rows
// this way when fencing a departed instance failed against a dead broker).
func TestKafkaGroupTxnRecoverRewindsBeforeBegin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seeds, k := newKfakeGroupTxn(t)

	prod, err := kgo.NewClient(seeds)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 20
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := k.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	first := pollN(ctx, t, k.Client(), n)
	if first[0] != 0 {
		t.Fatalf("first poll starts at offset %d, want 0", first[0])
	}

	// The batch fails before Begin; the connector calls no Abort.
	cause := connector.NewCommitError(connector.Abortable, "begin", errors.New("resolve: fence failed"))
	if _, err := k.Recover(ctx, cause); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if again, err := pollUpTo(rctx, k.Client(), n); err != nil || again[0] != 0 {
		t.Fatalf("after Recover the failed batch is not re-read from the committed offset 0 (read %v, %v): it would be lost", again, err)
	}

	// A committed batch moves the committed offset; a failure after it
	// rewinds to there, not further back.
	if err := k.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte(strconv.Itoa(n + i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	more := pollN(ctx, t, k.Client(), 5)
	if _, err := k.Recover(ctx, cause); err != nil {
		t.Fatal(err)
	}
	if got := pollN(ctx, t, k.Client(), 5); got[0] != more[0] || more[0] != n {
		t.Fatalf("after a commit at %d and a failure, re-read from %d (first read from %d)", n, got[0], more[0])
	}
}

// newKfakeGroupTxn starts a one-broker kfake cluster with one-partition
// topics "in" and "out", and a KafkaGroupTxn copying in to out in group
// "g" from the start (not yet recovered). Both close when the test ends.
func newKfakeGroupTxn(t *testing.T) (kgo.Opt, *KafkaGroupTxn) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	k := NewKafkaGroupTxn([]kgo.Opt{
		seeds, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"),
		kgo.TransactionalID("txn-a"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, "out", slog.New(slog.DiscardHandler), nil)
	t.Cleanup(k.Close)
	return seeds, k
}

// pollN polls cl until it has n records and returns their offsets.
func pollN(ctx context.Context, t *testing.T, cl *kgo.Client, n int) []int64 {
	t.Helper()
	offs, err := pollUpTo(ctx, cl, n)
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

// pollUpTo polls cl until it has n records or ctx ends.
func pollUpTo(ctx context.Context, cl *kgo.Client, n int) ([]int64, error) {
	var offs []int64
	for len(offs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return offs, fmt.Errorf("polled %d of %d records: %w", len(offs), n, err)
		}
		fs.EachRecord(func(r *kgo.Record) { offs = append(offs, r.Offset) })
	}
	return offs, nil
}
