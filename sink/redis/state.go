package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
)

// State records (connector.StateRecord) are not data keys: each is one
// field of a hash per state namespace and input partition,
//
//	<key_prefix>connectd:state:<ns>:<topic>:<partition>
//
// HSET when the record has a value, HDEL when its value is nil. With
// exactly_once they are written by the commit script, after the same
// claim-epoch and checkpoint compare-and-set as the data and before the
// offsets move, so a fenced or refused commit applies none of them and
// the state in Redis is always the state of the stored checkpoint. With
// at_least_once they are pipelined like the data, as durable (and as
// replayed) as it is.
//
// The hash is named like the sink's other own keys (offsets, DLQ, audit
// log): under key_prefix and "connectd:", so a data key rendered into it is
// refused as reserved instead of failing in the middle of a script.

// StateKeyPrefix, under key_prefix and followed by
// "<ns>:<topic>:<partition>", names the state hashes.
const StateKeyPrefix = "connectd:state:"

// stateChunk is how many values one HSET or HDEL takes from the script's
// ARGV or a pipeline: Lua's unpack fails above about 8000.
const stateChunk = 2000

// stateScanCount is the COUNT hint of the HSCANs that read a state hash
// back: large, so that a million fields take a hundred round trips, not
// the ten thousand of the default 10 (or one reply of a million fields
// with HGETALL, which blocks the server and doubles the client's memory).
const stateScanCount = 10000

// stateKey names the state hash of namespace ns and input partition tp.
func (k keys) stateKey(ns string, tp connector.TopicPartition) string {
	return k.state + ns + ":" + tp.Topic + ":" + strconv.Itoa(int(tp.Partition))
}

// stateHash is one hash's changes in a batch: at most one change per
// field, the batch's last.
type stateHash struct {
	key  string
	set  []any // field, value pairs
	del  []any // fields
	last map[string]stateChange
}

// stateChange is where a field's change sits in set or del.
type stateChange struct {
	del bool
	at  int
}

// stateID names a state hash before its key is rendered.
type stateID struct {
	ns, topic string
	partition int32
}

// stateChanges groups the state records of recs by hash, in the order the
// hashes first appear, so a commit sends one HSET and one HDEL per hash
// (per chunk) whatever the mix; when a field changes more than once the
// last change wins, as applying the records in order would give. It
// returns nil when recs has no state record.
//
// A first pass counts each hash's changes so that the second allocates
// every slice and map once: a batch carries thousands of state records.
func (p *planner) stateChanges(recs []*connector.Record) []stateHash {
	var (
		ids    []stateID
		counts [][2]int // sets, deletes
		which  []int32  // hash index of each state record, in order
		lastID stateID
		last   = -1
	)
	for _, r := range recs {
		if r.Kind != connector.StateRecord {
			continue
		}
		// Consecutive records mostly share a hash: compare with the last
		// one before searching.
		if last < 0 || r.Topic != lastID.ns || r.Origin.Topic != lastID.topic || r.Origin.Partition != lastID.partition {
			lastID = stateID{ns: r.Topic, topic: r.Origin.Topic, partition: r.Origin.Partition}
			last = slices.Index(ids, lastID)
			if last < 0 {
				last = len(ids)
				ids = append(ids, lastID)
				counts = append(counts, [2]int{})
			}
		}
		if r.Value == nil {
			counts[last][1]++
		} else {
			counts[last][0]++
		}
		which = append(which, int32(last))
	}
	if ids == nil {
		return nil
	}
	out := make([]stateHash, len(ids))
	for i, id := range ids {
		out[i] = stateHash{
			key:  p.k.stateKey(id.ns, connector.TopicPartition{Topic: id.topic, Partition: id.partition}),
			set:  make([]any, 0, 2*counts[i][0]),
			del:  make([]any, 0, counts[i][1]),
			last: make(map[string]stateChange, counts[i][0]+counts[i][1]),
		}
	}
	j := 0
	for _, r := range recs {
		if r.Kind != connector.StateRecord {
			continue
		}
		h := &out[which[j]]
		j++
		field := string(r.Key)
		if prev, ok := h.last[field]; ok {
			// Rare (a stage flushes each entry once per batch): blank the
			// earlier change, compacted away below.
			if prev.del {
				h.del[prev.at] = nil
			} else {
				h.set[prev.at] = nil
			}
		}
		if r.Value == nil {
			h.last[field] = stateChange{del: true, at: len(h.del)}
			h.del = append(h.del, field)
		} else {
			h.last[field] = stateChange{at: len(h.set)}
			h.set = append(h.set, field, r.Value)
		}
	}
	for i := range out {
		h := &out[i]
		if len(h.last) < len(h.set)/2+len(h.del) {
			h.set, h.del = compactPairs(h.set), compactSingles(h.del)
		}
		h.last = nil
	}
	return out
}

