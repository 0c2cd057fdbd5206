package transform

import (
	"errors"
	"strings"
	"testing"
)

func TestJSONFields(t *testing.T) {
	tests := []struct {
		name, transform, cfg, value, want string
	}{
		{"set top level", "set", "fields: {status: done}", `{"a":1}`, `{"a":1,"status":"done"}`},
		{"set creates intermediates", "set", "fields: {meta.src.name: web}", `{"a":1}`, `{"a":1,"meta":{"src":{"name":"web"}}}`},
		{"set overwrites", "set", "fields: {a: 2}", `{"a":1}`, `{"a":2}`},
		{"set into null intermediate", "set", "fields: {a.b: true}", `{"a":null}`, `{"a":{"b":true}}`},
		{"set map and list literals", "set", "fields: {m: {x: 1, y: [a, 2.5]}}", `{}`, `{"m":{"x":1,"y":["a",2.5]}}`},
		{"numbers round-trip exactly", "set", "fields: {z: 0}", `{"big":123456789012345678901,"f":1.0,"e":1e3}`, `{"big":123456789012345678901,"e":1e3,"f":1.0,"z":0}`},
		{"no HTML escaping", "set", "fields: {s: a<b}", `{"t":"x&y"}`, `{"s":"a<b","t":"x&y"}`},
		{"rename", "rename", "fields: {a: b}", `{"a":1,"c":2}`, `{"b":1,"c":2}`},
		{"rename nested to new object", "rename", "fields: {u.name: user_name}", `{"u":{"name":"n","id":3}}`, `{"u":{"id":3},"user_name":"n"}`},
		{"rename swap", "rename", "fields: {a: b, b: a}", `{"a":1,"b":2}`, `{"a":2,"b":1}`},
		{"rename missing source", "rename", "fields: {x: y}", `{"a":1}`, `{"a":1}`},
		{"drop", "drop", "fields: [a, c.d]", `{"a":1,"b":2,"c":{"d":3,"e":4}}`, `{"b":2,"c":{"e":4}}`},
		{"drop missing", "drop", "fields: [x.y, b.q]", `{"b":2}`, `{"b":2}`},
		{"tombstone passes", "drop", "fields: [a]", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustBuild(t, tt.transform, tt.cfg)
			out, err := applyOne(t, tr, testRecord(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out.Value); got != tt.want {
				t.Fatalf("value = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestJSONFieldsRecordErrors(t *testing.T) {
	tests := []struct {
		name, transform, cfg, value string
		is                          error
		want                        string
	}{
		{"set non-JSON", "set", "fields: {a: 1}", `x{`, ErrNotJSON, "value is not JSON: invalid character 'x'"},
		{"rename non-JSON", "rename", "fields: {a: b}", `{"a":`, ErrNotJSON, "value is not JSON"},
		{"drop non-JSON", "drop", "fields: [a]", `{"a":1} trailing`, ErrNotJSON, "data after the JSON value"},
		{"set on array", "set", "fields: {a: 1}", `[1,2]`, ErrNotObject, "got array"},
		{"set through scalar", "set", "fields: {a.b: 1}", `{"a":"str"}`, nil, "field a is a string, not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustBuild(t, tt.transform, tt.cfg)
			_, err := Chain{tr}.Apply(testRecord(tt.value))
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want *RecordError", err)
			}
			prefix := "transform 0 (" + tt.transform + "): record orders/1/42: "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q and %q", err, prefix, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v) false for %v", tt.is, err)
			}
		})
	}
}

func TestJSONFieldsBuildErrors(t *testing.T) {
	tests := []struct{ name, transform, cfg, want string }{
		{"set empty", "set", "fields: {}", "fields: is required"},
		{"set overlap", "set", "fields: {a: 1, a.b: 2}", "overlap"},
		{"set empty segment", "set", "fields: {a..b: 1}", "empty segment"},
		{"rename target overlap", "rename", "fields: {a: x, b: x.y}", "overlap"},
		{"rename same target", "rename", "fields: {a: x, b: x}", "overlap"},
		{"drop empty", "drop", "fields: []", "fields: is required"},
		{"drop bad path", "drop", "fields: [.a]", "empty segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.transform, yamlConfig(tt.cfg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// A map literal is shared by every record set applies to; editing one
// output's tree must not leak into the next.
func TestSetLiteralNotShared(t *testing.T) {
	ch := Chain{
		mustBuild(t, "set", "fields: {m: {x: 1}}"),
		mustBuild(t, "rename", "fields: {m.x: m.y}"),
	}
	for range 2 {
		out, err := ch.Apply(testRecord(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out[0].Value), `{"m":{"y":1}}`; got != want {
			t.Fatalf("value = %s, want %s", got, want)
		}
	}
}
