package txn

import (
	"context"
	"errors"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// SinkWriter: see connector.SinkWriter.
type SinkWriter = connector.SinkWriter

// SinkAtLeastOnce writes each batch with a SinkWriter, then commits the
// consumer group's offsets.
//
//   - Nothing is atomic: a failure after the write and before the offset
//     commit makes the batch be read and written again (duplicates, which
//     the fault suites count).
//   - Nothing is lost: offsets are committed only after the write returned.
//   - Recover replaces the consumer, which resumes from the group's
//     committed offsets, re-fetched from the coordinator.
type SinkAtLeastOnce struct {
	opts   []kgo.Opt
	writer SinkWriter
	log    *slog.Logger
	cl     *kgo.Client
	buf    []*connector.Record
}

// NewSinkAtLeastOnce returns the protocol; opts are the source's consumer
// options plus seed brokers.
func NewSinkAtLeastOnce(opts []kgo.Opt, writer SinkWriter, log *slog.Logger) *SinkAtLeastOnce {
	return &SinkAtLeastOnce{opts: opts, writer: writer, log: log}
}

var _ connector.Protocol = (*SinkAtLeastOnce)(nil)

// Client is the consumer, for the source to poll.
func (s *SinkAtLeastOnce) Client() *kgo.Client { return s.cl }

// Begin starts buffering a batch.
func (s *SinkAtLeastOnce) Begin(context.Context) error {
	s.buf = s.buf[:0]
	return nil
}

// Write buffers recs.
func (s *SinkAtLeastOnce) Write(_ context.Context, recs []*connector.Record) error {
	s.buf = append(s.buf, recs...)
	return nil
}

// Commit writes the batch, then commits the group offsets.
func (s *SinkAtLeastOnce) Commit(ctx context.Context, cp connector.Checkpoint) error {
	err := s.writer.WriteBatch(ctx, s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		var ce *connector.CommitError
		if errors.As(err, &ce) {
			return err // the writer classified it (a Fatal record error stays fatal)
		}
		return connector.NewCommitError(connector.Abortable, "sink write", err)
	}
	reach("after-sink-write")
	if err := commitGroupSync(ctx, s.cl, cp); err != nil {
		return connector.NewCommitError(connector.Abortable, "commit offsets", err)
	}
	return nil
}

// Abort drops the buffered batch.
func (s *SinkAtLeastOnce) Abort(context.Context) error {
	s.buf = s.buf[:0]
	return nil
}

// Recover starts the consumer, or replaces it after a failure. It returns
// no checkpoint: the new member fetches the group's committed offsets.
func (s *SinkAtLeastOnce) Recover(_ context.Context, cause error) (connector.Checkpoint, error) {
	if s.cl != nil && cause == nil {
		return nil, nil
	}
	if s.cl != nil {
		s.log.Info("replacing the consumer to rewind to the committed offsets", "cause", cause)
		s.cl.CloseAllowingRebalance()
		s.cl = nil
	}
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return nil, connector.NewCommitError(connector.Fatal, "new consumer", err)
	}
	s.cl = cl
	return nil, nil
}

// Close closes the consumer and the writer.
func (s *SinkAtLeastOnce) Close() {
	if s.cl != nil {
		closeGroupClient(s.cl, s.log)
		s.cl = nil
	}
	s.writer.Close()
}
