// Package cluster coordinates connectd processes through Kafka, as Kafka
// Connect's distributed mode does: no consensus of connectd's own, only
// Kafka's ordered, replicated logs and its consumer groups.
//
// ConfigLog is the cluster's connector configuration: a one-partition,
// compacted topic whose records are keyed connector/<name> and hold the
// connector's definition (as written, ${VAR} references kept) and its
// target state; a tombstone deletes the connector. Every member reads the
// whole topic and converges to it. The conflict rule for concurrent
// writes is the log's order: the partition serializes every write, the
// later offset wins, and that offset is the entry's version, the same on
// every member. A write returns only once the writing member's own reader
// has passed it, so an API call that returned is visible in that member's
// next read.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Target is the state a connector should be in, on every member.
type Target string

// The targets, as Kafka Connect names them.
const (
	Running Target = "RUNNING"
	Paused  Target = "PAUSED"
	Stopped Target = "STOPPED"
)

// Entry is one connector's configuration as the log holds it.
type Entry struct {
	// Definition is the connector's definition as written (JSON; ${VAR}
	// and ${file:} references are stored, never their values).
	Definition json.RawMessage `json:"definition"`
	Target     Target          `json:"target"`
	// Version is the offset of the record that set this entry: the same
	// on every member, higher for a later write.
	Version int64 `json:"-"`
}

// keyPrefix is the prefix of a connector record's key.
const keyPrefix = "connector/"

// ConfigLog is one member's view of the config topic. It is safe for
// concurrent use.
type ConfigLog struct {
	topic string
	cl    *kgo.Client
	log   *slog.Logger

	mu      sync.Mutex
	changed *sync.Cond
	entries map[string]Entry
	written map[string]bool // names ever written, deleted ones included
	next    int64           // the next offset the reader will see
	err     error           // the reader's end, once it ended
	watch   []chan struct{} // Changes' channels
	cancel  context.CancelFunc
	done    chan struct{}
}

// Open creates the topic if it is missing (one partition, compacted, the
// brokers' default replication), starts reading it from its start and
// returns once the member has read everything written before it opened.
// opts are the client options every connectd client gets (TLS, SASL).
func Open(ctx context.Context, brokers []string, topic string, opts []kgo.Opt, log *slog.Logger) (*ConfigLog, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := ensureTopic(ctx, cl, topic, 1); err != nil {
		cl.Close()
		return nil, fmt.Errorf("config topic %s: %w", topic, err)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("config topic %s: end offset: %w", topic, err)
	}
	end, _ := ends.Lookup(topic, 0)
	if end.Err != nil {
		cl.Close()
		return nil, fmt.Errorf("config topic %s: end offset: %w", topic, end.Err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	l := &ConfigLog{topic: topic, cl: cl, log: log, entries: map[string]Entry{}, written: map[string]bool{},
		cancel: cancel, done: make(chan struct{})}
	l.changed = sync.NewCond(&l.mu)
	go l.read(rctx)
	if err := l.waitPast(ctx, end.Offset-1); err != nil {
		l.Close()
		return nil, fmt.Errorf("config topic %s: reading it to its end: %w", topic, err)
	}
	return l, nil
}

// ensureTopic creates topic, compacted, with partitions and the brokers'
// default replication, if it is missing.
func ensureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return nil
	}
	return err
}

// read applies every record of the topic in order until ctx ends.
func (l *ConfigLog) read(ctx context.Context) {
	defer close(l.done)
	for {
		fs := l.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			l.mu.Lock()
			l.err = errors.New("config log closed")
			l.changed.Broadcast()
			l.mu.Unlock()
			return
		}
		fs.EachError(func(_ string, _ int32, err error) {
			l.log.Warn("reading the config topic", "topic", l.topic, "err", err)
		})
		l.mu.Lock()
		before := l.next
		fs.EachRecord(l.applyLocked)
		l.changed.Broadcast()
		if l.next != before {
			for _, c := range l.watch {
				select {
				case c <- struct{}{}:
				default: // one pending signal says it all: read Snapshot
				}
			}
		}
		l.mu.Unlock()
	}
}

