package admin_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/component"
)

// TestConnectorPlugins: GET /connector-plugins lists every registered
// source and sink in Kafka Connect's shape with the daemon's version, and
// /connector-plugins/{plugin}/config gives a plugin's documented fields; an
// unknown plugin is a 404 in Connect's error shape.
func TestConnectorPlugins(t *testing.T) {
	h := admin.New(newFake(), nil, admin.WithVersion("v9.9.9", "abc")).Handler()

	rec := get(t, h, http.MethodGet, "/connector-plugins")
	var plugins []struct {
		Class, Type, Name, Version string
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &plugins) != nil {
		t.Fatalf("GET /connector-plugins: %d %s", rec.Code, rec.Body)
	}
	if len(plugins) != len(component.Plugins()) || len(plugins) < 5 {
		t.Fatalf("GET /connector-plugins: %d plugins, registry has %d: %s", len(plugins), len(component.Plugins()), rec.Body)
	}
	found := map[string]bool{}
	for _, p := range plugins {
		if p.Version != "v9.9.9" || p.Class != p.Name+"-"+p.Type {
			t.Errorf("plugin %+v: want version v9.9.9 and class <name>-<type>", p)
		}
		found[p.Class] = true
	}
	if !found["postgres-sink"] || !found["kafka-source"] {
		t.Errorf("GET /connector-plugins: %v lacks postgres-sink or kafka-source", found)
	}

	rec = get(t, h, http.MethodGet, "/connector-plugins/postgres-sink/config")
	var fields []component.Field
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &fields) != nil {
		t.Fatalf("GET postgres-sink config: %d %s", rec.Code, rec.Body)
	}
	byName := map[string]component.Field{}
	for _, f := range fields {
		byName[f.Name] = f
	}
	if dsn := byName["dsn"]; !dsn.Required || !dsn.Secret || dsn.Description == "" {
		t.Errorf("postgres-sink dsn field: %+v, want required, secret and documented", dsn)
	}

	rec = get(t, h, http.MethodGet, "/connector-plugins/nope-sink/config")
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET an unknown plugin's config: %d %s, want 404", rec.Code, rec.Body)
	}
}
