package daemon_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/bounded"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/daemon"
)

const batchingYAML = `
kafka:
  brokers: [BROKERS]
connectors:
  - name: plain
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out-plain}
  - name: tuned
    commit.interval: 20ms
    batch.max.records: 200
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out-tuned}
`

// TestBoundedRunBatching: with --until (Daemon.Until) a connector whose
// config leaves commit.interval and batch.max.records out runs with the
// bounded-run defaults, one that sets them keeps its values; without
// --until both run as configured, with the streaming defaults. The
// bounded run finishes its job either way.
func TestBoundedRunBatching(t *testing.T) {
	type batching struct {
		interval time.Duration
		records  int
	}
	tuned := batching{20 * time.Millisecond, 200}
	for _, tc := range []struct {
		name  string
		until *bounded.Until
		plain batching
	}{
		{"streaming", nil, batching{config.DefaultCommitInterval, config.DefaultBatchMaxRecords}},
		{"bounded", &bounded.Until{End: true}, batching{config.DefaultBoundedCommitInterval, config.DefaultBoundedBatchMaxRecords}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := setup(t, 1000)
			cfg, err := config.Parse("batching.yaml", []byte(strings.ReplaceAll(batchingYAML, "BROKERS", strings.Join(c.ListenAddrs(), ","))))
			if err != nil {
				t.Fatal(err)
			}
			d, err := daemon.New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			d.Until = tc.until
			if err := d.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Stop)
			for name, want := range map[string]batching{"plain": tc.plain, "tuned": tuned} {
				cc, _, ok := d.Config(name)
				if got := (batching{cc.CommitInterval.D(), cc.BatchMaxRecords}); !ok || got != want {
					t.Errorf("%s runs with %+v, want %+v", name, got, want)
				}
			}
			if tc.until == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := d.WaitBounded(ctx, nil); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"plain", "tuned"} {
				if n := recordsIn(d, name); n != 1000 {
					t.Errorf("%s: %d records in, want 1000", name, n)
				}
			}
		})
	}
}
