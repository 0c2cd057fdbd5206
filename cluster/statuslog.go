package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TaskStatus is one task of one connector on one member, as Kafka
// Connect's status API shows it (state, worker_id, trace).
type TaskStatus struct {
	Connector string `json:"connector"`
	Task      int    `json:"id"`
	WorkerID  string `json:"worker_id"`
	State     string `json:"state"`
	Trace     string `json:"trace,omitempty"`
	// IntervalMs is the publisher's refresh interval; At is when it
	// published (its clock, milliseconds since the epoch).
	IntervalMs int64 `json:"interval_ms"`
	At         int64 `json:"at"`
	// Stale is set by the reader: no refresh for StaleAfter intervals
	// (the member crashed or is cut off). Its tasks' partitions move to
	// the others through the consumer groups; the status stays until
	// its member comes back or compaction and a tombstone remove it.
	Stale bool `json:"stale,omitempty"`
}

// StaleAfter is how many refresh intervals without a refresh make a
// status stale.
const StaleAfter = 3

// statusPartitions is the status topic's partition count: statuses are
// keyed, and a key's records stay in order on its partition.
const statusPartitions = 3

// StatusLog is the cluster's task statuses in a compacted topic: each
// member publishes its own tasks' statuses (key status/<connector>/<worker>/<task>)
// every interval and tombstones them on a clean stop; every member reads
// all of them, so any member answers for the whole cluster.
type StatusLog struct {
	topic    string
	worker   string
	interval time.Duration
	cl       *kgo.Client
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	statuses  map[string]TaskStatus // by key
	published map[string]bool       // this worker's keys, for the tombstones
	cancel    context.CancelFunc
	done      chan struct{}
}

// OpenStatus creates the topic if missing and starts reading it; worker
// is this member's ID (its instance_id), interval its refresh interval.
func OpenStatus(ctx context.Context, brokers []string, topic, worker string, interval time.Duration, opts []kgo.Opt, log *slog.Logger) (*StatusLog, error) {
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range int32(statusPartitions) {
		parts[topic][p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(parts),
		kgo.DefaultProduceTopic(topic),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := ensureTopic(ctx, cl, topic, statusPartitions); err != nil {
		cl.Close()
		return nil, fmt.Errorf("status topic %s: %w", topic, err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	s := &StatusLog{topic: topic, worker: worker, interval: interval, cl: cl, log: log, now: time.Now,
		statuses: map[string]TaskStatus{}, published: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	go s.read(rctx)
	return s, nil
}

func statusKey(connector, worker string, task int) string {
	return "status/" + connector + "/" + worker + "/" + strconv.Itoa(task)
}

func (s *StatusLog) read(ctx context.Context) {
	defer close(s.done)
	for {
		fs := s.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) {
			s.log.Warn("reading the status topic", "topic", s.topic, "err", err)
		})
		s.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			key := string(r.Key)
			if !strings.HasPrefix(key, "status/") {
				return
			}
			if r.Value == nil {
				delete(s.statuses, key)
				return
			}
			var st TaskStatus
			if err := json.Unmarshal(r.Value, &st); err != nil {
				s.log.Warn("skipping a status record that does not decode", "topic", s.topic, "key", key, "err", err)
				return
			}
			s.statuses[key] = st
		})
		s.mu.Unlock()
	}
}

// Publish writes this worker's statuses (Connector, Task, State, Trace
// set by the caller) and tombstones its earlier keys that are not among
// them (a task or connector gone).
func (s *StatusLog) Publish(ctx context.Context, tasks []TaskStatus) error {
	now := s.now().UnixMilli()
	keep := map[string]bool{}
	var recs []*kgo.Record
	for _, t := range tasks {
		t.WorkerID, t.IntervalMs, t.At, t.Stale = s.worker, s.interval.Milliseconds(), now, false
		v, err := json.Marshal(t)
		if err != nil {
			return err
		}
		k := statusKey(t.Connector, s.worker, t.Task)
		keep[k] = true
		recs = append(recs, &kgo.Record{Key: []byte(k), Value: v})
	}
	s.mu.Lock()
	for k := range s.published {
		if !keep[k] {
			recs = append(recs, &kgo.Record{Key: []byte(k)})
		}
	}
	s.published = keep
	s.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	return s.cl.ProduceSync(ctx, recs...).FirstErr()
}

// Run publishes what tasks returns every interval until ctx ends, then
// tombstones this worker's statuses (a clean stop: its tasks are gone,
// not stale).
func (s *StatusLog) Run(ctx context.Context, tasks func() []TaskStatus) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if err := s.Publish(ctx, tasks()); err != nil && ctx.Err() == nil {
			s.log.Warn("publishing task statuses", "topic", s.topic, "err", err)
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Publish(sctx, nil); err != nil {
				s.log.Warn("removing this worker's task statuses", "topic", s.topic, "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// Statuses returns every member's tasks of connector, by worker and task,
// marking those not refreshed for StaleAfter of their intervals.
func (s *StatusLog) Statuses(connector string) []TaskStatus {
	now := s.now().UnixMilli()
	s.mu.Lock()
	var out []TaskStatus
	for _, st := range s.statuses {
		if st.Connector != connector {
			continue
		}
		st.Stale = now-st.At > StaleAfter*st.IntervalMs
		out = append(out, st)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b TaskStatus) int {
		if c := strings.Compare(a.WorkerID, b.WorkerID); c != 0 {
			return c
		}
		return a.Task - b.Task
	})
	return out
}

// Close stops reading and closes the client (Run's tombstones are
// written before, when its context ends).
func (s *StatusLog) Close() {
	s.cancel()
	<-s.done
	s.cl.Close()
}
