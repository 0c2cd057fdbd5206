package files

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/jsonpath"
)

// A row is staged and written to JSON Lines files as one JSON object: the
// fixed columns first, then the configured ones by name. Timestamps are
// RFC 3339 in UTC with exactly six fractional digits (Parquet keeps
// microseconds), doubles always carry a '.' or an exponent, so a reader
// that infers types (DuckDB's read_json_auto) sees the same type in every
// row.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// hiveDefault is the directory value of a row without the partition
// field, as Hive names it.
const hiveDefault = "__HIVE_DEFAULT_PARTITION__"

// mapped is one record as the sink writes it: the directory it goes to
// (relative to the root, "" without partitioning) and its JSON line.
type mapped struct {
	dir  string
	line []byte
}

// mapRecord maps a data record to its row. An error means the sink cannot
// write the record (it is dead-lettered with errors.tolerance all, and
// fails the batch otherwise); it reads after the record's origin.
func (c *Config) mapRecord(r *connector.Record) (mapped, error) {
	if !utf8.ValidString(r.EventID) {
		return mapped{}, errors.New("event ID is not valid UTF-8")
	}
	var value []byte
	needJSON := c.timeAt != nil || c.field != nil
	for _, col := range c.cols {
		needJSON = needJSON || col.source == "json"
	}
	if needJSON {
		if !json.Valid(r.Value) {
			return mapped{}, jsonpath.ErrNotJSON
		}
		value = r.Value
	}
	dir, err := c.dir(r, value)
	if err != nil {
		return mapped{}, err
	}
	b := make([]byte, 0, 128+len(r.Value))
	b = append(b, `{"event_id":`...)
	b = appendString(b, r.EventID)
	b = append(b, `,"topic":`...)
	b = appendString(b, strings.ToValidUTF8(r.Origin.Topic, "\uFFFD"))
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Origin.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Origin.Offset, 10)
	b = append(b, `,"timestamp":`...)
	b = appendTime(b, r.Timestamp)
	for _, col := range c.cols {
		b = append(b, ',')
		b = appendString(b, col.name)
		b = append(b, ':')
		if b, err = col.append(b, r, value); err != nil {
			return mapped{}, fmt.Errorf("column %s: %w", col.name, err)
		}
	}
	b = append(b, '}', '\n')
	return mapped{dir: dir, line: b}, nil
}

// dir is the record's partition directory: the event time formatted with
// the layout, then the field's directory.
func (c *Config) dir(r *connector.Record, value []byte) (string, error) {
	var parts []string
	if c.PartitionBy.Time != TimeNone {
		t := r.Timestamp
		if c.timeAt != nil {
			raw, found, err := c.timeAt.Raw(value)
			if err != nil {
				return "", err
			}
			if !found || string(raw) == "null" {
				return "", fmt.Errorf("partition_by.time: %s is missing", c.timeAt)
			}
			if t, err = parseTime(raw); err != nil {
				return "", fmt.Errorf("partition_by.time: %s %w", c.timeAt, err)
			}
		}
		parts = append(parts, t.UTC().Format(c.PartitionBy.Layout))
	}
	if c.field != nil {
		v := hiveDefault
		raw, found, err := c.field.Raw(value)
		if err != nil {
			return "", err
		}
		if found && string(raw) != "null" {
			s, err := jsonpath.Scalar(raw)
			if err != nil {
				return "", fmt.Errorf("partition_by.field: %s %w", c.field, err)
			}
			if s == "" {
				return "", fmt.Errorf("partition_by.field: %s is an empty string", c.field)
			}
			if !utf8.ValidString(s) {
				return "", fmt.Errorf("partition_by.field: %s is not valid UTF-8", c.field)
			}
			v = hiveEscape(s)
		}
		parts = append(parts, c.dirKey+"="+v)
	}
	return strings.Join(parts, "/"), nil
}

