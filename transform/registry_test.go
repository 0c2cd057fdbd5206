package transform

import (
	"slices"
	"strings"
	"testing"
)

func TestNamesSortedWithBuiltins(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Fatalf("Names not sorted: %v", names)
	}
	for _, want := range []string{"drop", "filter", "headers", "rename", "route", "set"} {
		if !slices.Contains(names, want) {
			t.Errorf("built-in %q not registered; have %v", want, names)
		}
		s, ok := Lookup(want)
		if !ok || s.Summary == "" || len(s.Fields) == 0 {
			t.Errorf("spec %q incomplete: %+v", want, s)
		}
	}
}

func TestBuildUnknownListsKnown(t *testing.T) {
	_, err := Build("filtr", yamlConfig("expr: true"))
	if err == nil {
		t.Fatal("want error for unknown transform")
	}
	msg := err.Error()
	for _, want := range []string{`"filtr"`, "drop, filter, headers, rename, route, set"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestBuildRejectsUnknownConfigField(t *testing.T) {
	if _, err := Build("filter", yamlConfig("expr: true\nexpression: false")); err == nil {
		t.Fatal("want error for unknown config field")
	}
}

func TestBuildResultIsNamed(t *testing.T) {
	tr := mustBuild(t, "drop", "fields: [a]")
	if n, ok := tr.(Named); !ok || n.Name() != "drop" {
		t.Fatalf("Build result %T not Named(drop)", tr)
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate Register did not panic")
		}
	}()
	Register(Spec{Name: "filter", Build: buildFilter})
}
