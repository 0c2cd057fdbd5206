// Package jsonpath addresses one field of a JSON value by a dot path such
// as order.customer.id: the event ID field, the Redis sink's key parts and
// values, the PostgreSQL sink's json: columns and the set, rename and drop
// transforms all read paths the same way, through this package.
//
// A path is its segments split at every dot; a segment is a literal object
// key (no wildcard, query or escape characters, so a key containing a dot
// cannot be addressed). Raw reads from the value's bytes without decoding
// them into maps, indexes arrays by decimal position (items.0.sku), and
// returns a number as its exact JSON text: 1e3 stays 1e3 and a 20-digit ID
// is not rounded through float64. Get, Set and Remove edit a decoded value
// and address objects only.
package jsonpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// ErrNotJSON is Raw's error for a value that is not valid JSON.
var ErrNotJSON = errors.New("value is not JSON")

// ErrMissing is the error Missing wraps: the path leads nowhere in the value.
var ErrMissing = errors.New("missing")

// Path is a parsed dot path. Make one with Parse; the zero Path addresses
// nothing (Raw and Get find nothing, Set fails, Remove does nothing).
type Path struct {
	segs []string
	// query is the path as a gjson path: each segment escaped, so only the
	// dots between segments are special.
	query string
}

// Parse parses a dot path. An empty path or an empty segment ("a..b", ".a")
// is an error, reported when the configuration is read rather than by
// failing every record.
func Parse(s string) (Path, error) {
	const want = "want a dot path such as order.id"
	if s == "" {
		return Path{}, errors.New("empty path (" + want + ")")
	}
	segs := strings.Split(s, ".")
	escaped := make([]string, len(segs))
	for i, seg := range segs {
		if seg == "" {
			return Path{}, fmt.Errorf("path %q has an empty segment (%s)", s, want)
		}
		escaped[i] = gjson.Escape(seg)
	}
	return Path{segs: segs, query: strings.Join(escaped, ".")}, nil
}

// String returns the path as it was parsed.
func (p Path) String() string { return strings.Join(p.segs, ".") }

// Segments returns a copy of the path's segments.
func (p Path) Segments() []string { return append([]string(nil), p.segs...) }

// Raw returns the JSON text at p in value, with surrounding whitespace
// trimmed; it shares value's memory. found is false when the path leads
// nowhere (Missing says why); the error is ErrNotJSON when value is not
// valid JSON, which Raw checks first, so no malformed value yields a field.
// With duplicate keys the first wins.
func (p Path) Raw(value []byte) (raw json.RawMessage, found bool, err error) {
	s := unsafe.String(unsafe.SliceData(value), len(value))
	if !gjson.Valid(s) {
		return nil, false, ErrNotJSON
	}
	if p.query == "" {
		return nil, false, nil
	}
	r := gjson.Get(s, p.query)
	if !r.Exists() {
		return nil, false, nil
	}
	// gjson's Index locates the result in value, so it need not be copied.
	if i, j := r.Index, r.Index+len(r.Raw); i > 0 && j <= len(value) && string(value[i:j]) == r.Raw {
		return json.RawMessage(value[i:j:j]), true, nil
	}
	return json.RawMessage(r.Raw), true, nil
}

// Lookup is Raw for a value the caller has already checked is valid JSON
// (with json.Valid or gjson.Valid), so that several paths read from one
// value validate it once. On a value that is not valid JSON its result is
// meaningless. raw shares value's memory.
//
// It is the PostgreSQL sink's hot path, so it returns straight from gjson.
func (p Path) Lookup(value string) (raw string, found bool) {
	if p.query == "" {
		return "", false
	}
	r := gjson.Get(value, p.query)
	return r.Raw, r.Exists()
}

// Missing says why p is not found in value, for an error message: it wraps
// ErrMissing, alone when the last object has no such key or the array is
// shorter, else with the part of the path that is not an object
// (`missing: "order" is not an object`). Call it only after Raw found
// nothing in a valid value; it walks the value again.
func (p Path) Missing(value []byte) error {
	r := gjson.ParseBytes(value)
	for i, seg := range p.segs {
		var next gjson.Result
		switch {
		case r.IsObject():
			next = r.Get(gjson.Escape(seg))
		case r.IsArray() && isIndex(seg):
			next = r.Get(seg)
		case i == 0:
			return fmt.Errorf("%w: value is not a JSON object", ErrMissing)
		default:
			return fmt.Errorf("%w: %q is not an object", ErrMissing, strings.Join(p.segs[:i], "."))
		}
		if !next.Exists() {
			return ErrMissing
		}
		r = next
	}
	return ErrMissing
}

// isIndex reports whether seg is an array position as gjson reads one.
func isIndex(seg string) bool {
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return false
		}
	}
	return seg != ""
}

// Scalar returns the text of a JSON string (unquoted), number (its exact
// JSON text) or boolean, for building keys and IDs from a field. Anything
// else is an error that reads after the field's name ("is null", "is an
// empty string", "is an object, not a string, number or boolean").
func Scalar(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", ErrMissing
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if plainString(raw) {
			s = string(raw[1 : len(raw)-1]) // the common case: one allocation
		} else if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", errors.New("is an empty string")
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'), c == 't', c == 'f':
		return string(raw), nil
	case c == 'n':
		return "", errors.New("is null")
	default:
		return "", fmt.Errorf("is %s, not a string, number or boolean", Kind(raw))
	}
}

// plainString reports whether raw is a quoted string of printable ASCII
// without escapes, whose text is raw without its quotes.
func plainString(raw json.RawMessage) bool {
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' {
		return false
	}
	for _, b := range raw[1 : n-1] {
		if b < 0x20 || b >= 0x80 || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// Kind names the kind of a JSON text with its article, for error messages:
// "a string", "a number", "a boolean", "null", "an object" or "an array".
func Kind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "a string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c == 't', c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '{':
		return "an object"
	default:
		return "an array"
	}
}
