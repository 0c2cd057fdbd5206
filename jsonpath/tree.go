package jsonpath

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Get, Set and Remove work on a value decoded into maps (encoding/json
// with UseNumber), for transforms that edit the value and encode it again.
// They address objects only: an array on the way is not entered, as it is
// by Raw.

// Get returns the value at p in obj and whether it exists.
func (p Path) Get(obj map[string]any) (any, bool) {
	if len(p.segs) == 0 {
		return nil, false
	}
	for _, seg := range p.segs[:len(p.segs)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			return nil, false
		}
		obj = next
	}
	v, ok := obj[p.segs[len(p.segs)-1]]
	return v, ok
}

// Set stores v at p in obj, creating missing (or null) intermediate
// objects. An intermediate that exists but is not an object is an error
// rather than being replaced, so data is never silently thrown away.
func (p Path) Set(obj map[string]any, v any) error {
	if len(p.segs) == 0 {
		return fmt.Errorf("empty path")
	}
	for i, seg := range p.segs[:len(p.segs)-1] {
		next, exists := obj[seg]
		if !exists || next == nil {
			m := map[string]any{}
			obj[seg] = m
			obj = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("field %s is %s, not an object", strings.Join(p.segs[:i+1], "."), kindOf(next))
		}
		obj = m
	}
	obj[p.segs[len(p.segs)-1]] = v
	return nil
}

// Remove deletes the field at p from obj; a missing field is not an error.
func (p Path) Remove(obj map[string]any) {
	if len(p.segs) == 0 {
		return
	}
	for _, seg := range p.segs[:len(p.segs)-1] {
		next, ok := obj[seg].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
	delete(obj, p.segs[len(p.segs)-1])
}

// kindOf is Kind for a decoded value.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
