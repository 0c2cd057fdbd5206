package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/connectd/connectd/connector"
)

// source is where a column's value comes from.
type source int

const (
	srcEventID source = iota + 1
	srcKey
	srcValue     // the whole value as jsonb
	srcValueText // the whole value as text
	srcTimestamp
	srcTopic
	srcPartition
	srcOffset
	srcHeader // header:NAME
	srcJSON   // json:dot.path[::type]
)

// column is one mapped column: its name, source and SQL type.
type column struct {
	name string
	src  source
	arg  string   // header name
	path []string // JSON path
	typ  string   // SQL type: text, jsonb, bigint, numeric, boolean, timestamptz
}

// jsonTypes are the types a json: source may be cast to.
var jsonTypes = []string{"jsonb", "text", "bigint", "numeric", "boolean"}

// parseColumn parses a column source spec.
func parseColumn(name, spec string) (column, error) {
	c := column{name: name}
	switch {
	case spec == "event_id":
		c.src, c.typ = srcEventID, "text"
	case spec == "key":
		c.src, c.typ = srcKey, "text"
	case spec == "value":
		c.src, c.typ = srcValue, "jsonb"
	case spec == "value_text":
		c.src, c.typ = srcValueText, "text"
	case spec == "timestamp":
		c.src, c.typ = srcTimestamp, "timestamptz"
	case spec == "topic":
		c.src, c.typ = srcTopic, "text"
	case spec == "partition":
		c.src, c.typ = srcPartition, "bigint"
	case spec == "offset":
		c.src, c.typ = srcOffset, "bigint"
	case strings.HasPrefix(spec, "header:"):
		c.src, c.typ, c.arg = srcHeader, "text", strings.TrimPrefix(spec, "header:")
		if c.arg == "" {
			return c, errors.New("header: needs a header name (header:NAME)")
		}
	case strings.HasPrefix(spec, "json:"):
		path, typ, hasType := strings.Cut(strings.TrimPrefix(spec, "json:"), "::")
		c.src, c.typ = srcJSON, "jsonb"
		if hasType {
			if !containsString(jsonTypes, typ) {
				return c, fmt.Errorf("json: type %q is not one of %s", typ, strings.Join(jsonTypes, ", "))
			}
			c.typ = typ
		}
		c.path = strings.Split(path, ".")
		for _, seg := range c.path {
			if seg == "" {
				return c, fmt.Errorf("json: path %q has an empty segment (want json:a.b.c)", path)
			}
		}
	default:
		return c, fmt.Errorf("unknown source %q (known: event_id, key, value, value_text, timestamp, topic, partition, offset, header:NAME, json:dot.path[::type])", spec)
	}
	return c, nil
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// mapper turns records into column values. Every value is carried as text
// (nil for NULL) and cast to the column's type in SQL; the mapper checks
// each value can be cast, so a record that cannot be written fails here,
// before the transaction, as a record error naming it, and never as a
// statement error that fails the whole batch.
type mapper struct {
	cols []column
}

// row is one record's values, in column order.
type row []*string

// mapRecord returns r's column values, or why r cannot be written.
func (m *mapper) mapRecord(r *connector.Record) (row, error) {
	out := make(row, len(m.cols))
	var top map[string]json.RawMessage // the value's top-level object, parsed once
	var topErr error
	topParsed := false
	for _, c := range m.cols {
		if c.src == srcJSON { // parse first: it validates the value for a value column too
			top, topErr = parseObject(r.Value)
			topParsed = true
			break
		}
	}
	for i, c := range m.cols {
		var v *string
		var err error
		switch c.src {
		case srcEventID:
			v, err = text(c, []byte(r.EventID))
		case srcKey:
			if r.Key != nil {
				v, err = text(c, r.Key)
			}
		case srcValue:
			switch {
			case r.Value == nil:
			case topParsed && topErr == nil && top != nil:
				v, err = noNUL(c, r.Value) // parsed as an object already: valid JSON
			default:
				v, err = jsonText(c, r.Value)
			}
		case srcValueText:
			if r.Value != nil {
				v, err = text(c, r.Value)
			}
		case srcTimestamp:
			if !r.Timestamp.IsZero() {
				v = ptr(r.Timestamp.UTC().Format(time.RFC3339Nano))
			}
		case srcTopic:
			v, err = text(c, []byte(r.Origin.Topic))
		case srcPartition:
			v = ptr(strconv.FormatInt(int64(r.Origin.Partition), 10))
		case srcOffset:
			v = ptr(strconv.FormatInt(r.Origin.Offset, 10))
		case srcHeader:
			if h, ok := r.Header(c.arg); ok {
				v, err = text(c, h)
			}
		case srcJSON:
			if !topParsed {
				top, topErr = parseObject(r.Value)
				topParsed = true
			}
			if topErr != nil {
				err = fmt.Errorf("column %s: json:%s: %v", c.name, strings.Join(c.path, "."), topErr)
				break
			}
			v, err = jsonField(c, top)
		}
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func ptr(s string) *string { return &s }

// text checks b can be stored as PostgreSQL text: valid UTF-8 without NUL.
func text(c column, b []byte) (*string, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("column %s: not valid UTF-8 text", c.name)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("column %s: text contains a NUL byte, which PostgreSQL text cannot hold", c.name)
	}
	return ptr(string(b)), nil
}

// jsonText checks b is JSON that jsonb accepts.
func jsonText(c column, b []byte) (*string, error) {
	if !json.Valid(b) {
		return nil, fmt.Errorf("column %s: value is not JSON", c.name)
	}
	return noNUL(c, b)
}

// noNUL checks valid JSON b has no \u0000, which jsonb cannot hold.
func noNUL(c column, b []byte) (*string, error) {
	if bytes.Contains(b, []byte(`\u0000`)) {
		return nil, fmt.Errorf(`column %s: JSON contains \u0000, which jsonb cannot hold`, c.name)
	}
	return ptr(string(b)), nil
}

// parseObject parses a value's top level. A value that is JSON but not an
// object has no fields (every path is NULL); a value that is not JSON at all
// is an error.
func parseObject(value []byte) (map[string]json.RawMessage, error) {
	if value == nil {
		return nil, errors.New("value is empty, not JSON")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(value, &obj); err != nil {
		if json.Valid(value) {
			return nil, nil
		}
		return nil, errors.New("value is not JSON")
	}
	return obj, nil
}

// jsonField extracts c.path from the parsed top level. A missing path, a
// non-object on the way, and JSON null are NULL; a value that does not fit
// the column's type is an error.
func jsonField(c column, top map[string]json.RawMessage) (*string, error) {
	obj := top
	var raw json.RawMessage
	for i, seg := range c.path {
		next, ok := obj[seg]
		if !ok {
			return nil, nil
		}
		if i == len(c.path)-1 {
			raw = next
			break
		}
		obj = nil
		if err := json.Unmarshal(next, &obj); err != nil {
			return nil, nil // not an object: the path does not exist
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	field := "json:" + strings.Join(c.path, ".")
	bad := func(want string) error {
		return fmt.Errorf("column %s: %s is %s, want %s", c.name, field, abbreviate(raw), want)
	}
	switch c.typ {
	case "jsonb":
		return jsonText(c, raw)
	case "text":
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, bad("a string")
			}
			return text(c, []byte(s))
		}
		return text(c, raw)
	case "bigint":
		if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
			return nil, bad("an integer")
		}
		return ptr(string(raw)), nil
	case "numeric":
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return nil, bad("a number")
		}
		return ptr(string(raw)), nil
	case "boolean":
		if s := string(raw); s != "true" && s != "false" {
			return nil, bad("true or false")
		}
		return ptr(string(raw)), nil
	}
	return nil, fmt.Errorf("column %s: unsupported type %s", c.name, c.typ)
}

// abbreviate shortens a JSON value for an error message.
func abbreviate(raw []byte) string {
	const n = 40
	if len(raw) > n {
		return string(raw[:n]) + "..."
	}
	return string(raw)
}
