package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/txn"
)

// A prepared batch is invisible, survives its connection, keeps its row
// locks, and is committed or rolled back by gid alone; finishing a gid
// twice is success (recovery and the owner may both try).
func TestPreparedTransactionLifecycle(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(testenv.Postgres(t))
	s, conn := newTestStore(t, cfg, Options{ExactlyOnce: true, TwoPhase: true})
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	prefix := txn.GIDPrefix("c-" + strings.ReplaceAll(t.Name(), "/", "-"))
	g1, g2 := prefix+"a:s:1:0", prefix+"a:s:2:0"
	if err := s.Prepare(ctx, g1, recs(p0, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare(ctx, g2, recs(p0, 10, 20)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM events"); n != 0 {
		t.Fatalf("%d prepared rows visible before COMMIT PREPARED", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'connectd_offsets'"); n != 0 {
		t.Fatal("a two-phase participant created an offsets table; its checkpoint lives in Kafka")
	}
	got, err := s.Prepared(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != g1 || got[1] != g2 {
		t.Fatalf("Prepared = %v, want [%s %s]", got, g1, g2)
	}
	if err := s.CommitPrepared(ctx, g1); err != nil {
		t.Fatal(err)
	}
	if err := s.RollbackPrepared(ctx, g2); err != nil {
		t.Fatal(err)
	}
	for _, again := range []func(context.Context, string) error{s.CommitPrepared, s.RollbackPrepared} {
		if err := again(ctx, g1); err != nil {
			t.Fatalf("finishing a finished gid: %v", err)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM events WHERE apply_count = 1"); n != 10 {
		t.Fatalf("%d rows after committing one batch of 10 and rolling back another", n)
	}
	if got, _ := s.Prepared(ctx, prefix); len(got) != 0 {
		t.Fatalf("prepared transactions left: %v", got)
	}
}

// A prepared transaction holds its row locks: a second writer of the same
// event IDs waits PreparedLockTimeout, then fails abortably (and writes
// nothing), so its recovery can resolve the first.
func TestPreparedRowsBlockAnotherWriterBoundedly(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(testenv.Postgres(t))
	s, _ := newTestStore(t, cfg, Options{ExactlyOnce: true, TwoPhase: true})
	old := PreparedLockTimeout
	PreparedLockTimeout = 200 * time.Millisecond
	t.Cleanup(func() { PreparedLockTimeout = old })
	prefix := txn.GIDPrefix("c-lock")
	if err := s.Prepare(ctx, prefix+"a:s:1:0", recs(p0, 0, 5)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.RollbackPrepared(context.Background(), prefix+"a:s:1:0") })
	err := s.Prepare(ctx, prefix+"b:s:1:0", recs(p0, 0, 5))
	wantKind(t, err, connector.Abortable, "writing rows a prepared transaction holds")
	if got, _ := s.Prepared(ctx, prefix); len(got) != 1 {
		t.Fatalf("prepared transactions: %v, want only the first", got)
	}
}
