package transform

import (
	"fmt"
	"sort"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/jsonpath"
)

// set, rename and drop edit fields of a JSON-object value. The output value is
// re-encoded with sorted keys, so it is byte-for-byte the same on replay.
// A record with an empty value (a Kafka tombstone) passes through unchanged:
// it has no fields, and dead-lettering every delete would be wrong.

func init() {
	Register(Spec{
		Name:    "set",
		Summary: "Set JSON fields of the value to literal values.",
		Fields: []Field{{
			Name: "fields", Type: "map[path]value", Required: true,
			Description: "Dot paths to literal values (scalars, lists or maps); missing intermediate objects are created.",
		}},
		Build: buildSet,
	})
	Register(Spec{
		Name:    "rename",
		Summary: "Move JSON fields of the value to new paths.",
		Fields: []Field{{
			Name: "fields", Type: "map[path]path", Required: true,
			Description: "Source dot path to target dot path. All sources are read before any target is written, so {a: b, b: a} swaps. A missing source is skipped.",
		}},
		Build: buildRename,
	})
	Register(Spec{
		Name:    "drop",
		Summary: "Remove JSON fields from the value.",
		Fields: []Field{{
			Name: "fields", Type: "list of paths", Required: true,
			Description: "Dot paths to remove; a missing field is not an error.",
		}},
		Build: buildDrop,
	})
}

// editValue applies edit to the record's value parsed as a JSON object and
// returns a copy of the record with the re-encoded value.
func editValue(in *connector.Record, edit func(obj map[string]any) error) ([]*connector.Record, error) {
	if len(in.Value) == 0 {
		return []*connector.Record{in.Clone()}, nil
	}
	obj, err := decodeObject(in.Value)
	if err != nil {
		return nil, err
	}
	if err := edit(obj); err != nil {
		return nil, err
	}
	b, err := encodeJSON(obj)
	if err != nil {
		return nil, err
	}
	r := in.Clone()
	r.Value = b
	return []*connector.Record{r}, nil
}

type setConfig struct {
	Fields map[string]any `yaml:"fields"`
}

type setFields struct {
	paths  []jsonpath.Path // sorted, so fields are set in the same order every time
	values []any
}

func buildSet(decode func(any) error) (Transform, error) {
	var c setConfig
	if err := decode(&c); err != nil {
		return nil, err
	}
	if len(c.Fields) == 0 {
		return nil, fieldErr("fields", fmt.Errorf("is required"))
	}
	keys := make([]string, 0, len(c.Fields))
	for k := range c.Fields {
		keys = append(keys, k)
	}
	paths, err := parsePaths(keys)
	if err != nil {
		return nil, err
	}
	s := setFields{paths: paths}
	for _, p := range paths {
		v, err := literalJSON(c.Fields[p.String()])
		if err != nil {
			return nil, fieldErr("fields", fmt.Errorf("field %s: value cannot be JSON: %w", p, err))
		}
		s.values = append(s.values, v)
	}
	return s, nil
}

func (setFields) Name() string { return "set" }

func (s setFields) Apply(in *connector.Record) ([]*connector.Record, error) {
	return editValue(in, func(obj map[string]any) error {
		for i, p := range s.paths {
			if err := p.Set(obj, deepCopy(s.values[i])); err != nil {
				return err
			}
		}
		return nil
	})
}

type renameConfig struct {
	Fields map[string]string `yaml:"fields"`
}

type renameFields struct {
	from, to []jsonpath.Path // pairs, sorted by from
}

func buildRename(decode func(any) error) (Transform, error) {
	var c renameConfig
	if err := decode(&c); err != nil {
		return nil, err
	}
	if len(c.Fields) == 0 {
		return nil, fieldErr("fields", fmt.Errorf("is required"))
	}
	froms := make([]string, 0, len(c.Fields))
	tos := make([]string, 0, len(c.Fields))
	for f, t := range c.Fields {
		froms = append(froms, f)
		tos = append(tos, t)
	}
	// Overlapping sources or targets would make the result depend on order.
	if _, err := parsePaths(tos); err != nil {
		return nil, fieldErr("fields", fmt.Errorf("targets: %w", err))
	}
	from, err := parsePaths(froms)
	if err != nil {
		return nil, fieldErr("fields", fmt.Errorf("sources: %w", err))
	}
	r := renameFields{from: from}
	for _, f := range from {
		t, _ := jsonpath.Parse(c.Fields[f.String()]) // already validated above
		r.to = append(r.to, t)
	}
	return r, nil
}

func (renameFields) Name() string { return "rename" }

func (r renameFields) Apply(in *connector.Record) ([]*connector.Record, error) {
	return editValue(in, func(obj map[string]any) error {
		vals := make([]any, len(r.from))
		found := make([]bool, len(r.from))
		for i, f := range r.from {
			vals[i], found[i] = f.Get(obj)
		}
		for i, f := range r.from {
			if found[i] {
				f.Remove(obj)
			}
		}
		for i, t := range r.to {
			if !found[i] {
				continue
			}
			if err := t.Set(obj, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

type dropConfig struct {
	Fields []string `yaml:"fields"`
}

type dropFields struct{ paths []jsonpath.Path }

func buildDrop(decode func(any) error) (Transform, error) {
	var c dropConfig
	if err := decode(&c); err != nil {
		return nil, err
	}
	if len(c.Fields) == 0 {
		return nil, fieldErr("fields", fmt.Errorf("is required"))
	}
	// Overlap (a and a.b) is harmless for drop, so only parse and sort.
	fields := append([]string(nil), c.Fields...)
	sort.Strings(fields)
	d := dropFields{}
	for _, f := range fields {
		p, err := jsonpath.Parse(f)
		if err != nil {
			return nil, err
		}
		d.paths = append(d.paths, p)
	}
	return d, nil
}

func (dropFields) Name() string { return "drop" }

func (d dropFields) Apply(in *connector.Record) ([]*connector.Record, error) {
	return editValue(in, func(obj map[string]any) error {
		for _, p := range d.paths {
			p.Remove(obj)
		}
		return nil
	})
}
