package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/connectd/connectd/jsonpath"
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

// parsePaths parses and sorts dot paths, and rejects overlapping ones (a
// and a.b): their result would depend on the order they are applied in.
func parsePaths(ss []string) ([]jsonpath.Path, error) {
	ss = append([]string(nil), ss...)
	sort.Strings(ss)
	ps := make([]jsonpath.Path, 0, len(ss))
	for _, s := range ss {
		p, err := jsonpath.Parse(s)
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

// isPrefix reports whether pre's segments begin p's.
func isPrefix(pre, p jsonpath.Path) bool {
	a, b := pre.Segments(), p.Segments()
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
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