// hiveEscape escapes a partition value as Hive does (FileUtils.escapePathName):
// control characters and "#%'*/:=?\^{[]" and DEL as %XX.
func hiveEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\^{[]", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// append appends the column's JSON value for r (null when absent).
func (col column) append(b []byte, r *connector.Record, value []byte) ([]byte, error) {
	var text []byte
	switch col.source {
	case "key":
		text = r.Key
	case "value":
		text = r.Value
	case "header":
		v, ok := r.Header(col.header)
		if !ok {
			return append(b, "null"...), nil
		}
		text = v
	case "json":
		raw, found, err := col.path.Raw(value)
		if err != nil {
			return nil, err
		}
		if !found || string(raw) == "null" {
			return append(b, "null"...), nil
		}
		return col.appendJSON(b, raw)
	}
	if text == nil {
		return append(b, "null"...), nil
	}
	if !utf8.Valid(text) {
		return nil, errors.New("is not valid UTF-8 text")
	}
	return appendString(b, string(text)), nil
}

// appendJSON converts a JSON field to the column's type.
func (col column) appendJSON(b []byte, raw json.RawMessage) ([]byte, error) {
	switch col.typ {
	case TypeString:
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
			return appendString(b, s), nil
		}
		return appendString(b, string(raw)), nil // a number, bool, object or array as its JSON text
	case TypeInt64:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is %s, not an integer in the int64 range", col.path, short(raw))
		}
		return strconv.AppendInt(b, n, 10), nil
	case TypeDouble:
		if c := raw[0]; c != '-' && (c < '0' || c > '9') {
			return nil, fmt.Errorf("%s is %s, not a number", col.path, short(raw))
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s is %s, out of the double range", col.path, short(raw))
		}
		return appendDouble(b, f), nil
	case TypeBool:
		switch string(raw) {
		case "true", "false":
			return append(b, raw...), nil
		}
		return nil, fmt.Errorf("%s is %s, not true or false", col.path, short(raw))
	case TypeTimestamp:
		t, err := parseTime(raw)
		if err != nil {
			return nil, fmt.Errorf("%s %w", col.path, err)
		}
		return appendTime(b, t), nil
	}
	return nil, fmt.Errorf("unknown type %q", col.typ)
}

// parseTime reads an event time: an RFC 3339 string, or an integer number
// of milliseconds since the epoch.
func parseTime(raw json.RawMessage) (time.Time, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("is %s, not an RFC 3339 time", short(raw))
		}
		return t, nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < -62135596800000 || ms > 253402300799999 {
		return time.Time{}, fmt.Errorf("is %s, not an RFC 3339 string or milliseconds since the epoch in years 1-9999", short(raw))
	}
	return time.UnixMilli(ms), nil
}

// short quotes a JSON value for an error, cut to 40 bytes.
func short(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().Truncate(time.Microsecond).AppendFormat(b, timeLayout)
	return append(b, '"')
}

// appendDouble writes f so that it reads back as a double, never as an
// integer: 3 becomes 3.0.
func appendDouble(b []byte, f float64) []byte {
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	if !strings.ContainsAny(string(b[start:]), ".eE") {
		b = append(b, '.', '0')
	}
	return b
}

// appendString appends s, valid UTF-8, as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// deadLetterLine renders a dead letter: its identity and origin, the stage
// and error (from the pipeline's headers, or the sink's own refusal), all
// headers, and the key and value as text (or base64 when not UTF-8).
func deadLetterLine(r *connector.Record, sinkErr error) []byte {
	type header struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	line := struct {
		EventID     string   `json:"event_id"`
		Topic       string   `json:"topic"`
		Partition   int32    `json:"partition"`
		Offset      int64    `json:"offset"`
		Timestamp   string   `json:"timestamp"`
		Stage       string   `json:"stage"`
		Message     string   `json:"message"`
		Key         *string  `json:"key"`
		KeyBase64   string   `json:"key_base64,omitempty"`
		Value       *string  `json:"value"`
		ValueBase64 string   `json:"value_base64,omitempty"`
		Headers     []header `json:"headers"`
	}{
		EventID: strings.ToValidUTF8(r.EventID, "\uFFFD"), Topic: r.Origin.Topic, Partition: r.Origin.Partition,
		Offset: r.Origin.Offset, Timestamp: r.Timestamp.UTC().Truncate(time.Microsecond).Format(timeLayout),
		Headers: []header{},
	}
	if sinkErr != nil {
		line.Stage = "sink"
		line.Message = (&connector.RecordError{Origin: r.Origin, Stage: "sink", Err: sinkErr}).Error()
	} else {
		if v, ok := r.Header(connector.HeaderDLQStage); ok {
			line.Stage = string(v)
		}
		if v, ok := r.Header(connector.HeaderDLQMessage); ok {
			line.Message = string(v)
		}
	}
	text := func(b []byte, s **string, b64 *string) {
		switch {
		case b == nil:
		case utf8.Valid(b):
			v := string(b)
			*s = &v
		default:
			*b64 = base64.StdEncoding.EncodeToString(b)
		}
	}
	text(r.Key, &line.Key, &line.KeyBase64)
	text(r.Value, &line.Value, &line.ValueBase64)
	for _, h := range r.Headers {
		line.Headers = append(line.Headers, header{strings.ToValidUTF8(h.Key, "\uFFFD"), strings.ToValidUTF8(string(h.Value), "\uFFFD")})
	}
	b, _ := json.Marshal(line) // strings and numbers only: cannot fail
	return append(b, '\n')
}
