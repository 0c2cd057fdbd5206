package transform

import (
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

func TestHeaders(t *testing.T) {
	tests := []struct {
		name, cfg string
		want      []connector.Header
	}{
		{"set new", "set: {b: '2', a: '1'}", []connector.Header{{Key: "source", Value: []byte("web")}, {Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}},
		{"set replaces", "set: {source: api}", []connector.Header{{Key: "source", Value: []byte("api")}}},
		{"remove", "remove: [source, missing]", []connector.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := applyOne(t, mustBuild(t, "headers", tt.cfg), testRecord(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Headers) != len(tt.want) {
				t.Fatalf("headers = %q, want %q", out.Headers, tt.want)
			}
			for i := range tt.want {
				if out.Headers[i].Key != tt.want[i].Key || string(out.Headers[i].Value) != string(tt.want[i].Value) {
					t.Fatalf("headers = %q, want %q", out.Headers, tt.want)
				}
			}
		})
	}
}

func TestHeadersBuildErrors(t *testing.T) {
	for _, cfg := range []string{"set: {}", "set: {a: x}\nremove: [a]"} {
		if _, err := Build("headers", yamlConfig(cfg)); err == nil || !strings.Contains(err.Error(), "headers") {
			t.Errorf("Build(%q) = %v, want error", cfg, err)
		}
	}
}
