package idempotency

import (
	"errors"
	"fmt"

	"github.com/connectd/connectd/jsonpath"
)

// parseField parses a JSON mode field path, so that a bad one is reported
// at config time rather than failing every record.
func parseField(field string) (jsonpath.Path, error) {
	if field == "" {
		return jsonpath.Path{}, errors.New("event ID mode json requires a field (dot path such as \"order.id\")")
	}
	p, err := jsonpath.Parse(field)
	if err != nil {
		return jsonpath.Path{}, fmt.Errorf("event ID field: %v", err)
	}
	return p, nil
}

// jsonField returns the string or number at path in value. A number is its
// exact JSON text: 1e3 stays "1e3" and a 20-digit ID is not rounded
// through float64.
func jsonField(value []byte, path jsonpath.Path) (string, error) {
	raw, found, err := path.Raw(value)
	if err != nil {
		return "", fmt.Errorf("event ID field %q: %v", path, err)
	}
	if !found {
		return "", fmt.Errorf("event ID field %q %v", path, path.Missing(value))
	}
	if c := raw[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
		return "", fmt.Errorf("event ID field %q is %s, want a string or number", path, jsonpath.Kind(raw))
	}
	id, err := jsonpath.Scalar(raw)
	if err != nil {
		return "", fmt.Errorf("event ID field %q %v", path, err)
	}
	return id, nil
}
