package redis

import (
	"context"
	"fmt"
	"testing"

	"github.com/connectd/connectd/connector"
)

// BenchmarkCommitState commits 5000 data records alone, with 5000 state
// records beside them (the window stage's shape: one state entry per
// changed window), and 10,000 state records alone, on the shared Redis.
// Each iteration rewrites the same keys and fields, so memory stays flat.
func BenchmarkCommitState(b *testing.B) {
	const n = 5000
	data := makeRecs(tp0, 0, n)
	state := func(k int) []*connector.Record {
		out := make([]*connector.Record, k)
		for i := range out {
			out[i] = stateRec("g", tp0, fmt.Sprintf("1718000000000/customer-%07d", i), fmt.Appendf(nil, `{"n":%d,"sum":%d.25,"max":%d}`, i%97, i, i%1000))
		}
		return out
	}
	for _, bc := range []struct {
		name string
		recs []*connector.Record
	}{
		{"data5000", data},
		{"data5000+state5000", append(append([]*connector.Record(nil), data...), state(n)...)},
		{"state10000", state(2 * n)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			cfg := sharedConfig(b)
			cfg.AuditLog, cfg.TestApplyCounter = false, false
			s := newStore(b, cfg, "")
			if _, err := s.Claim(ctx, "g", []connector.TopicPartition{tp0}); err != nil {
				b.Fatal(err)
			}
			from := connector.Checkpoint{}
			gens := gensAt(1, tp0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				to := connector.Checkpoint{tp0: int64(i + 1)}
				if err := s.Commit(ctx, "g", gens, bc.recs, from, to); err != nil {
					b.Fatal(err)
				}
				from = to
			}
			b.ReportMetric(float64(b.N*len(bc.recs))/b.Elapsed().Seconds(), "recs/s")
		})
	}
}

// BenchmarkLoadState loads a state hash of 100,000 entries.
func BenchmarkLoadState(b *testing.B) {
	const total = 100_000
	ctx := context.Background()
	cfg := sharedConfig(b)
	s := newStore(b, cfg, "")
	c := s.Client()
	key := s.plan.k.stateKey("g", tp0)
	for start := 0; start < total; start += stateChunk / 2 {
		args := make([]any, 0, stateChunk)
		for i := start; i < start+stateChunk/2; i++ {
			args = append(args, fmt.Sprintf("1718000000000/customer-%07d", i), fmt.Appendf(nil, `{"n":%d,"sum":%d.25,"max":%d}`, i%97, i, i%1000))
		}
		if err := c.HSet(ctx, key, args...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m, err := s.LoadState(ctx, "g", tp0)
		if err != nil || len(m) != total {
			b.Fatalf("%d entries, %v", len(m), err)
		}
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkStateArgs is the Go side of a commit's 10,000 state records:
// grouping them and laying out the script's arguments (no server).
func BenchmarkStateArgs(b *testing.B) {
	p := testPlanner(b, Config{Addr: "a:1"}, "")
	recs := make([]*connector.Record, 10_000)
	for i := range recs {
		var v []byte
		if i%4 != 0 { // a quarter are deletions of closed windows
			v = fmt.Appendf(nil, `{"n":%d,"sum":%d.25,"max":%d}`, i%97, i, i%1000)
		}
		recs[i] = stateRec("g", tp0, fmt.Sprintf("1718000000000/customer-%07d", i), v)
	}
	epochs, to := gensAt(1, tp0), connector.Checkpoint{tp0: 1}
	b.ReportAllocs()
	for range b.N {
		if _, _, err := p.commitArgs("o", epochs, nil, to, nil, p.stateChanges(recs)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "recs/s")
}