// compactPairs drops the field/value pairs whose field was blanked.
func compactPairs(s []any) []any {
	out := s[:0]
	for i := 0; i < len(s); i += 2 {
		if s[i] != nil {
			out = append(out, s[i], s[i+1])
		}
	}
	return out
}

// compactSingles drops the blanked fields.
func compactSingles(s []any) []any {
	out := s[:0]
	for _, f := range s {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// dataRecords returns recs without its state records (recs itself when it
// has none, the common case).
func dataRecords(recs []*connector.Record) []*connector.Record {
	n := 0
	for _, r := range recs {
		if r.Kind != connector.StateRecord {
			n++
		}
	}
	if n == len(recs) {
		return recs
	}
	out := make([]*connector.Record, 0, n)
	for _, r := range recs {
		if r.Kind != connector.StateRecord {
			out = append(out, r)
		}
	}
	return out
}

// pipeState queues changes as HSETs and HDELs of at most stateChunk
// values each.
func pipeState(ctx context.Context, pipe redis.Pipeliner, changes []stateHash) {
	for _, h := range changes {
		for start := 0; start < len(h.set); start += stateChunk {
			pipe.HSet(ctx, h.key, h.set[start:min(start+stateChunk, len(h.set))]...)
		}
		for start := 0; start < len(h.del); start += stateChunk {
			fields := make([]string, 0, min(stateChunk, len(h.del)-start))
			for _, f := range h.del[start:min(start+stateChunk, len(h.del))] {
				fields = append(fields, f.(string))
			}
			pipe.HDel(ctx, h.key, fields...)
		}
	}
}

// LoadState returns the committed state of namespace ns and input
// partition tp (connector.StateStore). It reads the state hash with HSCAN
// in chunks of about ten thousand fields, so the server is never blocked
// by one large reply. The scan is not a snapshot: call it after claiming
// tp, when no other member's commit can change the hash (theirs are
// fenced).
//
// A hash that holds another type is Fatal (*WrongTypeError), as it would
// be for the commit; any other failure is Abortable: nothing was written.
func (s *Store) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	return loadState(ctx, s.client, s.plan.k.stateKey(ns, tp))
}

var _ connector.StateStore = (*Store)(nil)

// LoadState is Store.LoadState for the at-least-once sink, whose state
// is as durable, and as duplicated on replay, as its data.
func (w *Writer) LoadState(ctx context.Context, ns string, tp connector.TopicPartition) (map[string][]byte, error) {
	return loadState(ctx, w.client, w.plan.k.stateKey(ns, tp))
}

var _ connector.StateStore = (*Writer)(nil)

func loadState(ctx context.Context, c *redis.Client, key string) (map[string][]byte, error) {
	// HLEN sizes the map, so a million entries are not rehashed twenty
	// times; it also tells an empty hash without a scan.
	n, err := c.HLen(ctx, key).Result()
	if err != nil {
		return nil, stateLoadError(ctx, c, key, err)
	}
	out := make(map[string][]byte, n)
	if n == 0 {
		return out, nil
	}
	var cursor uint64
	for {
		kv, next, err := c.HScan(ctx, key, cursor, "", stateScanCount).Result()
		if err != nil {
			return nil, stateLoadError(ctx, c, key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = []byte(kv[i+1])
		}
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

func stateLoadError(ctx context.Context, c *redis.Client, key string, err error) error {
	if strings.HasPrefix(err.Error(), "WRONGTYPE") {
		found, terr := c.Type(ctx, key).Result()
		if terr != nil {
			found = "value of another type"
		}
		return connector.NewCommitError(connector.Fatal, "load state",
			&WrongTypeError{Key: key, Found: found, Wanted: "hash"})
	}
	return connector.NewCommitError(connector.Abortable, "load state", fmt.Errorf("reading %s: %w", key, err))
}
