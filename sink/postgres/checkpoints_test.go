package postgres

import (
	"context"
	"testing"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/txn"
)

// The admin API's view of the checkpoints (KIP-875): read, set and reset in
// the offsets table, keeping claim epochs so a stale owner stays fenced.
func TestCheckpointAdmin(t *testing.T) {
	cfg := testConfig(testenv.Postgres(t))
	s, _ := newTestStore(t, cfg, Options{ExactlyOnce: true})
	ctx := context.Background()
	const g = "grp"
	if _, err := s.Claim(ctx, g, []connector.TopicPartition{p0, p1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, g, []connector.TopicPartition{p0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, g, map[connector.TopicPartition]int64{p0: 2}, recs(p0, 0, 4), connector.Checkpoint{}, connector.Checkpoint{p0: 4}); err != nil {
		t.Fatal(err)
	}
	cp, err := s.Checkpoints(ctx, g)
	if err != nil || len(cp) != 1 || cp[p0] != 4 {
		t.Fatalf("checkpoints %v, %v; want only %v: 4 (p1 was claimed, never committed)", cp, err, p0)
	}
	p2 := connector.TopicPartition{Topic: "in", Partition: 2}
	if err := s.SetCheckpoints(ctx, g, connector.Checkpoint{p0: 2, p2: 7}); err != nil {
		t.Fatal(err)
	}
	if cp, _ = s.Checkpoints(ctx, g); cp[p0] != 2 || cp[p2] != 7 {
		t.Fatalf("after set: %v", cp)
	}
	// The claim epoch stayed: a commit at epoch 2 from the new offset
	// goes through, one at a stale epoch is fenced.
	if err := s.Commit(ctx, g, map[connector.TopicPartition]int64{p0: 2}, recs(p0, 2, 3), connector.Checkpoint{p0: 2}, connector.Checkpoint{p0: 3}); err != nil {
		t.Fatalf("commit after set: %v", err)
	}
	err = s.Commit(ctx, g, map[connector.TopicPartition]int64{p0: 1}, recs(p0, 3, 4), connector.Checkpoint{p0: 3}, connector.Checkpoint{p0: 4})
	wantKind(t, err, connector.Fenced, "stale claim epoch after set")
	if err := s.ResetCheckpoints(ctx, g); err != nil {
		t.Fatal(err)
	}
	if cp, _ = s.Checkpoints(ctx, g); len(cp) != 0 {
		t.Fatalf("after reset: %v", cp)
	}
	if c, err := s.Claim(ctx, g, []connector.TopicPartition{p0}); err != nil || c[p0] != (txn.PartitionClaim{Epoch: 3, Next: txn.NoCheckpoint}) {
		t.Fatalf("claim after reset: %v, %v; want epoch 3 and no checkpoint (replay from the start)", c, err)
	}
}
