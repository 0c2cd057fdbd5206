package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// decoder turns a goccy/go-yaml AST into Go values by reflection. It exists,
// instead of yaml.NodeToValue with DisallowUnknownField, because that stops
// at the first problem: this one keeps going and collects every unknown key,
// type mismatch and missing environment variable with its position.
type decoder struct {
	file    string
	anchors map[string]ast.Node
	errs    Errors
	// spans records, per path ("connectors[0].commit.interval"), where a key
	// with a non-null value was written, so defaults apply only to keys that
	// are absent and validation can point at the offending value.
	spans map[string]span
	// failed marks paths whose value could not be decoded, so validation does
	// not report a second, derived problem for them.
	failed map[string]bool
	depth  int
}

// span is where a key and its value are in the file.
type span struct{ Key, Value Position }

// maxDepth bounds nesting, which also stops a self-referencing alias.
const maxDepth = 200

func newDecoder(file string, anchors map[string]ast.Node) *decoder {
	return &decoder{file: file, anchors: anchors, spans: map[string]span{}, failed: map[string]bool{}}
}

// collectAnchors indexes every &anchor in a document so *alias nodes can be
// resolved wherever they are decoded, including later in Component.Decode.
func collectAnchors(root ast.Node) map[string]ast.Node {
	anchors := map[string]ast.Node{}
	if root != nil {
		ast.Walk(anchorVisitor(anchors), root)
	}
	return anchors
}

type anchorVisitor map[string]ast.Node

func (a anchorVisitor) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// pos is a node's position. A mapping's own token is the ':' after its first
// key, so a mapping is placed at its first key, where a reader sees it start.
func (d *decoder) pos(n ast.Node) Position {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
		return d.pos(m.Values[0].Key)
	}
	if n == nil || n.GetToken() == nil {
		return Position{File: d.file}
	}
	p := n.GetToken().Position
	return Position{File: d.file, Line: p.Line, Column: p.Column}
}

// resolve strips tags and anchors and follows aliases to the node that holds
// the value.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for range maxDepth {
		switch t := n.(type) {
		case *ast.TagNode:
			n = t.Value
		case *ast.AnchorNode:
			n = t.Value
		case *ast.AliasNode:
			name := t.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.errs.add(d.pos(t), "unknown alias *%s", name)
				return nil
			}
			n = target
		default:
			return n
		}
	}
	return nil
}

// entry is one key/value of a mapping after merge keys are applied.
type entry struct {
	key    string
	keyPos Position
	value  ast.Node
}

// entries lists a mapping's keys in file order. "<<: *base" merge keys are
// expanded (YAML 1.1, widely used to share settings between connectors);
// keys written explicitly win over merged ones.
func (d *decoder) entries(m *ast.MappingNode) []entry {
	var own, merged []entry
	for _, mv := range m.Values {
		if mv.Key.IsMergeKey() {
			merged = append(merged, d.mergeEntries(mv.Value)...)
			continue
		}
		key, ok := scalarText(d.resolve(mv.Key))
		if !ok {
			d.errs.add(d.pos(mv.Key), "mapping keys must be scalars")
			continue
		}
		own = append(own, entry{key: key, keyPos: d.pos(mv.Key), value: mv.Value})
	}
	out := own
	for _, e := range merged {
		if !slices.ContainsFunc(out, func(o entry) bool { return o.key == e.key }) {
			out = append(out, e)
		}
	}
	return out
}

func (d *decoder) mergeEntries(n ast.Node) []entry {
	switch t := d.resolve(n).(type) {
	case *ast.MappingNode:
		return d.entries(t)
	case *ast.SequenceNode:
		var out []entry
		for _, item := range t.Values {
			out = append(out, d.mergeEntries(item)...)
		}
		return out
	default:
		d.errs.add(d.pos(n), "<< merge key needs a mapping or a list of mappings")
		return nil
	}
}

// scalarText is a scalar's text as written (for non-strings) or its string
// value, before environment expansion.
func scalarText(n ast.Node) (string, bool) {
	switch t := n.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.LiteralNode:
		return t.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return t.GetToken().Value, true
	}
	return "", false
}

// isString reports whether n is a YAML string (the only scalars that are
// environment-expanded; a number or bool cannot contain "${").
func isString(n ast.Node) bool {
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		return true
	}
	return false
}

