package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/connectd/connectd/component"
)

// TestOpenAPIMatchesRoutes keeps openapi.json and the handlers in step:
// every registered route is documented with its method, and every
// documented operation reaches that route's handler in the mux, while the
// methods the document leaves out reach the 405 handler.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	// docPath is how OpenAPI writes a mux pattern's path.
	docPath := func(pattern string) string { return strings.TrimSuffix(pattern, "{$}") }
	muxPath := map[string]string{}

	s := New(nil, nil)
	routes := s.routeTable()
	for _, rt := range routes {
		p := docPath(rt.path)
		muxPath[p] = rt.path
		if _, ok := doc.Paths[p][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s is not in openapi.json", rt.method, p)
		}
	}

	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	documented := 0
	for p, item := range doc.Paths {
		pattern, ok := muxPath[p]
		if !ok {
			t.Errorf("openapi.json documents %s, which has no route", p)
			continue
		}
		target := pathParam.ReplaceAllString(p, "some-value")
		for _, m := range methods {
			_, inDoc := item[strings.ToLower(m)]
			if inDoc {
				documented++
			}
			_, hasGet := item["get"]
			want := pattern // the method-less pattern: 405
			switch {
			case inDoc:
				want = m + " " + pattern
			case m == "HEAD" && hasGet:
				want = "GET " + pattern
			}
			_, got := s.mux.Handler(httptest.NewRequest(m, target, nil))
			if got != want {
				t.Errorf("%s %s reaches %q, want %q", m, p, got, want)
			}
		}
		for k := range item {
			if k != "parameters" && k != "summary" && k != "description" &&
				!slices.Contains(methods, strings.ToUpper(k)) {
				t.Errorf("%s: unexpected key %q in path item", p, k)
			}
		}
	}
	if documented != len(routes) {
		t.Errorf("openapi.json documents %d operations, the mux has %d routes", documented, len(routes))
	}
}

// pathParam is a path parameter in an OpenAPI path ({name}).
var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// TestOpenAPIRefsResolve checks every $ref names a schema the document
// defines, so tools that load it do not fail.
func TestOpenAPIRefsResolve(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name, ok := strings.CutPrefix(ref, "#/components/schemas/")
				if _, defined := doc.Components.Schemas[name]; !ok || !defined {
					t.Errorf("unresolved $ref %q", ref)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	var all any
	if err := json.Unmarshal(openAPIDoc, &all); err != nil {
		t.Fatal(err)
	}
	walk(all)
}

func TestOpenAPIServesDocument(t *testing.T) {
	rec := httptest.NewRecorder()
	New(nil, nil).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(openAPIDoc) {
		t.Errorf("GET /openapi.json = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// TestOpenAPIComponentSchemas: the served document describes every
// registered source and sink from its fields, and ConnectorConfig's
// source, sink and sinks are one of them by type.
func TestOpenAPIComponentSchemas(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type   string            `json:"type"`
					Format string            `json:"format"`
					OneOf  []json.RawMessage `json:"oneOf"`
					Items  struct {
						OneOf []json.RawMessage `json:"oneOf"`
					} `json:"items"`
				} `json:"properties"`
				Required []string `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	nsinks, nsources := 0, 0
	for _, p := range component.Plugins() {
		name := "Source_" + p.Name
		if p.Type == "sink" {
			name, nsinks = "Sink_"+p.Name, nsinks+1
		} else {
			nsources++
		}
		s, ok := schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		for _, f := range p.Fields {
			prop, ok := s.Properties[f.Name]
			if !ok {
				t.Errorf("%s: no property %s", name, f.Name)
			}
			if len(fieldSchema(f.Type)) == 0 {
				t.Errorf("%s.%s: field type %q has no JSON schema", name, f.Name, f.Type)
			}
			if f.Secret && prop.Format != "password" {
				t.Errorf("%s.%s: a secret field is not format password", name, f.Name)
			}
			if f.Required && !slices.Contains(s.Required, f.Name) {
				t.Errorf("%s.%s: required field not in required", name, f.Name)
			}
		}
	}
	cc := schemas["ConnectorConfig"].Properties
	if len(cc["sink"].OneOf) != nsinks || len(cc["sinks"].Items.OneOf) != nsinks || len(cc["source"].OneOf) != nsources {
		t.Errorf("ConnectorConfig: sink one of %d, sinks of %d, source of %d; want %d sinks and %d sources",
			len(cc["sink"].OneOf), len(cc["sinks"].Items.OneOf), len(cc["source"].OneOf), nsinks, nsources)
	}
	if schemas["Sink_postgres"].Properties["dsn"].Format != "password" {
		t.Error("Sink_postgres.dsn is not marked secret")
	}
}
