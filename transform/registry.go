package transform

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Field documents one config field of a transform. The same list drives
// generated docs and `connectd validate`, so it must match the yaml tags of
// the transform's config struct.
type Field struct {
	Name        string
	Type        string
	Default     string
	Description string
	Required    bool
}

// Spec is everything connectd knows about a transform type: its name, its
// documentation and how to build one from config.
type Spec struct {
	// Name is the type name used in config, e.g. "filter".
	Name string
	// Summary is one line for docs and `connectd validate`.
	Summary string
	// Fields documents the config fields.
	Fields []Field
	// Build makes a transform. decode strictly fills the transform's config
	// struct (yaml tags), rejecting unknown fields, so Build only has to
	// check what a decoder cannot: required fields, expressions, paths.
	Build func(decode func(v any) error) (Transform, error)
}

// Named is implemented by transforms that know their registered type name.
// Chain uses it to name the transform in a RecordError; transforms returned
// by Build always implement it.
type Named interface {
	Name() string
}

// The registry is written only from init functions and read afterwards; the
// lock makes a late Register (e.g. a plugin in a test) safe anyway.
var (
	registryMu sync.RWMutex
	registry   = map[string]Spec{}
)

// Register adds a transform type. It panics on an empty name, a nil Build or
// a duplicate name: all are programming errors caught at start-up.
func Register(s Spec) {
	if s.Name == "" || s.Build == nil {
		panic("transform: Register needs a Name and a Build func")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[s.Name]; dup {
		panic(fmt.Sprintf("transform: %q registered twice", s.Name))
	}
	registry[s.Name] = s
}

// Lookup returns the spec registered under name.
func Lookup(name string) (Spec, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s, ok := registry[name]
	return s, ok
}

// Names returns the registered type names, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Build makes a transform of the named type from config. An unknown name is
// reported together with the known names, since it is usually a typo.
// The result implements Named.
func Build(name string, decode func(v any) error) (Transform, error) {
	s, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown transform type %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	t, err := s.Build(decode)
	if err != nil {
		return nil, fmt.Errorf("transform %s: %w", name, err)
	}
	if _, ok := t.(Named); ok {
		return t, nil
	}
	return named{Transform: t, name: name}, nil
}

// named attaches the registered type name to a transform that lacks one.
type named struct {
	Transform
	name string
}

func (n named) Name() string { return n.name }

// FieldError is a Build error about one field of a transform's config, so
// the config loader can point at that field's line rather than the
// transform's.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// fieldErr wraps err as a FieldError of field.
func fieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }
