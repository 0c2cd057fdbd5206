// Package kafka is connectd's Kafka sink: it turns connector records into
// Kafka records, carrying each record's event ID and origin as headers so a
// downstream consumer (and `connectd verify`) can deduplicate and trace
// them. Transactions and offset commits are the commit protocol's job
// (package txn); this package only says what is written where.
package kafka

import (
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

const (
	// HeaderEventID carries the record's event ID on every output record.
	HeaderEventID = "event-id"
	// HeaderOrigin carries the input record's topic/partition/offset. The
	// checker uses it to bound its comparison by the committed checkpoint.
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
func ProducerOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.AllowAutoTopicCreation(),
	}
}

// ToKgo converts r for producing; records without a Topic go to defaultTopic.
//
// It runs for every output record, so it allocates twice, not four times:
// the record with room for three headers (the usual case: at most one of
// the input's, then the event ID and the origin), and one buffer holding
// both the event ID and the origin.
func ToKgo(r *connector.Record, defaultTopic string) *kgo.Record {
	topic := r.Topic
	if topic == "" {
		topic = defaultTopic
	}
	out := &outRecord{}
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
	// An origin is its topic, two slashes and at most 10 + 20 digits, so
	// the buffer never grows and the event ID's slice is never moved.
	n := len(r.EventID)
	buf := append(make([]byte, 0, n+len(r.Origin.Topic)+32), r.EventID...)
	buf = appendOrigin(buf, r.Origin)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderEventID, Value: buf[:n:n]},
		kgo.RecordHeader{Key: HeaderOrigin, Value: buf[n:]},
	)
	out.record = kgo.Record{
		Topic:     topic,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
		Timestamp: r.Timestamp,
	}
	return &out.record
}

// outRecord is a produced record and the usual number of its headers in
// one allocation.
type outRecord struct {
	record  kgo.Record
	headers [3]kgo.RecordHeader
}

// appendOrigin appends o as Origin.String renders it, without fmt: it
// runs for every output record, and fmt.Sprintf cost three allocations
// (with dst sized by the caller this is one).
func appendOrigin(dst []byte, o connector.Origin) []byte {
	dst = append(dst, o.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(o.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, o.Offset, 10)
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
