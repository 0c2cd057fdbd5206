// Package kafka is connectd's Kafka sink: it turns connector records into
// Kafka records, carrying each record's event ID and origin as headers so a
// downstream consumer (and `connectd verify`) can deduplicate and trace
// them. Transactions and offset commits are the commit protocol's job
// (package txn); this package only says what is written where.
package kafka

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

const (
	// HeaderEventID carries the record's event ID on every output record.
	HeaderEventID = "event-id"
	// HeaderOrigin carries the input record's topic/partition/offset. The
	// checker uses it to bound its comparison by the committed checkpoint.
	// It is left out when it would repeat the event ID (event_id.from:
	// derived, where the ID is the origin): see OriginOf.
	HeaderOrigin = "connectd-origin"
)

// Config is the `sink: {type: kafka}` section.
type Config struct {
	// Topic is the output topic of records no transform routed elsewhere.
	// Required.
	Topic string `yaml:"topic"`
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Topic == "" {
		return errors.New("topic: an output topic is required")
	}
	return nil
}

// ProducerOptions are the producer-side kgo options every connectd Kafka
// sink uses: acks=all and idempotence (franz-go's defaults, stated here
// because exactly-once depends on them), and asking the broker to create a
// missing output topic (it does if its auto.create.topics.enable allows).
//
// The partitioner is franz-go's default for every record but a state
// record, which goes to the partition of its state topic that StateStore
// reads (see Partitioner).
//
// MetadataMinAge is lowered from franz-go's 5 s to Java's
// retry.backoff.ms (100 ms): a partition whose produce fails with a
// retriable error waits for the next metadata refresh, and franz-go spaces
// refreshes by MetadataMinAge. With transaction.version 2 (Kafka 4.0+) the
// first produce of a transaction gets CONCURRENT_TRANSACTIONS when the
// previous transaction's markers take longer than the broker's own retries
// (add.partitions.to.txn.retry.backoff.max.ms, 100 ms), as on a loaded or
// freshly started broker; at 5 s each such produce stalled its commit 5 s,
// the bimodal exactly_once rounds of issue 17 (a drain of 2.6 s taking
// 7.6 s). Nothing is retried from memory by this: the records stay in
// the open transaction, produced once, in order (idempotent sequence).
//
// The linger depends on the connector's commit interval (Linger).
func ProducerOptions(commitInterval time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerLinger(Linger(commitInterval)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(Partitioner(nil)),
		kgo.MetadataMinAge(ProducerMetadataMinAge),
	}
}

// Linger is how long a connectd producer lets a partition's records wait
// for more before it sends them (kgo.ProducerLinger), for a connector that
// commits every interval: franz-go's 10 ms, but never more than a fifth of
// the interval. The commit flushes what still lingers and waits for it
// before it can end the transaction, so with a 10 ms interval and a 10 ms
// linger every batch's output went out at its commit and the produce round
// trip was added to every record's latency; sent while the batch is still
// read, it is not. At 50 ms and more the interval does not change it.
func Linger(commitInterval time.Duration) time.Duration {
	const franzDefault = 10 * time.Millisecond
	return max(min(franzDefault, commitInterval/5), 0)
}

// ProducerMetadataMinAge is the shortest time between two metadata
// refreshes of a connectd producer (see ProducerOptions).
const ProducerMetadataMinAge = 100 * time.Millisecond

// ToKgo converts r for producing; records without a Topic go to defaultTopic.
// A state record (connector.StateRecord) goes to StateTopic(r.Topic), keyed
// by its input partition and state key, with no headers; its partition is
// chosen by Partitioner. ToKgo allocates the record on its own; the write
// paths, which convert every record of a batch, use a Converter instead.
func ToKgo(r *connector.Record, defaultTopic string) *kgo.Record {
	out := &outRecord{}
	if r.Kind == connector.StateRecord {
		out.fillState(r, StateTopic(r.Topic), make([]byte, 0, stateKeyBytes(r)))
		return &out.record
	}
	out.fill(r, defaultTopic, make([]byte, 0, headerBytes(r)))
	return &out.record
}

// A Converter converts records for producing, carving them out of chunks
// of chunkRecords records and chunkBytes header bytes: in steady state no
// allocation per record (ToKgo takes two). A chunk is not written again
// while the producer may hold one of its records, that is until their
// promises have all been called; then Recycle makes every chunk handed out
// reusable, and a Converter recycled after each batch allocates nothing
// per batch either. Without Recycle the garbage collector frees a chunk
// once all its records are done. The zero Converter is ready; it is not
// safe for concurrent use.
type Converter struct {
	recs []outRecord
	buf  []byte
	// Chunks handed out since the last Recycle or Forget (the ones recs
	// and buf carve from included), and chunks free for reuse.
	usedRecs, freeRecs [][]outRecord
	usedBufs, freeBufs [][]byte
	// The state topic of the last state record's namespace.
	stateNS, stateName string
}

const (
	chunkRecords = 256
	chunkBytes   = 32 << 10
)

// Recycle reuses every chunk handed out so far. The caller guarantees that
// every record Convert returned since the last Recycle or Forget has had
// its produce promise called (or was never produced): franz-go reads a
// record until its promise, and not after it.
func (c *Converter) Recycle() {
	c.freeRecs = append(c.freeRecs, c.usedRecs...)
	c.freeBufs = append(c.freeBufs, c.usedBufs...)
	clear(c.usedRecs)
	clear(c.usedBufs)
	c.usedRecs, c.usedBufs = c.usedRecs[:0], c.usedBufs[:0]
	c.recs, c.buf = nil, nil
}

