package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// componentNode is what a Component keeps of its YAML: the mapping with its
// positions, and the document's anchors so aliases inside it still resolve.
type componentNode struct {
	file    string
	mapping *ast.MappingNode
	anchors map[string]ast.Node
	// err is why NewComponent could not build the mapping; Decode returns it.
	err error
}

// inlineFile names components built in Go code by NewComponent.
const inlineFile = "<inline>"

// NewComponent builds a Component in Go code (tests, the admin API) as if it
// had been written in YAML with the given type and fields, so Decode, Errorf
// and FieldErrorf behave the same. Positions refer to the file "<inline>".
// Values may be anything YAML can encode; time.Duration and Duration are
// written as duration strings.
func NewComponent(typ string, fields map[string]any) Component {
	values := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		values[k] = inlineValue(v)
	}
	values["type"] = typ
	data, err := yaml.Marshal(values)
	if err != nil {
		return Component{Type: typ, Pos: Position{File: inlineFile}, node: &componentNode{err: fmt.Errorf("config: NewComponent(%q): %w", typ, err)}}
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return Component{Type: typ, Pos: Position{File: inlineFile}, node: &componentNode{err: fmt.Errorf("config: NewComponent(%q): %w", typ, err)}}
	}
	// yaml.Marshal of a map always yields one block mapping.
	m := f.Docs[0].Body.(*ast.MappingNode)
	d := newDecoder(inlineFile, collectAnchors(m))
	return Component{Type: typ, Pos: d.pos(m), node: &componentNode{file: inlineFile, mapping: m, anchors: d.anchors}}
}

// inlineValue turns durations into the strings a YAML file would hold;
// yaml.Marshal would otherwise write nanoseconds, which Decode rejects.
func inlineValue(v any) any {
	switch t := v.(type) {
	case time.Duration:
		return t.String()
	case Duration:
		return t.String()
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = inlineValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = inlineValue(e)
		}
		return out
	}
	return v
}

// Decode strictly decodes the component's keys, except type, into v, a
// non-nil pointer (usually to a struct with yaml tags). Unknown keys, type
// mismatches and unset environment variables are all reported at once as
// Errors with file:line:col. ${VAR} expansion happens here, at Decode time.
func (c Component) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Component.Decode needs a non-nil pointer, got %T", v)
	}
	cn, _ := c.node.(*componentNode)
	if cn == nil {
		// A zero Component has no fields: nothing to decode.
		return nil
	}
	if cn.err != nil {
		return cn.err
	}
	d := newDecoder(cn.file, cn.anchors)
	target := rv.Elem()
	skip := []string{"type"}
	switch {
	case target.Kind() == reflect.Struct:
		d.decodeStruct(cn.mapping, target, c.Type, skip)
	case target.Kind() == reflect.Map:
		d.decodeMap(cn.mapping, target, c.Type, skip)
	default:
		return fmt.Errorf("config: Component.Decode needs a pointer to a struct or map, got %T", v)
	}
	return d.errs.err()
}

// Errorf reports a problem with the component as a whole, at its position.
func (c Component) Errorf(format string, args ...any) error {
	return &Error{Pos: c.Pos, Msg: fmt.Sprintf(format, args...)}
}

// FieldErrorf reports a problem with one field, at that field's key. field
// is a key of the component ("table") or a dot-separated path into nested
// mappings ("tls.ca_file"); a field that is not written falls back to the
// component's position (e.g. a required field that is missing).
func (c Component) FieldErrorf(field, format string, args ...any) error {
	return &Error{Pos: c.fieldPos(field), Msg: fmt.Sprintf(format, args...)}
}

func (c Component) fieldPos(field string) Position {
	cn, _ := c.node.(*componentNode)
	if cn == nil || cn.mapping == nil {
		return c.Pos
	}
	d := newDecoder(cn.file, cn.anchors)
	m := cn.mapping
	// Try the field as one key first: keys may contain dots
	// ("batch.max.records"), as Kafka property names do.
	for _, e := range d.entries(m) {
		if e.key == field {
			return e.keyPos
		}
	}
	parts := strings.Split(field, ".")
	pos := c.Pos
	for i, part := range parts {
		var next ast.Node
		for _, e := range d.entries(m) {
			if e.key == part {
				pos, next = e.keyPos, e.value
				break
			}
		}
		if next == nil {
			return c.Pos
		}
		if i == len(parts)-1 {
			return pos
		}
		var ok bool
		if m, ok = d.resolve(next).(*ast.MappingNode); !ok {
			return c.Pos
		}
	}
	return pos
}

// UnmarshalYAML lets goccy/go-yaml decode a Component directly (for example a
// Connector posted to the admin API). Positions are relative to that
// document; Load and Parse do not go through here.
func (c *Component) UnmarshalYAML(node ast.Node) error {
	d := newDecoder("", collectAnchors(node))
	d.decode(node, reflect.ValueOf(c).Elem(), "component")
	return d.errs.err()
}

// MarshalYAML writes the component back as its type and fields as written,
// with ${VAR} references unexpanded so secrets passed through the
// environment are not echoed.
func (c Component) MarshalYAML() (any, error) {
	cn, _ := c.node.(*componentNode)
	out := yaml.MapSlice{{Key: "type", Value: c.Type}}
	if cn == nil || cn.mapping == nil {
		return out, nil
	}
	d := newDecoder(cn.file, cn.anchors)
	for _, e := range d.entries(cn.mapping) {
		if e.key == "type" {
			continue
		}
		out = append(out, yaml.MapItem{Key: e.key, Value: d.generic(e.value, e.key, false)})
	}
	return out, d.errs.err()
}
