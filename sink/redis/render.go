package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/jsonpath"
)

// placeholder kinds of a key template.
type placeholder int

const (
	phLiteral placeholder = iota
	phEventID
	phKey
	phTopic
	phPartition
	phOffset
	phJSON
)

var placeholders = map[string]placeholder{
	"event_id": phEventID, "key": phKey, "topic": phTopic,
	"partition": phPartition, "offset": phOffset,
}

// segment is a literal or a placeholder of a key template.
type segment struct {
	kind placeholder
	lit  string        // phLiteral
	path jsonpath.Path // phJSON
	what string        // phJSON: "key: {json:a.b}", naming it in errors
}

// keyTemplate is a parsed `key`.
type keyTemplate []segment

// parseKeyTemplate parses placeholders in braces; {{ and }} are literal
// braces.
func parseKeyTemplate(s string) (keyTemplate, error) {
	var t keyTemplate
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, segment{kind: phLiteral, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("%q: unmatched } at byte %d (write }} for a literal brace)", s, i)
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed { at byte %d (write {{ for a literal brace)", s, i)
			}
			name := s[i+1 : i+end]
			seg, err := parsePlaceholder(name)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", s, err)
			}
			flush()
			t = append(t, seg)
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

func parsePlaceholder(name string) (segment, error) {
	if path, ok := strings.CutPrefix(name, "json:"); ok {
		p, err := jsonpath.Parse(path)
		if err != nil {
			return segment{}, fmt.Errorf("{%s}: %v", name, err)
		}
		return segment{kind: phJSON, path: p, what: "key: {" + name + "}"}, nil
	}
	kind, ok := placeholders[name]
	if !ok {
		return segment{}, fmt.Errorf("unknown placeholder {%s} (want event_id, key, topic, partition, offset or json:dot.path)", name)
	}
	return segment{kind: kind}, nil
}

// render returns the key of r (without the key prefix). It fails if a
// placeholder has no value for r or the key comes out empty.
func (t keyTemplate) render(r *connector.Record) (string, error) {
	if len(t) == 1 && t[0].kind == phEventID {
		// The default template: no builder needed.
		if r.EventID == "" {
			return "", errors.New("key: the record has no event ID")
		}
		return r.EventID, nil
	}
	var b strings.Builder
	for _, s := range t {
		switch s.kind {
		case phLiteral:
			b.WriteString(s.lit)
		case phEventID:
			if r.EventID == "" {
				return "", errors.New("key: the record has no event ID")
			}
			b.WriteString(r.EventID)
		case phKey:
			if len(r.Key) == 0 {
				return "", errors.New("key: {key}: the record has no key")
			}
			b.Write(r.Key)
		case phTopic:
			b.WriteString(r.Origin.Topic)
		case phPartition:
			b.WriteString(strconv.Itoa(int(r.Origin.Partition)))
		case phOffset:
			b.WriteString(strconv.FormatInt(r.Origin.Offset, 10))
		case phJSON:
			raw, err := jsonAt(r.Value, s.path, s.what)
			if err != nil {
				return "", err
			}
			v, err := jsonpath.Scalar(raw)
			if err != nil {
				return "", fmt.Errorf("%s %v", s.what, err)
			}
			b.WriteString(v)
		}
	}
	if b.Len() == 0 {
		return "", errors.New("key: the template renders an empty key")
	}
	return b.String(), nil
}

// value mapping kinds.
type valueKind int

const (
	valueWhole valueKind = iota
	valueJSON
	valueFields
)

// valueMapping is a parsed `value`.
type valueMapping struct {
	kind valueKind
	path jsonpath.Path // valueJSON
	what string        // valueJSON: "value: json:a.b", naming it in errors
}

func parseValueMapping(s string) (valueMapping, error) {
	switch {
	case s == ValueWhole:
		return valueMapping{kind: valueWhole}, nil
	case s == ValueFields:
		return valueMapping{kind: valueFields}, nil
	case strings.HasPrefix(s, ValueJSONPrefix):
		p, err := jsonpath.Parse(strings.TrimPrefix(s, ValueJSONPrefix))
		if err != nil {
			return valueMapping{}, fmt.Errorf("%q: %v", s, err)
		}
		return valueMapping{kind: valueJSON, path: p, what: "value: " + s}, nil
	}
	return valueMapping{}, fmt.Errorf("%q is not %s, %s or %sdot.path", s, ValueWhole, ValueFields, ValueJSONPrefix)
}

// single returns the one value stored for r (valueWhole, valueJSON).
func (m valueMapping) single(r *connector.Record) ([]byte, error) {
	if m.kind == valueWhole {
		return r.Value, nil
	}
	raw, err := jsonAt(r.Value, m.path, m.what)
	if err != nil {
		return nil, err
	}
	return leafBytes(raw)
}

// appendFields appends r's field/value pairs to dst: "value" and the
// single value, or each top-level JSON field in document order.
func (m valueMapping) appendFields(dst []any, r *connector.Record) ([]any, int, error) {
	if m.kind != valueFields {
		v, err := m.single(r)
		if err != nil {
			return dst, 0, err
		}
		return append(dst, "value", v), 2, nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.Value))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return dst, 0, errors.New("value: fields: the value is not a JSON object")
	}
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return dst, 0, fmt.Errorf("value: fields: %v", err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return dst, 0, fmt.Errorf("value: fields: %v", err)
		}
		v, err := leafBytes(raw)
		if err != nil {
			return dst, 0, fmt.Errorf("value: fields: %s: %v", name, err)
		}
		dst = append(dst, name, v)
		n += 2
		if n > 2*maxFields {
			return dst, 0, fmt.Errorf("value: fields: more than %d fields", maxFields)
		}
	}
	if _, err := dec.Token(); err != nil {
		return dst, 0, fmt.Errorf("value: fields: %v", err)
	}
	if n == 0 {
		return dst, 0, errors.New("value: fields: the JSON object has no fields")
	}
	return dst, n, nil
}

// jsonAt returns the raw JSON at path in value; an error names the field
// as what ("key: {json:user.id}").
func jsonAt(value []byte, path jsonpath.Path, what string) (json.RawMessage, error) {
	raw, found, err := path.Raw(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	if !found {
		return nil, fmt.Errorf("%s %v", what, path.Missing(value))
	}
	return raw, nil
}

// leafBytes is how a JSON value is stored: a string unquoted, anything
// else as its JSON text.
func leafBytes(raw json.RawMessage) ([]byte, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	return raw, nil
}
