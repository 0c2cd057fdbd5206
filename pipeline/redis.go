package pipeline

import (
	"context"
	"sync"

	"github.com/connectd/connectd/connector"
	sinkredis "github.com/connectd/connectd/sink/redis"
	"github.com/connectd/connectd/txn"
)

// lazyRedisStore connects to Redis on first use, inside the commit loop, so
// an unreachable server at start is a retried, abortable failure (as it is
// at any later time) rather than a failure to build the connector.
type lazyRedisStore struct {
	cfg sinkredis.Config
	dlq string

	mu sync.Mutex
	s  *sinkredis.Store
}

var _ txn.SinkStore = (*lazyRedisStore)(nil)

func (l *lazyRedisStore) store(ctx context.Context) (*sinkredis.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s == nil {
		s, err := sinkredis.NewStore(ctx, l.cfg, l.dlq)
		if err != nil {
			return nil, connector.NewCommitError(connector.Abortable, "connect to redis", err)
		}
		l.s = s
	}
	return l.s, nil
}

func (l *lazyRedisStore) Claim(ctx context.Context, group string, tps []connector.TopicPartition) (txn.Claims, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Claim(ctx, group, tps)
}

func (l *lazyRedisStore) Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	return s.Commit(ctx, group, epochs, recs, from, to)
}

func (l *lazyRedisStore) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		l.s.Close()
		l.s = nil
	}
}

// lazyRedisWriter is the at-least-once counterpart.
type lazyRedisWriter struct {
	cfg sinkredis.Config
	dlq string
	w   *sinkredis.Writer
}

var _ txn.SinkWriter = (*lazyRedisWriter)(nil)

func (l *lazyRedisWriter) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	if l.w == nil {
		w, err := sinkredis.NewWriter(ctx, l.cfg, l.dlq)
		if err != nil {
			return connector.NewCommitError(connector.Abortable, "connect to redis", err)
		}
		l.w = w
	}
	return l.w.WriteBatch(ctx, recs)
}

func (l *lazyRedisWriter) Close() {
	if l.w != nil {
		l.w.Close()
		l.w = nil
	}
}

// LoadState reads a window stage's committed state (connector.StateStore);
// the protocol owns the connection, so Close is left to it.
func (l *lazyRedisStore) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.LoadState(ctx, ns, tp)
}

// LoadState reads a window stage's state as the at-least-once writer last
// wrote it.
func (l *lazyRedisWriter) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	if l.w == nil {
		w, err := sinkredis.NewWriter(ctx, l.cfg, l.dlq)
		if err != nil {
			return nil, connector.NewCommitError(connector.Abortable, "connect to redis", err)
		}
		l.w = w
	}
	return l.w.LoadState(ctx, ns, tp)
}