// Forget gives up the chunks handed out since the last Recycle to the
// garbage collector, for when their records may still be held by a
// producer (a batch aborted without waiting for its promises): they are
// never written again. The chunks recycled before stay free for reuse.
func (c *Converter) Forget() {
	clear(c.usedRecs)
	clear(c.usedBufs)
	c.usedRecs, c.usedBufs = c.usedRecs[:0], c.usedBufs[:0]
	c.recs, c.buf = nil, nil
}

// recChunk returns a chunk of records, free or new, counted as used.
func (c *Converter) recChunk() []outRecord {
	var chunk []outRecord
	if n := len(c.freeRecs); n > 0 {
		chunk, c.freeRecs[n-1], c.freeRecs = c.freeRecs[n-1], nil, c.freeRecs[:n-1]
	} else {
		chunk = make([]outRecord, chunkRecords)
	}
	c.usedRecs = append(c.usedRecs, chunk)
	return chunk
}

// bufChunk returns an empty chunk of header bytes with room for need,
// free or new, counted as used.
func (c *Converter) bufChunk(need int) []byte {
	var chunk []byte
	if n := len(c.freeBufs); n > 0 && cap(c.freeBufs[n-1]) >= need {
		chunk, c.freeBufs[n-1], c.freeBufs = c.freeBufs[n-1][:0], nil, c.freeBufs[:n-1]
	} else {
		chunk = make([]byte, 0, max(chunkBytes, need))
	}
	c.usedBufs = append(c.usedBufs, chunk)
	return chunk
}

// Convert is ToKgo, without its allocations.
func (c *Converter) Convert(r *connector.Record, defaultTopic string) *kgo.Record {
	if len(c.recs) == 0 {
		c.recs = c.recChunk()
	}
	out := &c.recs[0]
	c.recs = c.recs[1:]
	state := r.Kind == connector.StateRecord
	need := headerBytes(r)
	if state {
		need = stateKeyBytes(r)
	}
	if cap(c.buf)-len(c.buf) < need {
		c.buf = c.bufChunk(need)
	}
	buf := c.buf[len(c.buf) : len(c.buf) : len(c.buf)+need]
	var used int
	if state {
		used = out.fillState(r, c.stateTopic(r.Topic), buf)
	} else {
		used = out.fill(r, defaultTopic, buf)
	}
	c.buf = c.buf[:len(c.buf)+used]
	return &out.record
}

// headerBytes bounds the bytes of the two headers connectd adds: the event
// ID, and the origin (its topic, two slashes and at most 10 + 20 digits).
func headerBytes(r *connector.Record) int {
	return len(r.EventID) + len(r.Origin.Topic) + 32
}

// outRecord is a produced record and the usual number of its headers (at
// most one of the input's, then the event ID and the origin) in one
// allocation.
type outRecord struct {
	record  kgo.Record
	headers [3]kgo.RecordHeader
}

// fill makes out the record to produce for r, with the event ID and
// origin headers written into buf, which has room for headerBytes(r) and
// so is never grown (and never moves the event ID's slice). It returns the
// bytes of buf it used; both header values are capped there, so nothing
// appended to them can reach past.
func (out *outRecord) fill(r *connector.Record, defaultTopic string, buf []byte) int {
	topic := r.Topic
	if topic == "" {
		topic = defaultTopic
	}
	headers := out.headers[:0]
	if len(r.Headers)+2 > len(out.headers) {
		headers = make([]kgo.RecordHeader, 0, len(r.Headers)+2)
	}
	for _, h := range r.Headers {
		if h.Key == HeaderEventID || h.Key == HeaderOrigin {
			continue
		}
		headers = append(headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	n := len(r.EventID)
	buf = append(buf, r.EventID...)
	buf = r.Origin.AppendTo(buf)
	headers = append(headers, kgo.RecordHeader{Key: HeaderEventID, Value: buf[:n:n]})
	if bytes.Equal(buf[:n], buf[n:]) {
		// A derived event ID is the origin: carrying it twice would cost
		// every record its bytes again, in the produce request, the
		// broker's log and every reader (issue 9's per-record CPU).
		buf = buf[:n]
	} else {
		headers = append(headers, kgo.RecordHeader{Key: HeaderOrigin, Value: buf[n:len(buf):len(buf)]})
	}
	out.record = kgo.Record{
		Topic:     topic,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
		Timestamp: r.Timestamp,
	}
	return len(buf)
}

// OriginOf returns the input record an output record came from, given its
// event-id and connectd-origin header values: the origin header, or, when
// the record has none because the event ID is the origin, the event ID.
func OriginOf(eventID, origin string) (connector.Origin, error) {
	if origin == "" {
		origin = eventID
	}
	return ParseOrigin(origin)
}

// ParseOrigin parses a HeaderOrigin value ("topic/partition/offset"; the
// topic may itself contain slashes).
func ParseOrigin(s string) (connector.Origin, error) {
	last := lastSlash(s)
	if last <= 0 {
		return connector.Origin{}, errors.New("origin header: want topic/partition/offset")
	}
	off, err := strconv.ParseInt(s[last+1:], 10, 64)
	if err != nil {
		return connector.Origin{}, errors.New("origin header: bad offset")
	}
	rest := s[:last]
	mid := lastSlash(rest)
	if mid <= 0 {
		return connector.Origin{}, errors.New("origin header: want topic/partition/offset")
	}
	part, err := strconv.ParseInt(rest[mid+1:], 10, 32)
	if err != nil {
		return connector.Origin{}, errors.New("origin header: bad partition")
	}
	return connector.Origin{Topic: rest[:mid], Partition: int32(part), Offset: off}, nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}
