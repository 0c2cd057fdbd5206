package generator

import (
	"strconv"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/idempotency"
)

// baseTime is the timestamp of event 0 (2024-01-01T00:00:00Z). Event i is
// stamped baseTime + i ms instead of the wall clock, so a replay yields
// byte-identical records and time-based transforms stay deterministic.
const baseTimeMillis = 1704067200000

// keyStride is a prime (Knuth's multiplicative-hash constant) larger than
// any sensible cardinality, so i*keyStride mod cardinality visits every key
// once in each run of cardinality consecutive events while neighbouring
// events still get different keys.
const keyStride = 2654435761

// Event returns the seq-th event of the generator called name with cfg. It is
// a pure function of its arguments — the generator emits exactly these
// records, and the exactly-once checker calls it to recompute the input
// without reading it back. cfg's zero fields take their defaults.
func Event(name string, cfg Config, seq int64) *connector.Record {
	var (
		r   connector.Record
		hdr [1]connector.Header
	)
	fill(&r, hdr[:], name, origin(name), cfg.withDefaults(), seq)
	return &r
}

// fill writes event seq into r, using hdr (length 1) as its header slice.
// Key, value and the header value share one allocation, carved with full
// slice expressions so an append to one can never overwrite another.
// topic is origin(name), passed in so a Generator computes it once.
func fill(r *connector.Record, hdr []connector.Header, name, topic string, cfg Config, seq int64) {
	var idBuf [64]byte
	id := string(strconv.AppendInt(append(append(idBuf[:0], name...), '-'), seq, 10))
	keyN := key(cfg, seq)

	buf := make([]byte, 0, cfg.PayloadBytes+2*len(id)+80)
	buf = appendValue(buf, cfg, id, seq, keyN)
	value := buf[:len(buf):len(buf)]

	start := len(buf)
	buf = append(buf, "key-"...)
	buf = strconv.AppendUint(buf, keyN, 10)
	k := buf[start:len(buf):len(buf)]

	start = len(buf)
	buf = append(buf, id...)
	hdr[0] = connector.Header{Key: idempotency.DefaultHeader, Value: buf[start:len(buf):len(buf)]}

	*r = connector.Record{
		Key:       k,
		Value:     value,
		Headers:   hdr[:1:1],
		Timestamp: time.UnixMilli(baseTimeMillis + seq).UTC(),
		EventID:   id,
		Origin:    connector.Origin{Topic: topic, Partition: 0, Offset: seq},
	}
}

// key returns the key number of event seq. Unsigned arithmetic keeps it
// non-negative and well defined for any seq and seed.
func key(cfg Config, seq int64) uint64 {
	return (uint64(seq)*keyStride + uint64(cfg.Seed)) % uint64(cfg.KeyCardinality)
}

// appendValue appends the event's JSON value:
//
//	{"id":"orders-7","seq":7,"customer":"c-123","amount":417.93,"payload":"..."}
//
// The customer follows the key, so per-key transforms see one customer per
// key; payload pads the value to cfg.PayloadBytes when that is reachable.
func appendValue(b []byte, cfg Config, id string, seq int64, keyN uint64) []byte {
	start := len(b)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"customer":"c-`...)
	b = strconv.AppendUint(b, keyN, 10)
	b = append(b, `","amount":`...)
	cents := mix(uint64(seq)^uint64(cfg.Seed)*0x9e3779b97f4a7c15) % 100000
	b = strconv.AppendUint(b, cents/100, 10)
	b = append(b, '.', byte('0'+cents/10%10), byte('0'+cents%10))
	b = append(b, `,"payload":"`...)
	b = appendFiller(b, seq, cfg.PayloadBytes-2-(len(b)-start))
	return append(b, `"}`...)
}

// fillerCycle holds two periods of the letters 'a'+7j mod 26; filler for
// event seq reads it from offset 15*seq mod 26 (15 is 7's inverse mod 26),
// which makes filler[j] = 'a'+(seq+7j) mod 26 without per-byte arithmetic.
// The filler varies with seq so values do not all compress to nothing,
// which would flatter throughput numbers.
const fillerCycle = "ahovcjqxelszgnubipwdkryfmtahovcjqxelszgnubipwdkryfmt"

func appendFiller(b []byte, seq int64, n int) []byte {
	off := int((seq%26*15%26 + 26) % 26)
	for n > 0 {
		k := min(n, 26)
		b = append(b, fillerCycle[off:off+k]...)
		n -= k
	}
	return b
}

// mix is splitmix64's finaliser: a cheap, well-spread deterministic hash.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// appendJSONString appends s as a JSON string. Generator names come from
// config and are not trusted to be free of quotes or control characters.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
