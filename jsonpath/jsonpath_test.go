package jsonpath

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		segs    []string
	}{
		{in: "id", segs: []string{"id"}},
		{in: "order.customer.id", segs: []string{"order", "customer", "id"}},
		{in: "items.0.sku", segs: []string{"items", "0", "sku"}},
		{in: `a*b.#.@this.x|y.a\b`, segs: []string{"a*b", "#", "@this", "x|y", `a\b`}},
		{in: "", err: "empty path (want a dot path such as order.id)"},
		{in: "a..b", err: `path "a..b" has an empty segment (want a dot path such as order.id)`},
		{in: ".a", err: "empty segment"},
		{in: "a.", err: "empty segment"},
		{in: ".", err: "empty segment"},
	} {
		p, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, %v; want an error containing %q", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(p.Segments(), tc.segs) || p.String() != tc.in {
			t.Errorf("Parse(%q) = %q (%q), %v; want %q", tc.in, p.Segments(), p, err, tc.segs)
		}
	}
}

func TestRaw(t *testing.T) {
	for _, tc := range []struct {
		name, path, value string
		want              string // raw JSON found; "" when not found
		err               error  // Raw's error
		missing           string // Missing's text when not found in valid JSON
	}{
		{name: "top level", path: "id", value: ` {"id": "x"} `, want: `"x"`},
		{name: "nested", path: "order.id", value: `{"order":{"id":"o-5"}}`, want: `"o-5"`},
		{name: "object keeps inner spacing", path: "o", value: `{"o": {"k": [1, 2]} }`, want: `{"k": [1, 2]}`},
		{name: "null is found", path: "n", value: `{"n":null}`, want: `null`},

		// Numbers are their exact text.
		{name: "20-digit integer", path: "id", value: `{"id":12345678901234567890}`, want: `12345678901234567890`},
		{name: "exponent kept", path: "id", value: `{"id":1.50e3}`, want: `1.50e3`},
		{name: "negative zero", path: "id", value: `{"id":-0.0}`, want: `-0.0`},

		// Segments are literal keys: gjson's wildcard, query and modifier
		// characters mean nothing in them.
		{name: "star", path: "a*b", value: `{"ab":"no","a*b":"star"}`, want: `"star"`},
		{name: "question mark", path: "a?", value: `{"ab":"no","a?":"q"}`, want: `"q"`},
		{name: "hash", path: "#", value: `{"#":7}`, want: `7`},
		{name: "hash is no array length", path: "a.#", value: `{"a":[5,6]}`, missing: `missing: "a" is not an object`},
		{name: "pipe", path: "x|y", value: `{"x":"no","x|y":"pipe"}`, want: `"pipe"`},
		{name: "modifier", path: "@this", value: `{"@this":"at"}`, want: `"at"`},
		{name: "backslash", path: `a\b`, value: `{"a\\b":1}`, want: `1`},
		{name: "escaped key in the document", path: "ab", value: `{"a\u0062":1}`, want: `1`},
		{name: "key with a dot is not addressable", path: "a.b", value: `{"a.b":1}`, missing: "missing"},

		// Arrays are indexed by position.
		{name: "array index", path: "items.1.sku", value: `{"items":[{"sku":"a"},{"sku":"b"}]}`, want: `"b"`},
		{name: "top-level array", path: "0.a", value: `[{"a":1}]`, want: `1`},
		{name: "index past the end", path: "items.5.sku", value: `{"items":[{"sku":"a"}]}`, missing: "missing"},
		{name: "key on an array", path: "items.sku", value: `{"items":[{"sku":"a"}]}`, missing: `missing: "items" is not an object`},
		{name: "negative index", path: "a.-1", value: `{"a":[5,6]}`, missing: `missing: "a" is not an object`},

		{name: "first duplicate wins", path: "a", value: `{"a":1,"a":2}`, want: `1`},

		// Missing paths.
		{name: "absent key", path: "order.id", value: `{"order":{}}`, missing: "missing"},
		{name: "through a number", path: "order.id", value: `{"order":3}`, missing: `missing: "order" is not an object`},
		{name: "through a string", path: "a.b.c", value: `{"a":{"b":"x"}}`, missing: `missing: "a.b" is not an object`},
		{name: "through null", path: "a.b", value: `{"a":null}`, missing: `missing: "a" is not an object`},
		{name: "value is an array", path: "id", value: `[1]`, missing: "missing: value is not a JSON object"},
		{name: "value is a string", path: "id", value: `"s"`, missing: "missing: value is not a JSON object"},

		// Not JSON: nothing is found in a malformed value.
		{name: "truncated", path: "a", value: `{"a":1`, err: ErrNotJSON},
		{name: "trailing data", path: "a", value: `{"a":1} x`, err: ErrNotJSON},
		{name: "empty", path: "a", value: ``, err: ErrNotJSON},
		{name: "not JSON at all", path: "id", value: `id=1`, err: ErrNotJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			value := []byte(tc.value)
			raw, found, err := p.Raw(value)
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Raw error %v, want %v", err, tc.err)
			}
			if tc.err != nil {
				return
			}
			if found != (tc.want != "") || string(raw) != tc.want {
				t.Fatalf("Raw = %s, %v; want %q", raw, found, tc.want)
			}
			if l, lfound := p.Lookup(tc.value); l != tc.want || lfound != found {
				t.Errorf("Lookup = %s, %v; Raw gave %s, %v", l, lfound, raw, found)
			}
			if found {
				if cap(raw) != len(raw) {
					t.Errorf("raw has capacity %d beyond its length %d: appending to it would write into the value", cap(raw), len(raw))
				}
				return
			}
			if m := p.Missing(value); !errors.Is(m, ErrMissing) || m.Error() != tc.missing {
				t.Errorf("Missing = %v, want %q wrapping ErrMissing", m, tc.missing)
			}
		})
	}
}

