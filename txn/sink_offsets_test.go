package txn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/sink/sinktest/memstore"
)

// TestSinkOffsetsOnKfake drives SinkOffsets, the exactly-once protocol of
// the PostgreSQL and Redis sinks, on kfake with the reference store
// (sinktest/memstore): the member claims its partitions in the store on
// assignment; a batch's output and checkpoint commit together; when a
// zombie's heir claims the partitions (raising their epochs in the store),
// the member's next Commit is Fenced and writes nothing; Recover rejoins,
// claims again and resumes from the store's checkpoint, so the refused
// batch is read again and every event is applied exactly once.
func TestSinkOffsetsOnKfake(t *testing.T) {
	const topic, group, events = "in", "g", 60
	_, seeds, _ := kfakeInput(t, topic, events)

	data := memstore.New("")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSinkOffsets([]kgo.Opt{seeds, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit()},
		group, kgo.NewOffset().AtStart(), data.Open(), log)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cp := connector.Checkpoint{}
	batch := func(n int) []*connector.Record { return pollBatch(ctx, t, s.Client, n, cp) }
	commit := func(recs []*connector.Record) error { return commitBatch(ctx, t, s, recs, cp) }
	probe := data.Probe()
	applied := func() ([]string, connector.Checkpoint) {
		snap, err := probe.Snapshot(ctx, group, true, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		return snap.IDs, snap.Checkpoint
	}

	if err := commit(batch(20)); err != nil {
		t.Fatal(err)
	}
	ids, stored := applied()
	if len(ids) != 20 || len(stored) == 0 {
		t.Fatalf("after the first commit: %d applied, checkpoint %v; want 20 and a checkpoint", len(ids), stored)
	}
	first := stored

	// The heir claims both partitions in the store: the member is a
	// zombie now, and its next batch must not land.
	if _, err := data.Open().Claim(ctx, group, []connector.TopicPartition{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}}); err != nil {
		t.Fatal(err)
	}
	fenced := commit(batch(20))
	if connector.KindOf(fenced) != connector.Fenced {
		t.Fatalf("the zombie's commit: %v, want Fenced", fenced)
	}
	if ids, stored := applied(); len(ids) != 20 || !equalCheckpoint(stored, first) {
		t.Fatalf("the fenced commit changed the store: %d applied, checkpoint %v (was 20, %v)", len(ids), stored, first)
	}

	// Recover claims again (a higher epoch than the heir's) and resumes
	// from the store's checkpoint: the refused batch is read again.
	if _, err := s.Recover(ctx, fenced); err != nil {
		t.Fatal(err)
	}
	cp = connector.Checkpoint{}
	rest := batch(events - 20)
	for _, r := range rest {
		tp := connector.TopicPartition{Topic: r.Origin.Topic, Partition: r.Origin.Partition}
		if r.Origin.Offset < first[tp] {
			t.Fatalf("after Recover %v was read again, below the store's checkpoint %d", r.Origin, first[tp])
		}
	}
	if err := commit(rest); err != nil {
		t.Fatal(err)
	}
	ids, _ = applied()
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if len(ids) != events || len(seen) != events {
		t.Fatalf("%d applications of %d distinct events, want each of %d exactly once", len(ids), len(seen), events)
	}
}

func equalCheckpoint(a, b connector.Checkpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for tp, n := range a {
		if b[tp] != n {
			return false
		}
	}
	return true
}

// refusingStore fails its first claims, as a sink with a wrong password or
// down does, and records what the protocol reported meanwhile.
type refusingStore struct {
	SinkStore
	s       *SinkOffsets
	mu      sync.Mutex
	refuse  int
	reports []*connector.AbortInfo
}

func (r *refusingStore) Claim(ctx context.Context, group string, tps []connector.TopicPartition) (connector.Claims, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, r.s.ClaimFailure())
	if r.refuse > 0 {
		r.refuse--
		return nil, errors.New("connect to the sink: password authentication failed")
	}
	return r.SinkStore.Claim(ctx, group, tps)
}

// TestSinkOffsetsReportsClaimFailure: a refused claim makes the group
// rejoin and retry (nothing is read meanwhile); ClaimFailure says why
// until a claim succeeds, and the records are then read and committed.
func TestSinkOffsetsReportsClaimFailure(t *testing.T) {
	const topic, group, events = "in", "g", 20
	_, seeds, _ := kfakeInput(t, topic, events)
	store := &refusingStore{SinkStore: memstore.New("").Open(), refuse: 2}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSinkOffsets([]kgo.Opt{seeds, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit()},
		group, kgo.NewOffset().AtStart(), store, log)
	store.s = s
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Recover(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The refused claims surface as poll errors ("unable to join group
	// session"), which the connector logs and polls through; so does this.
	cp := connector.Checkpoint{}
	var recs []*connector.Record
	for len(recs) < events {
		fs := s.Client().PollRecords(ctx, events-len(recs))
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(recs), events)
		}
		fs.EachRecord(func(r *kgo.Record) {
			o := connector.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			recs = append(recs, &connector.Record{Value: r.Value, Origin: o, EventID: o.String()})
			cp.Advance(o)
		})
	}
	if err := commitBatch(ctx, t, s, recs, cp); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.reports) < 3 {
		t.Fatalf("%d claims, want 2 refused and one granted", len(store.reports))
	}
	if r := store.reports[0]; r != nil {
		t.Errorf("before any claim: failure %+v, want none", r)
	}
	if r := store.reports[2]; r == nil || r.Kind != "claim" || !strings.Contains(r.Error, "password authentication failed") || r.At.IsZero() {
		t.Errorf("after two refusals: failure %+v, want the claim's error", r)
	}
	if r := s.ClaimFailure(); r != nil {
		t.Errorf("after a granted claim: failure %+v, want none", r)
	}
}
