// Package connector holds connectd's runtime model: the Record that flows from a
// source through transforms to a sink, the Checkpoint that says where a source
// resumes, and the coordinator loop that turns them into atomic batches.
package connector

import (
	"fmt"
	"strconv"
	"time"
)

// Header is one Kafka-style record header.
type Header struct {
	Key   string
	Value []byte
}

// Origin says where a record was read: the source topic-partition and offset.
// For non-Kafka sources Topic names the source (e.g. "generator:orders").
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

// String renders the origin as topic/partition/offset, the form used in
// error messages and derived event IDs.
func (o Origin) String() string {
	return fmt.Sprintf("%s/%d/%d", o.Topic, o.Partition, o.Offset)
}

// AppendTo appends o as String renders it, without fmt: the derived event
// ID and the output's origin header render it for every record, where
// fmt.Sprintf cost three allocations.
func (o Origin) AppendTo(dst []byte) []byte {
	dst = append(dst, o.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(o.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, o.Offset, 10)
}

// Record is the unit that flows through a connector.
//
// EventID is the identity that makes a write idempotent; it is derived once
// when the record is read (see package idempotency) and carried unchanged to
// the sink, except that a transform emitting n > 1 outputs for one input
// suffixes "/i" to the i-th output's ID so every output stays unique.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	EventID   string
	Origin    Origin
	// Topic is the output topic; empty means the sink's default. The route
	// transform sets it. For a StateRecord it is the state namespace.
	Topic string
	// Kind says whether the record is output (DataRecord, the zero value)
	// or operator state (StateRecord) that the sink keeps beside the
	// output, in the same atomic commit.
	Kind RecordKind
}

// RecordKind tells a sink what a record is.
type RecordKind uint8

const (
	// DataRecord is output: a row, a Redis key, a record of the sink topic.
	DataRecord RecordKind = iota
	// StateRecord is an entry of a stateful stage's state (package window):
	// Key is the state key, Value its encoding, nil to delete it; Topic is
	// the state namespace (the connector's group); Origin.Topic and
	// Origin.Partition name the input partition the state belongs to
	// (Origin.Offset is unused). A sink writes state records in the same
	// atomic unit as the batch's output and checkpoint (a Kafka
	// transaction, a database transaction, a Redis script) and gives them
	// back through a StateStore, so state is exactly as durable as the
	// checkpoint it belongs to. Event IDs are not used.
	StateRecord
	// ControlRecord is an input transaction marker a source returns
	// (bounded runs read with franz-go's KeepControlRecords): it only
	// moves the checkpoint past itself, so that a partition written
	// transactionally, which ends in a marker, can be read to its end.
	// The coordinator never processes or writes it.
	ControlRecord
)

// Header returns the value of the last header named key, and whether it exists.
func (r *Record) Header(key string) ([]byte, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// SetHeader replaces every header named key by one with value.
func (r *Record) SetHeader(key string, value []byte) {
	r.RemoveHeader(key)
	r.Headers = append(r.Headers, Header{Key: key, Value: value})
}

// RemoveHeader drops every header named key.
func (r *Record) RemoveHeader(key string) {
	out := r.Headers[:0]
	for _, h := range r.Headers {
		if h.Key != key {
			out = append(out, h)
		}
	}
	r.Headers = out
}

// Clone returns a deep copy, so a transform may modify its output without
// touching the input (which a replay must see unchanged).
func (r *Record) Clone() *Record {
	c := *r
	c.Key = cloneBytes(r.Key)
	c.Value = cloneBytes(r.Value)
	if r.Headers != nil {
		c.Headers = make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			c.Headers[i] = Header{Key: h.Key, Value: cloneBytes(h.Value)}
		}
	}
	return &c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