// applyLocked applies one record: a connector's entry, a tombstone, or
// something this version does not know (skipped with a warning, so a
// newer member's records do not stop an older one).
func (l *ConfigLog) applyLocked(r *kgo.Record) {
	l.next = max(l.next, r.Offset+1)
	name, ok := strings.CutPrefix(string(r.Key), keyPrefix)
	if !ok || name == "" {
		l.log.Warn("skipping a config record with an unknown key", "topic", l.topic, "offset", r.Offset, "key", string(r.Key))
		return
	}
	l.written[name] = true
	if r.Value == nil {
		delete(l.entries, name)
		return
	}
	var e Entry
	if err := json.Unmarshal(r.Value, &e); err != nil || len(e.Definition) == 0 {
		l.log.Warn("skipping a config record that does not decode", "topic", l.topic, "offset", r.Offset, "connector", name, "err", err)
		return
	}
	e.Version = r.Offset
	l.entries[name] = e
}

// waitPast waits until the reader has applied the record at offset.
func (l *ConfigLog) waitPast(ctx context.Context, offset int64) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.changed.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.next <= offset {
		if err := ctx.Err(); err != nil {
			return err
		}
		if l.err != nil {
			return l.err
		}
		l.changed.Wait()
	}
	return nil
}

// Changes returns a channel that receives a signal after the reader has
// applied new records; the receiver then reads Snapshot. Signals do not
// queue up: several writes may show as one.
func (l *ConfigLog) Changes() <-chan struct{} {
	c := make(chan struct{}, 1)
	l.mu.Lock()
	l.watch = append(l.watch, c)
	l.mu.Unlock()
	return c
}

// Snapshot returns every connector's entry.
func (l *ConfigLog) Snapshot() map[string]Entry {
	entries, _ := l.SnapshotAt()
	return entries
}

// SnapshotAt returns every connector's entry and the log position they
// reflect: the offset after the last record applied. A write whose
// version is below next (a deletion included) is part of the snapshot.
func (l *ConfigLog) SnapshotAt() (entries map[string]Entry, next int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.entries), l.next
}

// Put writes name's definition and target and returns the write's version
// once this member has read it. A concurrent Put of the same name by
// another member may come after it in the log and win.
func (l *ConfigLog) Put(ctx context.Context, name string, definition json.RawMessage, target Target) (int64, error) {
	value, err := json.Marshal(Entry{Definition: definition, Target: target})
	if err != nil {
		return 0, err
	}
	return l.write(ctx, name, value)
}

// Delete writes name's tombstone. The connector's offsets and sink
// checkpoints are not touched.
func (l *ConfigLog) Delete(ctx context.Context, name string) (int64, error) {
	return l.write(ctx, name, nil)
}

// SeedIfAbsent puts definition, RUNNING, unless name was ever written
// (a deleted connector is not seeded again: its tombstone is the
// operator's decision). It reports whether it wrote. Two members seeding
// the same name at once both write; the later wins, and both came from
// the same file.
//
// Compaction removes a tombstone after the topic's delete.retention.ms
// (a day by default); a member started after that seeds the connector
// again from its file. Remove it from the file once it is deleted.
func (l *ConfigLog) SeedIfAbsent(ctx context.Context, name string, definition json.RawMessage) (bool, error) {
	l.mu.Lock()
	written := l.written[name]
	l.mu.Unlock()
	if written {
		return false, nil
	}
	_, err := l.Put(ctx, name, definition, Running)
	return err == nil, err
}

// write produces one record (nil value: a tombstone) to the only
// partition, acknowledged by every in-sync replica, and waits until this
// member's reader is past it.
func (l *ConfigLog) write(ctx context.Context, name string, value []byte) (int64, error) {
	if name == "" {
		return 0, errors.New("config log: empty connector name")
	}
	r := &kgo.Record{Key: []byte(keyPrefix + name), Value: value, Partition: 0}
	if err := l.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return 0, fmt.Errorf("config topic %s: writing connector %s: %w", l.topic, name, err)
	}
	if err := l.waitPast(ctx, r.Offset); err != nil {
		return 0, fmt.Errorf("config topic %s: connector %s written at offset %d, not read back: %w", l.topic, name, r.Offset, err)
	}
	return r.Offset, nil
}

// Close stops the reader and closes the client.
func (l *ConfigLog) Close() {
	l.cancel()
	<-l.done
	l.cl.Close()
}
