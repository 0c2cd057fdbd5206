package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// benchRows is the batch size of every benchmark: the sink's default
// batch_size.
const benchRows = 5000

// benchRecords returns b.N/benchRows+1 batches of fresh records.
func benchRecords(batch, n int) []*connector.Record {
	out := make([]*connector.Record, n)
	for i := range out {
		off := batch*n + i
		out[i] = &connector.Record{
			Key:       fmt.Appendf(nil, "k-%d", off%97),
			Value:     fmt.Appendf(nil, `{"i":%d,"amount":%d,"customer":{"id":"c-%d"}}`, off, off%1000, off%97),
			EventID:   fmt.Sprintf("in-%d", off),
			Origin:    connector.Origin{Topic: "in", Partition: 0, Offset: int64(off)},
			Timestamp: time.UnixMilli(1700000000000 + int64(off)),
		}
	}
	return out
}

func benchConfig(dsn string) Config {
	return Config{DSN: dsn, Table: "events", AutoCreate: true, Columns: map[string]string{
		"amount": "json:amount::bigint", "customer": "json:customer.id::text", "payload": "value",
		"created_at": "timestamp", "src_offset": "offset",
	}}
}

// BenchmarkWrite compares, on the same database and rows (5000-row batches,
// five mapped columns), rows/s of:
//   - exactly_once: Store.Commit (mapping, UPSERT, offsets CAS, one
//     transaction, two round trips);
//   - at_least_once: Store.WriteBatch (mapping, plain INSERT);
//   - bare_upsert: one pgx unnest INSERT ... ON CONFLICT DO NOTHING of
//     pre-built arrays, no mapping, no offsets: the floor.
//
// Run: go test -run XXX -bench Write -benchtime 40x ./sink/postgres/
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	b.Run("exactly_once", func(b *testing.B) {
		s := New(benchConfig(testenv.Postgres(b)), Options{ExactlyOnce: true})
		defer s.Close()
		if _, err := s.Claim(ctx, "g", 1, []connector.TopicPartition{{Topic: "in"}}); err != nil {
			b.Fatal(err)
		}
		gens := map[connector.TopicPartition]int32{{Topic: "in"}: 1}
		from := connector.Checkpoint{}
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			recs := benchRecords(i, benchRows)
			to := connector.Checkpoint{{Topic: "in"}: int64((i + 1) * benchRows)}
			b.StartTimer()
			if err := s.Commit(ctx, "g", gens, recs, from, to); err != nil {
				b.Fatal(err)
			}
			from = to
		}
		b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("at_least_once", func(b *testing.B) {
		s := New(benchConfig(testenv.Postgres(b)), Options{})
		defer s.Close()
		if _, err := s.Pool(ctx); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			recs := benchRecords(i, benchRows)
			b.StartTimer()
			if err := s.WriteBatch(ctx, recs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("bare_upsert", func(b *testing.B) {
		cfg := benchConfig(testenv.Postgres(b))
		s := New(cfg, Options{ExactlyOnce: true})
		defer s.Close()
		if _, err := s.Pool(ctx); err != nil { // creates the same table
			b.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, cfg.DSN)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		const q = `INSERT INTO events (event_id, amount, created_at, customer, payload, src_offset)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::jsonb[], $6::bigint[])
			ON CONFLICT (event_id) DO NOTHING`
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			recs := benchRecords(i, benchRows)
			ids, amounts, ts, cust, payload, offs := make([]string, benchRows), make([]int64, benchRows),
				make([]time.Time, benchRows), make([]string, benchRows), make([]string, benchRows), make([]int64, benchRows)
			for j, r := range recs {
				off := i*benchRows + j
				ids[j], amounts[j], ts[j], cust[j], payload[j], offs[j] = r.EventID, int64(off%1000), r.Timestamp,
					fmt.Sprintf("c-%d", off%97), string(r.Value), r.Origin.Offset
			}
			b.StartTimer()
			if _, err := conn.Exec(ctx, q, ids, amounts, ts, cust, payload, offs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkUpsertPath compares the two exactly_once write paths on
// 20,000-row batches: unnest chunks of batch_size in one pipeline, and COPY
// into a temporary table then one INSERT ... SELECT ... ON CONFLICT. It is
// how DefaultCopyThreshold was chosen.
func BenchmarkUpsertPath(b *testing.B) {
	const rows = 20000
	ctx := context.Background()
	for _, path := range []string{"unnest", "copy"} {
		b.Run(path, func(b *testing.B) {
			s := New(benchConfig(testenv.Postgres(b)), Options{ExactlyOnce: true})
			defer s.Close()
			s.CopyThreshold = 1 << 30
			if path == "copy" {
				s.CopyThreshold = 1
			}
			tp := connector.TopicPartition{Topic: "in"}
			if _, err := s.Claim(ctx, "g", 1, []connector.TopicPartition{tp}); err != nil {
				b.Fatal(err)
			}
			from := connector.Checkpoint{}
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				recs := benchRecords(i, rows)
				to := connector.Checkpoint{tp: int64((i + 1) * rows)}
				b.StartTimer()
				if err := s.Commit(ctx, "g", map[connector.TopicPartition]int32{tp: 1}, recs, from, to); err != nil {
					b.Fatal(err)
				}
				from = to
			}
			b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
