package idempotency

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// splitPath validates and splits a JSON mode field path. Empty segments
// ("a..b", ".a") are rejected at config time rather than failing every record.
func splitPath(field string) ([]string, error) {
	if field == "" {
		return nil, errors.New("event ID mode json requires a field (dot path such as \"order.id\")")
	}
	path := strings.Split(field, ".")
	for _, seg := range path {
		if seg == "" {
			return nil, fmt.Errorf("event ID field %q has an empty path segment", field)
		}
	}
	return path, nil
}

// jsonField returns the string or number at path in value. Each level is
// decoded into raw messages, so only the objects on the path are unpacked,
// and a number's raw text is its exact JSON spelling: 1e3 stays "1e3" and a
// 20-digit ID is not rounded through float64.
func jsonField(value []byte, path []string) (string, error) {
	field := strings.Join(path, ".")
	raw := json.RawMessage(value)
	for i, seg := range path {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			switch {
			case i > 0:
				return "", fmt.Errorf("event ID field %q missing: %q is not an object", field, strings.Join(path[:i], "."))
			case json.Valid(value):
				return "", fmt.Errorf("event ID field %q missing: value is not a JSON object", field)
			default:
				return "", fmt.Errorf("event ID field %q: value is not JSON", field)
			}
		}
		next, ok := obj[seg]
		if !ok {
			return "", fmt.Errorf("event ID field %q missing", field)
		}
		raw = next
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("event ID field %q missing", field)
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("event ID field %q: %v", field, err)
		}
		if s == "" {
			return "", fmt.Errorf("event ID field %q empty", field)
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return json.Number(raw).String(), nil
	default:
		return "", fmt.Errorf("event ID field %q is %s, want a string or number", field, jsonKind(c))
	}
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	default:
		return "a boolean"
	}
}
