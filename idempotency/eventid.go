// Package idempotency gives every record the event ID that makes its write
// idempotent: a sink keys its upsert on the ID, so a batch re-read after an
// abort overwrites instead of duplicating. IDs must be deterministic — the
// same input record always yields the same ID — or a replay would produce
// new identities and the duplicates would go unnoticed.
package idempotency

import (
	"errors"
	"fmt"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/jsonpath"
)

// Mode says where a record's event ID comes from.
type Mode string

const (
	// ModeHeader takes the ID from a record header (DefaultHeader unless
	// configured otherwise). It is the default: producers that already
	// stamp an ID keep it end to end.
	ModeHeader Mode = "header"
	// ModeJSON takes the ID from a field of the JSON value, addressed by a
	// dot path such as "order.id".
	ModeJSON Mode = "json"
	// ModeKey uses the record key, for topics keyed by entity where the
	// latest write per key is what the sink should hold.
	ModeKey Mode = "key"
	// ModeDerived uses the record's origin, topic/partition/offset, which is
	// unique and stable for any record read from a Kafka log.
	ModeDerived Mode = "derived"
)

// DefaultHeader is the header read in header mode when none is configured.
const DefaultHeader = "event-id"

// Deriver computes event IDs for one connector's configuration. It holds no
// mutable state and is safe for concurrent use.
type Deriver struct {
	mode   Mode
	header string
	path   jsonpath.Path // ModeJSON: the field's dot path
}

// NewDeriver returns a Deriver for mode, which is one of the Mode values; an
// empty mode means ModeHeader, matching the config default. header is the
// header name for ModeHeader (empty means DefaultHeader) and field is the
// dot path for ModeJSON, where it is required.
func NewDeriver(mode, header, field string) (*Deriver, error) {
	d := &Deriver{mode: Mode(mode), header: header}
	switch d.mode {
	case "", ModeHeader:
		d.mode = ModeHeader
		if d.header == "" {
			d.header = DefaultHeader
		}
	case ModeJSON:
		path, err := parseField(field)
		if err != nil {
			return nil, err
		}
		d.path = path
	case ModeKey, ModeDerived:
	default:
		return nil, fmt.Errorf("event ID mode %q unknown: want header, json, key or derived", mode)
	}
	return d, nil
}

// Mode returns the deriver's mode, with the default resolved.
func (d *Deriver) Mode() Mode { return d.mode }

// Derive returns r's event ID. A record without a usable ID yields an
// *IDError naming the record's origin; the caller decides (per the
// connector's error policy) whether that fails the connector or sends the
// record to the dead-letter queue — it must never invent an ID, since an
// invented ID would not survive a replay.
func (d *Deriver) Derive(r *connector.Record) (string, error) {
	var buf [96]byte
	id, err := d.AppendID(buf[:0], r)
	return string(id), err
}

// AppendID appends r's event ID to dst, or returns dst and an *IDError
// naming r's origin. The processor appends a batch's IDs into shared
// chunks, so an ID is not an allocation of its own: Derive's string is
// one per record, a tenth of the pipeline's allocations in a drain.
func (d *Deriver) AppendID(dst []byte, r *connector.Record) ([]byte, error) {
	switch d.mode {
	case ModeHeader:
		v, ok := r.Header(d.header)
		if !ok {
			return dst, idErr(r, fmt.Errorf("event ID header %q missing", d.header))
		}
		if len(v) == 0 {
			return dst, idErr(r, fmt.Errorf("event ID header %q empty", d.header))
		}
		return append(dst, v...), nil
	case ModeJSON:
		id, err := jsonField(r.Value, d.path)
		if err != nil {
			return dst, idErr(r, err)
		}
		return append(dst, id...), nil
	case ModeKey:
		if len(r.Key) == 0 {
			return dst, idErr(r, errors.New("event ID from key: key empty"))
		}
		return append(dst, r.Key...), nil
	default: // ModeDerived; NewDeriver admits no other mode
		return r.Origin.AppendTo(dst), nil
	}
}

// DerivedID renders o as "topic/partition/offset", the derived event ID.
// It is built in a stack buffer so the returned string is its only
// allocation (for topics of ordinary length): derived mode runs per record.
func DerivedID(o connector.Origin) string {
	var buf [96]byte
	return string(o.AppendTo(buf[:0]))
}

// IDError reports a record from which no event ID could be derived.
type IDError struct {
	Origin connector.Origin
	Err    error
}

func (e *IDError) Error() string { return "record " + e.Origin.String() + ": " + e.Err.Error() }

func (e *IDError) Unwrap() error { return e.Err }

func idErr(r *connector.Record, err error) *IDError {
	return &IDError{Origin: r.Origin, Err: err}
}
