package kafka

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// Writer produces batches with an idempotent producer (acks=all) and waits
// for every acknowledgement: the at_least_once Kafka sink of a connector
// with several sinks (txn.SinkWriter). The client is created at first use.
type Writer struct {
	opts  []kgo.Opt
	topic string

	mu sync.Mutex
	cl *kgo.Client
}

// NewWriter returns a writer; opts carry the seed brokers and producer
// options, topic is the default output topic.
func NewWriter(opts []kgo.Opt, topic string) *Writer {
	return &Writer{opts: opts, topic: topic}
}

// WriteBatch produces recs and returns the first failure once all are
// acknowledged or failed. On error some records may have been written.
func (w *Writer) WriteBatch(ctx context.Context, recs []*connector.Record) error {
	w.mu.Lock()
	if w.cl == nil {
		cl, err := kgo.NewClient(w.opts...)
		if err != nil {
			w.mu.Unlock()
			return err
		}
		w.cl = cl
	}
	cl := w.cl
	w.mu.Unlock()
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = ToKgo(r, w.topic)
	}
	return cl.ProduceSync(ctx, out...).FirstErr()
}

// Close closes the client.
func (w *Writer) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cl != nil {
		w.cl.Close()
		w.cl = nil
	}
}
