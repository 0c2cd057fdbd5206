package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Classified record errors, for errors.Is: both mean the record's value does
// not have the shape a transform needs, so the record belongs in the DLQ.
var (
	ErrNotJSON   = errors.New("value is not JSON")
	ErrNotObject = errors.New("value is not a JSON object")
)

// decodeJSON parses a whole value. UseNumber keeps numbers as their original
// text, so re-encoding never rounds a large integer or changes 1.0 to 1.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrNotJSON)
	}
	return v, nil
}

// decodeObject parses a value that must be a JSON object.
func decodeObject(b []byte) (map[string]any, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w (got %s)", ErrNotObject, jsonKind(v))
	}
	return obj, nil
}

// encodeJSON encodes deterministically: encoding/json sorts object keys.
// HTML escaping is off so strings such as "a<b" come out as they went in.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// path is a field path such as a.b.c; there is no escaping, so field names
// containing dots cannot be addressed.
type path []string

func parsePath(s string) (path, error) {
	p := path(strings.Split(s, "."))
	for _, seg := range p {
		if seg == "" {
			return nil, fmt.Errorf("field path %q has an empty segment", s)
		}
	}
	return p, nil
}

func (p path) String() string { return strings.Join(p, ".") }

// parsePaths parses and sorts paths, and rejects overlapping ones (a and
// a.b): their result would depend on the order they are applied in.
func parsePaths(ss []string) ([]path, error) {
	ss = append([]string(nil), ss...)
	sort.Strings(ss)
	ps := make([]path, 0, len(ss))
	for _, s := range ss {
		p, err := parsePath(s)
		if err != nil {
			return nil, err
		}
		for _, q := range ps {
			if q.String() == s || isPrefix(q, p) || isPrefix(p, q) {
				return nil, fmt.Errorf("field paths %q and %q overlap", q, s)
			}
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func isPrefix(pre, p path) bool {
	if len(pre) > len(p) {
		return false
	}
	for i := range pre {
		if pre[i] != p[i] {
			return false
		}
	}
	return true
}

// get returns the value at p and whether it exists.
func (p path) get(obj map[string]any) (any, bool) {
	for _, seg := range p[:len(p)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			return nil, false
		}
		obj = next
	}
	v, ok := obj[p[len(p)-1]]
	return v, ok
}

// set stores v at p, creating missing intermediate objects. An intermediate
// that exists but is not an object is an error rather than being replaced,
// so data is never silently thrown away.
func (p path) set(obj map[string]any, v any) error {
	for i, seg := range p[:len(p)-1] {
		next, exists := obj[seg]
		if !exists || next == nil {
			m := map[string]any{}
			obj[seg] = m
			obj = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("field %s is a %s, not an object", p[:i+1], jsonKind(next))
		}
		obj = m
	}
	obj[p[len(p)-1]] = v
	return nil
}

// remove deletes the field at p; a missing field is not an error.
func (p path) remove(obj map[string]any) {
	for _, seg := range p[:len(p)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
	delete(obj, p[len(p)-1])
}

// literalJSON converts a value decoded from YAML config into the form
// decodeJSON produces (map[string]any, []any, json.Number, ...), so literal
// values and record values mix in one tree and encode the same way. It fails
// on values JSON cannot hold.
func literalJSON(v any) (any, error) {
	b, err := json.Marshal(stringKeys(v))
	if err != nil {
		return nil, err
	}
	return decodeJSON(b)
}

// stringKeys rewrites map[any]any (which some YAML decoders produce for
// nested maps) into map[string]any, which encoding/json can encode.
func stringKeys(v any) any {
	switch t := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = stringKeys(x)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = stringKeys(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = stringKeys(x)
		}
		return s
	default:
		return v
	}
}

// deepCopy copies objects and arrays so a literal shared by every record is
// never aliased into (and then mutated through) one record's tree.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}
