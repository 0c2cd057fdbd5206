package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// BenchmarkStateCommit measures commits of 1,000 and 10,000 state entries
// with no rows (the state's own cost; rows add theirs), 64-byte values:
//   - insert: new keys each commit, into a growing table;
//   - update: the same 10,000 keys each commit (open windows updated);
//   - delete: 10,000 existing keys deleted (windows emitted).
//
// Run: go test -run XXX -bench StateCommit -benchtime 20x ./sink/postgres/
func BenchmarkStateCommit(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		mode string
		n    int
	}{{"insert", 1000}, {"update", 1000}, {"delete", 1000}, {"insert", 10_000}, {"update", 10_000}, {"delete", 10_000}} {
		mode, n := bc.mode, bc.n
		b.Run(fmt.Sprintf("%s-%d", mode, n), func(b *testing.B) {
			s := New(testConfig(testenv.Postgres(b)), Options{ExactlyOnce: true})
			defer s.Close()
			if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0}); err != nil {
				b.Fatal(err)
			}
			epochs := map[connector.TopicPartition]int64{p0: 1}
			next := int64(0)
			commit := func(batch []*connector.Record) {
				from := connector.Checkpoint{p0: next}
				if next == 0 {
					from = connector.Checkpoint{}
				}
				next++
				if err := s.Commit(ctx, "g", epochs, batch, from, connector.Checkpoint{p0: next}); err != nil {
					b.Fatal(err)
				}
			}
			if mode != "insert" { // the keys to update or delete
				for i := range b.N {
					commit(stateBatch("g", p0, "k", i*n, n))
				}
			}
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				var batch []*connector.Record
				switch mode {
				case "insert":
					batch = stateBatch("g", p0, "k", i*n, n)
				case "update":
					batch = stateBatch("g", p0, "k", 0, n)
				case "delete":
					batch = stateBatch("g", p0, "k", i*n, n)
					for _, r := range batch {
						r.Value = nil
					}
				}
				b.StartTimer()
				commit(batch)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkLoadState measures LoadState of one partition's 100,000 entries
// (64-byte values) among another partition's 100,000.
//
// Run: go test -run XXX -bench LoadState -benchtime 10x ./sink/postgres/
func BenchmarkLoadState(b *testing.B) {
	const n, per = 100_000, 50_000
	ctx := context.Background()
	s := New(testConfig(testenv.Postgres(b)), Options{ExactlyOnce: true})
	defer s.Close()
	if _, err := s.Claim(ctx, "g", []connector.TopicPartition{p0, p1}); err != nil {
		b.Fatal(err)
	}
	epochs := map[connector.TopicPartition]int64{p0: 1, p1: 1}
	for i := 0; i < n; i += per {
		batch := append(stateBatch("g", p0, "k", i, per), stateBatch("g", p1, "k", i, per)...)
		from := connector.Checkpoint{p0: int64(i), p1: int64(i)}
		if i == 0 {
			from = connector.Checkpoint{}
		}
		if err := s.Commit(ctx, "g", epochs, batch, from, connector.Checkpoint{p0: int64(i + per), p1: int64(i + per)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m, err := s.LoadState(ctx, "g", p0)
		if err != nil || len(m) != n {
			b.Fatalf("%d entries, %v", len(m), err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
}
