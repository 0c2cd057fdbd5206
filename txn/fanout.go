package txn

import (
	"context"

	"github.com/connectd/connectd/connector"
)

// FanoutWriter writes every batch to each of its writers in turn: the
// at_least_once path of a connector with several sinks. Nothing is atomic
// across them: a failure part-way leaves the batch in the sinks written so
// far, and the re-read batch is written to all of them again (duplicates,
// never loss).
type FanoutWriter []SinkWriter

var _ SinkWriter = FanoutWriter(nil)

// WriteBatch writes recs to every writer, stopping at the first error.
func (f FanoutWriter) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	for _, w := range f {
		if err := w.WriteBatch(ctx, recs); err != nil {
			return err
		}
	}
	return nil
}

// Close closes every writer.
func (f FanoutWriter) Close() {
	for _, w := range f {
		w.Close()
	}
}
