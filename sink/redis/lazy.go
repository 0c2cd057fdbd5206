package redis

import (
	"context"
	"sync"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// lazyStore connects to Redis on first use, inside the commit loop, so
// an unreachable server at start is a retried, abortable failure (as it is
// at any later time) rather than a failure to build the connector.
type lazyStore struct {
	cfg Config
	dlq string

	mu sync.Mutex
	s  *Store
}

var _ txn.SinkStore = (*lazyStore)(nil)

func (l *lazyStore) store(ctx context.Context) (*Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		s, err := NewStore(ctx, l.cfg, l.dlq)
		if err != nil {
			return nil, connector.NewCommitError(connector.Abortable, "connect to redis", err)
		}
		l.s = s
	}
	return l.s, nil
}

func (l *lazyStore) Claim(ctx context.Context, group string, tps []connector.TopicPartition) (txn.Claims, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Claim(ctx, group, tps)
}

func (l *lazyStore) Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	return s.Commit(ctx, group, epochs, recs, from, to)
}

func (l *lazyStore) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		l.s.Close()
		l.s = nil
	}
}

// lazyWriter is the at-least-once counterpart.
type lazyWriter struct {
	cfg Config
	dlq string
	w   *Writer
}

var _ txn.SinkWriter = (*lazyWriter)(nil)

func (l *lazyWriter) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	if l.w == nil {
		w, err := NewWriter(ctx, l.cfg, l.dlq)
		if err != nil {
			return connector.NewCommitError(connector.Abortable, "connect to redis", err)
		}
		l.w = w
	}
	return l.w.WriteBatch(ctx, recs)
}

func (l *lazyWriter) Close() {
	if l.w != nil {
		l.w.Close()
		l.w = nil
	}
}

// LoadState reads a window stage's committed state (connector.StateStore);
// the protocol owns the connection, so Close is left to it.
func (l *lazyStore) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.LoadState(ctx, ns, tp)
}

// LoadState reads a window stage's state as the at-least-once writer last
// wrote it.
func (l *lazyWriter) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	if l.w == nil {
		w, err := NewWriter(ctx, l.cfg, l.dlq)
		if err != nil {
			return nil, connector.NewCommitError(connector.Abortable, "connect to redis", err)
		}
		l.w = w
	}
	return l.w.LoadState(ctx, ns, tp)
}
