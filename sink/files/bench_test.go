package files

import (
	"testing"

	"github.com/connectd/connectd/connector"
)

// BenchmarkCommit commits batches of 2,000 records of two partitions
// through the exactly-once store (fsync on), rolling a file every 4 MiB
// of staged rows per partition and hour; records/s is the figure.
func BenchmarkCommit(b *testing.B) {
	for _, format := range []string{FormatParquet, FormatJSONL} {
		b.Run(format, func(b *testing.B) {
			cfg := Config{Path: b.TempDir(), Format: format, PartitionBy: PartitionBy{Layout: "dt=2006-01-02"},
				Roll: Roll{MaxBytes: 4 << 20}, Columns: map[string]string{
					"n": "json:n::int64", "amount": "json:amount::double", "ok": "json:ok::bool", "name": "json:name", "at": "json:at::timestamp"}}
			if err := cfg.Validate(); err != nil {
				b.Fatal(err)
			}
			s := NewStore(cfg, Options{Connector: "bench"})
			c, err := s.Claim(b.Context(), "g", []connector.TopicPartition{tp0, tp1})
			if err != nil {
				b.Fatal(err)
			}
			const half = 1000
			cp := connector.Checkpoint{}
			b.ResetTimer()
			for i := range b.N {
				n := int64(i) * half
				batch := append(recs(tp0, n, n+half), recs(tp1, n, n+half)...)
				from := cp
				to := connector.Checkpoint{tp0: n + half, tp1: n + half}
				if err := s.Commit(b.Context(), "g", epochsOf(c), batch, from, to); err != nil {
					b.Fatal(err)
				}
				cp = to
			}
			b.ReportMetric(float64(b.N*2*half)/b.Elapsed().Seconds(), "records/s")
			b.StopTimer()
			s.Close()
		})
	}
}
