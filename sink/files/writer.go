package files

import (
	"context"

	"github.com/connectd/connectd/connector"
)

// Writer is the at_least_once file sink (connector.SinkWriter): the
// store's commit without the compare-and-set and without a checkpoint, in
// a manifest of its own (_connectd/manifest-+at_least_once.json). Each
// WriteBatch is still atomic (staged rows, rolled files and dead letters
// are committed by one manifest rename), so a batch is never half
// written; a batch written again after a crash before the group's offsets
// were committed is written twice, which is what at_least_once allows.
type Writer struct{ s *Store }

var _ connector.SinkWriter = (*Writer)(nil)

// NewWriter returns the writer; like NewStore it touches nothing on disk.
func NewWriter(cfg Config, opts Options) *Writer { return &Writer{s: NewStore(cfg, opts)} }

// WriteBatch commits recs (see Store.Commit for the order).
func (w *Writer) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	return w.s.commit(ctx, "write", atLeastOnceKey, batch{recs: recs})
}

// Close rolls every staged segment into a file, so everything written is
// visible once the connector stops.
func (w *Writer) Close() {
	w.s.mu.Lock()
	closed := w.s.closed
	w.s.closed = true
	w.s.mu.Unlock()
	if !closed && w.s.err == nil {
		w.s.closeRoll(atLeastOnceKey, func(*partState) bool { return true })
	}
}
