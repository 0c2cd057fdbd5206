package all

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/connectd/connectd/component"
)

// yamlKeys are the YAML keys of a config struct (a pointer to one).
func yamlKeys(cfg any) []string {
	t := reflect.TypeOf(cfg).Elem()
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
	}
	slices.Sort(keys)
	return keys
}

func fieldNames(fields []component.Field) []string {
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	return names
}

// TestFieldsMatchConfigs: every registered component documents exactly the
// keys its config decodes, each with a type and a description, so the
// listing, docs/components.md and the API cannot drift from the code.
func TestFieldsMatchConfigs(t *testing.T) {
	type comp struct {
		kind, name string
		fields     []component.Field
		cfg        any
	}
	var comps []comp
	for _, s := range component.Sinks() {
		comps = append(comps, comp{"sink", s.Name, s.Fields, s.NewConfig()})
	}
	for _, s := range component.Sources() {
		comps = append(comps, comp{"source", s.Name, s.Fields, s.NewConfig()})
	}
	if len(comps) < 5 {
		t.Fatalf("%d components registered, want at least the 5 built-ins", len(comps))
	}
	for _, c := range comps {
		if got, want := fieldNames(c.fields), yamlKeys(c.cfg); !slices.Equal(got, want) {
			t.Errorf("%s %s: fields %v, config keys %v", c.kind, c.name, got, want)
		}
		for _, f := range c.fields {
			if f.Type == "" || f.Description == "" {
				t.Errorf("%s %s: field %s has no type or description", c.kind, c.name, f.Name)
			}
		}
	}
}