// kindName names a node's kind for "expected X, got Y" messages.
func kindName(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// label renders a path for messages; the root of a file has no path.
func label(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

var (
	componentType       = reflect.TypeFor[Component]()
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decode stores node n into v, reporting problems under path. A null node
// leaves v as it is, so defaults can fill it later.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		d.fail(n, path, "nesting deeper than %d levels", maxDepth)
		return
	}
	n = d.resolve(n)
	if n == nil {
		d.failed[path] = true
		return
	}
	if _, null := n.(*ast.NullNode); null {
		return
	}
	t := v.Type()
	switch {
	case t == componentType:
		d.decodeComponent(n, v, path)
		return
	case t == durationType:
		d.decodeDuration(n, v, path)
		return
	case t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(textUnmarshalerType):
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.fail(n, path, "%s: %s", path, d.redact(n, s, err.Error()))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			d.fail(n, path, "%s: expected a mapping, got %s", label(path), kindName(n))
			return
		}
		d.decodeStruct(m, v, path, nil)
	case reflect.Map:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			d.fail(n, path, "%s: expected a mapping, got %s", label(path), kindName(n))
			return
		}
		d.decodeMap(m, v, path, nil)
	case reflect.Slice:
		s, ok := n.(*ast.SequenceNode)
		if !ok {
			d.fail(n, path, "%s: expected a list, got %s", label(path), kindName(n))
			return
		}
		out := reflect.MakeSlice(t, len(s.Values), len(s.Values))
		for i, item := range s.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.record(p, d.pos(item), item)
			d.decode(item, out.Index(i), p)
		}
		v.Set(out)
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		d.decodeBool(n, v, path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.decodeInt(n, v, path)
	case reflect.Float32, reflect.Float64:
		d.decodeFloat(n, v, path)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.fail(n, path, "%s: cannot decode into Go type %s", label(path), t)
			return
		}
		if g := d.generic(n, path, true); g != nil {
			v.Set(reflect.ValueOf(g))
		}
	default:
		d.fail(n, path, "%s: cannot decode into Go type %s", label(path), t)
	}
}

// fail records a problem at n and marks path so validation skips it.
func (d *decoder) fail(n ast.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.errs.add(d.pos(n), format, args...)
}

// record notes that path was written at keyPos with a non-null value.
func (d *decoder) record(path string, keyPos Position, value ast.Node) {
	if _, null := d.resolve(value).(*ast.NullNode); null {
		return
	}
	d.spans[path] = span{Key: keyPos, Value: d.pos(d.resolve(value))}
}

// field is a struct field reachable by a YAML key, through ",inline"
// and untagged embedded structs.
type field struct {
	key   string
	index []int
}

func structFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		inline := slices.Contains(strings.Split(opts, ","), "inline") || (f.Anonymous && tag == "")
		if inline && f.Type.Kind() == reflect.Struct {
			for _, sub := range structFields(f.Type) {
				out = append(out, field{key: sub.key, index: append([]int{i}, sub.index...)})
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{key: name, index: []int{i}})
	}
	return out
}

// decodeStruct decodes mapping m into struct v. Unknown keys are errors,
// listing the keys that are known. Keys in skip are ignored (Component.Decode
// skips "type", which picked the implementation).
func (d *decoder) decodeStruct(m *ast.MappingNode, v reflect.Value, path string, skip []string) {
	fields := structFields(v.Type())
	for _, e := range d.entries(m) {
		if slices.Contains(skip, e.key) {
			continue
		}
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == e.key })
		if i < 0 {
			known := make([]string, len(fields))
			for j, f := range fields {
				known[j] = f.key
			}
			d.errs.add(e.keyPos, "unknown key %q in %s (known keys: %s)", e.key, label(path), strings.Join(known, ", "))
			continue
		}
		p := joinPath(path, e.key)
		d.record(p, e.keyPos, e.value)
		d.decode(e.value, v.FieldByIndex(fields[i].index), p)
	}
}

func (d *decoder) decodeMap(m *ast.MappingNode, v reflect.Value, path string, skip []string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(m, path, "%s: cannot decode into Go type %s (map keys must be strings)", label(path), t)
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, e := range d.entries(m) {
		if slices.Contains(skip, e.key) {
			continue
		}
		p := joinPath(path, e.key)
		d.record(p, e.keyPos, e.value)
		elem := reflect.New(t.Elem()).Elem()
		d.decode(e.value, elem, p)
		v.SetMapIndex(reflect.ValueOf(e.key).Convert(t.Key()), elem)
	}
}

// expanded reports whether s, n's decoded value, came from a ${VAR} or
// ${file:} reference rather than the text written.
func (d *decoder) expanded(n ast.Node, s string) bool {
	raw, ok := scalarText(n)
	return ok && isString(n) && raw != s
}

// shown is how an error message quotes s, n's decoded value: as written,
// unless it came from a reference. An expanded value may be a secret (the
// usual reason for ${VAR} or ${file:}), and error messages reach logs and
// admin API responses, so only the reference is shown.
func (d *decoder) shown(n ast.Node, s string) string {
	if d.expanded(n, s) {
		raw, _ := scalarText(n)
		return fmt.Sprintf("the value of %q (not shown)", raw)
	}
	return strconv.Quote(s)
}

// redact replaces s, n's decoded value, in msg, a parser's error about it,
// with shown's words when s came from a reference.
func (d *decoder) redact(n ast.Node, s, msg string) string {
	if !d.expanded(n, s) {
		return msg
	}
	msg = strings.ReplaceAll(msg, strconv.Quote(s), d.shown(n, s))
	if s != "" {
		msg = strings.ReplaceAll(msg, s, d.shown(n, s))
	}
	return msg
}

// scalar returns a scalar's text, environment-expanded when it is a string.
func (d *decoder) scalar(n ast.Node, path string) (string, bool) {
	s, ok := scalarText(n)
	if !ok {
		d.fail(n, path, "%s: expected a scalar value, got %s", label(path), kindName(n))
		return "", false
	}
	if !isString(n) {
		return s, true
	}
	s, problems := expandEnv(s)
	for _, p := range problems {
		d.fail(n, path, "%s", p)
	}
	return s, len(problems) == 0
}

func (d *decoder) decodeDuration(n ast.Node, v reflect.Value, path string) {
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	dur, err := parseDuration(s)
	if err != nil {
		d.fail(n, path, "%s: %s", path, d.redact(n, s, err.Error()))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeBool(n ast.Node, v reflect.Value, path string) {
	if b, ok := n.(*ast.BoolNode); ok {
		v.SetBool(b.Value)
		return
	}
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		d.fail(n, path, "%s: expected true or false, got %s", path, d.shown(n, s))
		return
	}
	v.SetBool(b)
}

func (d *decoder) decodeInt(n ast.Node, v reflect.Value, path string) {
	var s string
	if in, ok := n.(*ast.IntegerNode); ok {
		// The parser has already read 0x, 0o and _ forms; use its value.
		s = fmt.Sprint(in.Value)
	} else if isString(n) {
		// A string only reaches an integer field through ${VAR}, e.g.
		// partitions: ${PARTITIONS:3}; its expansion must be an integer.
		var ok bool
		if s, ok = d.scalar(n, path); !ok {
			return
		}
	} else {
		d.fail(n, path, "%s: expected an integer, got %s", path, kindName(n))
		return
	}
	bits := v.Type().Bits()
	if v.CanInt() {
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, bits)
		if err != nil {
			d.fail(n, path, "%s: expected an integer that fits in %s, got %s", path, v.Type(), d.shown(n, s))
			return
		}
		v.SetInt(i)
		return
	}
	u, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
	if err != nil {
		d.fail(n, path, "%s: expected a non-negative integer that fits in %s, got %s", path, v.Type(), d.shown(n, s))
		return
	}
	v.SetUint(u)
}

func (d *decoder) decodeFloat(n ast.Node, v reflect.Value, path string) {
	var f float64
	switch t := n.(type) {
	case *ast.FloatNode:
		f = t.Value
	case *ast.IntegerNode:
		s, _ := scalarText(t)
		var err error
		if f, err = strconv.ParseFloat(fmt.Sprint(t.Value), 64); err != nil {
			d.fail(n, path, "%s: expected a number, got %q", path, s)
			return
		}
	case *ast.InfinityNode:
		f = t.Value
	case *ast.NanNode:
		f = math.NaN()
	case *ast.StringNode, *ast.LiteralNode:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			d.fail(n, path, "%s: expected a number, got %s", path, d.shown(n, s))
			return
		}
	default:
		d.fail(n, path, "%s: expected a number, got %s", path, kindName(n))
		return
	}
	v.SetFloat(f)
}

// generic converts a node to plain Go values (map[string]any, []any, string,
// int64/uint64, float64, bool, nil) for fields typed any. expand controls
// environment expansion: on when decoding, off when echoing a config back
// (so secrets supplied through ${VAR} are not printed).
func (d *decoder) generic(n ast.Node, path string, expand bool) any {
	n = d.resolve(n)
	switch t := n.(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.MappingNode:
		out := map[string]any{}
		for _, e := range d.entries(t) {
			out[e.key] = d.generic(e.value, joinPath(path, e.key), expand)
		}
		return out
	case *ast.SequenceNode:
		out := make([]any, len(t.Values))
		for i, item := range t.Values {
			out[i] = d.generic(item, fmt.Sprintf("%s[%d]", path, i), expand)
		}
		return out
	case *ast.StringNode, *ast.LiteralNode:
		if !expand {
			s, _ := scalarText(t)
			return s
		}
		s, _ := d.scalar(t, path)
		return s
	case ast.ScalarNode:
		return t.GetValue()
	}
	d.fail(n, path, "%s: unsupported YAML %s", label(path), kindName(n))
	return nil
}

// decodeComponent keeps a component's mapping for Component.Decode and reads
// only its type now, because the keys it may have depend on that type.
func (d *decoder) decodeComponent(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.fail(n, path, "%s: expected a mapping with a type key, got %s", label(path), kindName(n))
		return
	}
	c := Component{Pos: d.pos(m), node: &componentNode{file: d.file, mapping: m, anchors: d.anchors}}
	for _, e := range d.entries(m) {
		p := joinPath(path, e.key)
		if e.key != "type" {
			// Expand now only to report unset variables with the rest of
			// the file's problems; Decode expands again for real.
			d.generic(e.value, p, true)
			continue
		}
		d.record(p, e.keyPos, e.value)
		d.decode(e.value, reflect.ValueOf(&c.Type).Elem(), p)
	}
	v.Set(reflect.ValueOf(c))
}