func TestScalar(t *testing.T) {
	for _, tc := range []struct{ raw, want, err string }{
		{raw: `"o-5"`, want: "o-5"},
		{raw: `"tab\there \u00e9"`, want: "tab\there é"},
		{raw: `"é"`, want: "é"},
		{raw: "\"\xff\"", want: "\ufffd"}, // as encoding/json decodes invalid UTF-8
		{raw: `"a\"b"`, want: `a"b`},
		{raw: `"`, err: "unexpected end of JSON input"},
		{raw: `"abc`, err: "unexpected end of JSON input"},
		{raw: `12345678901234567890`, want: "12345678901234567890"},
		{raw: `1.50e3`, want: "1.50e3"},
		{raw: `-7`, want: "-7"},
		{raw: `true`, want: "true"},
		{raw: `false`, want: "false"},
		{raw: `""`, err: "is an empty string"},
		{raw: `null`, err: "is null"},
		{raw: `{"id":1}`, err: "is an object, not a string, number or boolean"},
		{raw: `[1]`, err: "is an array, not a string, number or boolean"},
		{raw: ``, err: "missing"},
	} {
		got, err := Scalar(json.RawMessage(tc.raw))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Scalar(%s) = %q, %v; want error %q", tc.raw, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Scalar(%s) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
}

func TestGetSetRemove(t *testing.T) {
	decode := func(s string) map[string]any {
		t.Helper()
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	encode := func(m map[string]any) string {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mustParse := func(s string) Path {
		p, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	obj := decode(`{"a":{"b":12345678901234567890},"s":"x","l":[{"c":1}]}`)
	for _, tc := range []struct {
		path  string
		want  any
		found bool
	}{
		{"a.b", json.Number("12345678901234567890"), true},
		{"a", map[string]any{"b": json.Number("12345678901234567890")}, true},
		{"a.x", nil, false},
		{"s.x", nil, false},
		{"l.0.c", nil, false}, // Get does not enter arrays
	} {
		got, found := mustParse(tc.path).Get(obj)
		if found != tc.found || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Get(%s) = %v, %v; want %v, %v", tc.path, got, found, tc.want, tc.found)
		}
	}

	for _, tc := range []struct{ value, path, want, err string }{
		{`{"a":1}`, "s", `{"a":1,"s":"v"}`, ""},
		{`{"a":1}`, "m.n.o", `{"a":1,"m":{"n":{"o":"v"}}}`, ""},
		{`{"a":null}`, "a.b", `{"a":{"b":"v"}}`, ""},
		{`{"a":2}`, "a", `{"a":"v"}`, ""},
		{`{"a":"str"}`, "a.b", "", "field a is a string, not an object"},
		{`{"a":{"l":[1]}}`, "a.l.0", "", "field a.l is an array, not an object"},
	} {
		m := decode(tc.value)
		err := mustParse(tc.path).Set(m, "v")
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Set(%s) on %s: %v, want error %q", tc.path, tc.value, err, tc.err)
			}
			continue
		}
		if got := encode(m); err != nil || got != tc.want {
			t.Errorf("Set(%s) on %s = %s, %v; want %s", tc.path, tc.value, got, err, tc.want)
		}
	}

	for _, tc := range []struct{ value, path, want string }{
		{`{"a":1,"b":2}`, "a", `{"b":2}`},
		{`{"c":{"d":3,"e":4}}`, "c.d", `{"c":{"e":4}}`},
		{`{"b":2}`, "x.y", `{"b":2}`},
		{`{"b":"s"}`, "b.q", `{"b":"s"}`},
	} {
		m := decode(tc.value)
		mustParse(tc.path).Remove(m)
		if got := encode(m); got != tc.want {
			t.Errorf("Remove(%s) on %s = %s, want %s", tc.path, tc.value, got, tc.want)
		}
	}
}

func TestZeroPath(t *testing.T) {
	var p Path
	if _, found, err := p.Raw([]byte(`{"a":1}`)); found || err != nil {
		t.Errorf("zero Path Raw: found %v, %v", found, err)
	}
	m := map[string]any{"a": 1}
	if _, found := p.Get(m); found {
		t.Error("zero Path Get found something")
	}
	if err := p.Set(m, 2); err == nil {
		t.Error("zero Path Set: want an error")
	}
	p.Remove(m)
	if len(m) != 1 {
		t.Errorf("zero Path Remove changed %v", m)
	}
}
