package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
	sinkkafka "github.com/connectd/connectd/sink/kafka"
)

// kafkaStateStore is a Kafka sink's window state store, built lazily: the
// first load creates the compacted state topic if it is missing, with as
// many partitions as the widest input topic (state record of input
// partition p goes to p mod n). The first load always precedes the first
// state record (the stage loads a partition's state before it processes
// its records), so the topic exists before anything is produced to it.
type kafkaStateStore struct {
	opts   []kgo.Opt // connection options only
	ns     string
	inputs []string

	mu    sync.Mutex
	store *sinkkafka.StateStore
	adm   *kadm.Client // reads the group's committed offsets (Committed)
}

var _ connector.StateStore = (*kafkaStateStore)(nil)

func (k *kafkaStateStore) get(ctx context.Context) (*sinkkafka.StateStore, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.store != nil {
		return k.store, nil
	}
	cl, err := kgo.NewClient(k.opts...)
	if err != nil {
		return nil, connector.NewCommitError(connector.Fatal, "state store", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var partitions int32 = -1
	if details, err := adm.ListTopics(ctx, k.inputs...); err == nil {
		for _, d := range details {
			partitions = max(partitions, int32(len(d.Partitions)))
		}
	}
	if partitions <= 0 {
		partitions = -1 // the broker's default
	}
	if _, err := sinkkafka.EnsureStateTopic(ctx, adm, sinkkafka.StateTopic(k.ns), partitions); err != nil {
		return nil, err
	}
	s, err := sinkkafka.NewStateStore(k.opts)
	if err != nil {
		return nil, connector.NewCommitError(connector.Fatal, "state store", err)
	}
	acl, err := kgo.NewClient(k.opts...)
	if err != nil {
		s.Close()
		return nil, connector.NewCommitError(connector.Fatal, "state store", err)
	}
	k.store, k.adm = s, kadm.NewClient(acl)
	return s, nil
}

// Committed returns partition tp's committed next offset in the group
// (the namespace), read stable: an offset commit of a transaction still
// completing is waited for, not skipped (KIP-447). The broker answers such
// a partition with UNSTABLE_OFFSET_COMMIT and offset -1, per partition,
// which franz-go does not retry: Committed asks again until the
// transaction has ended (at the latest at its transaction timeout, when
// the broker aborts it), or ctx ends. Returned as "no offset", the
// window stage would skip its check of the restored state against the
// checkpoint, and its restore would not wait for the previous owner's
// last transaction (window.Operator.load).
func (k *kafkaStateStore) Committed(ctx context.Context, tp connector.TopicPartition) (int64, bool, error) {
	if _, err := k.get(ctx); err != nil {
		return 0, false, err
	}
	for {
		offs, err := k.adm.FetchOffsets(kadm.RequireStable(ctx), k.ns)
		if err != nil {
			return 0, false, err
		}
		o, ok := offs.Lookup(tp.Topic, tp.Partition)
		switch {
		case ok && errors.Is(o.Err, kerr.UnstableOffsetCommit):
			select {
			case <-ctx.Done():
				return 0, false, ctx.Err()
			case <-time.After(unstableRetry):
			}
			continue
		case ok && o.Err != nil:
			return 0, false, o.Err
		case !ok || o.At < 0:
			return 0, false, nil
		}
		return o.At, true, nil
	}
}

// unstableRetry spaces Committed's questions while a transaction holding
// the partition's offset is open: its EndTxn is a round trip or two away.
const unstableRetry = 20 * time.Millisecond

// LoadState implements connector.StateStore.
func (k *kafkaStateStore) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	s, err := k.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.LoadState(ctx, ns, tp)
}

// Close closes the store's client.
func (k *kafkaStateStore) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.store != nil {
		k.store.Close()
		k.adm.Close()
		k.store, k.adm = nil, nil
	}
}
