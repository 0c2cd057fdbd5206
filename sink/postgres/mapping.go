package postgres

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tidwall/gjson"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/jsonpath"
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
	arg  string        // header name
	path jsonpath.Path // JSON path
	typ  string        // SQL type: text, jsonb, bigint, numeric, boolean, timestamptz
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
		p, err := jsonpath.Parse(path)
		if err != nil {
			return c, fmt.Errorf("json: %v", err)
		}
		c.path = p
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

// row is one record's values, in column order; an invalid Text is NULL.
// Values, not pointers: a row of five columns is one allocation.
type row []pgtype.Text

// mapRecord returns r's column values, or why r cannot be written.
//
// JSON fields are read straight from the value's bytes (jsonpath's Lookup),
// after one validation of the whole value for all of them: decoding it into
// maps was most of the sink's CPU time (see BenchmarkWrite), and a path
// lookup needs no tree.
func (m *mapper) mapRecord(r *connector.Record) (row, error) {
	out := make(row, len(m.cols))
	// value aliases r.Value without copying it: the JSON fields and the
	// value column then point into the record's own bytes, which nothing
	// modifies once the pipeline has produced the record (records are
	// built fresh by the source and by transforms, never reused).
	value := unsafe.String(unsafe.SliceData(r.Value), len(r.Value))
	// jsonState: 0 not checked yet, 1 the value is JSON, -1 it is not.
	jsonState := 0
	isJSON := func() bool {
		if jsonState == 0 {
			jsonState = -1
			if r.Value != nil && gjson.Valid(value) {
				jsonState = 1
			}
		}
		return jsonState == 1
	}
	for i, c := range m.cols {
		var v pgtype.Text
		var err error
		switch c.src {
		case srcEventID:
			v, err = textString(c, r.EventID)
		case srcKey:
			if r.Key != nil {
				v, err = text(c, r.Key)
			}
		case srcValue:
			if r.Value != nil {
				if !isJSON() {
					err = fmt.Errorf("column %s: value is not JSON", c.name)
					break
				}
				v, err = noNUL(c, value)
			}
		case srcValueText:
			if r.Value != nil {
				v, err = text(c, r.Value)
			}
		case srcTimestamp:
			if !r.Timestamp.IsZero() {
				v = valid(r.Timestamp.UTC().Format(time.RFC3339Nano))
			}
		case srcTopic:
			v, err = textString(c, r.Origin.Topic)
		case srcPartition:
			v = valid(strconv.FormatInt(int64(r.Origin.Partition), 10))
		case srcOffset:
			v = valid(strconv.FormatInt(r.Origin.Offset, 10))
		case srcHeader:
			if h, ok := r.Header(c.arg); ok {
				v, err = text(c, h)
			}
		case srcJSON:
			if !isJSON() {
				what := "value is not JSON"
				if r.Value == nil {
					what = "value is empty, not JSON"
				}
				err = fmt.Errorf("column %s: json:%s: %s", c.name, c.path, what)
				break
			}
			raw, found := c.path.Lookup(value)
			v, err = jsonField(c, raw, found)
		}
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// valid is s as a non-NULL value.
func valid(s string) pgtype.Text { return pgtype.Text{String: s, Valid: true} }

// text checks b can be stored as PostgreSQL text: valid UTF-8 without NUL.
func text(c column, b []byte) (pgtype.Text, error) {
	return textString(c, string(b))
}

// textString is text for a string.
func textString(c column, s string) (pgtype.Text, error) {
	if !utf8.ValidString(s) {
		return pgtype.Text{}, fmt.Errorf("column %s: not valid UTF-8 text", c.name)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return pgtype.Text{}, fmt.Errorf("column %s: text contains a NUL byte, which PostgreSQL text cannot hold", c.name)
	}
	return valid(s), nil
}

// noNUL checks valid JSON s has no \u0000, which jsonb cannot hold.
func noNUL(c column, s string) (pgtype.Text, error) {
	if strings.Contains(s, `\u0000`) {
		return pgtype.Text{}, fmt.Errorf(`column %s: JSON contains \u0000, which jsonb cannot hold`, c.name)
	}
	return valid(s), nil
}

// jsonField converts raw, the JSON text found at c's path. A missing path
// (a segment absent, or a scalar on the way) and JSON null are NULL; a value
// that does not fit the column's type is an error. Segments index objects by
// key and arrays by position (json:items.0.sku). With duplicate keys the
// first wins.
func jsonField(c column, raw string, found bool) (pgtype.Text, error) {
	if !found || raw == "null" {
		return pgtype.Text{}, nil
	}
	bad := func(want string) error {
		return fmt.Errorf("column %s: json:%s is %s, want %s", c.name, c.path, abbreviate([]byte(raw)), want)
	}
	switch c.typ {
	case "jsonb":
		return noNUL(c, raw)
	case "text":
		if raw[0] == '"' {
			return textString(c, jsonString(raw))
		}
		return textString(c, raw)
	case "bigint":
		if _, err := strconv.ParseInt(raw, 10, 64); err != nil {
			return pgtype.Text{}, bad("an integer")
		}
		return valid(raw), nil
	case "numeric":
		if c := raw[0]; c != '-' && (c < '0' || c > '9') {
			return pgtype.Text{}, bad("a number")
		}
		return valid(raw), nil
	case "boolean":
		if raw != "true" && raw != "false" {
			return pgtype.Text{}, bad("true or false")
		}
		return valid(raw), nil
	}
	return pgtype.Text{}, fmt.Errorf("column %s: unsupported type %s", c.name, c.typ)
}

// jsonString is the text of the JSON string raw. Without escapes that is
// raw unquoted, sharing its memory; with them gjson decodes it, leaving
// invalid UTF-8 as it is so that textString rejects it.
func jsonString(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	return gjson.Parse(raw).Str
}

// abbreviate shortens a JSON value for an error message.
func abbreviate(raw []byte) string {
	const n = 40
	if len(raw) > n {
		return string(raw[:n]) + "..."
	}
	return string(raw)
}
