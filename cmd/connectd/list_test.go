package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/connectd/connectd/component"
)

// TestList: `connectd list` names every registered source and sink with
// its guarantees, --json is GET /connector-plugins's shape, and
// docs/components.md is exactly what --markdown prints (regenerate it with
// `go run ./cmd/connectd list --markdown > docs/components.md`).
func TestList(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch([]string{"list"}, &out, &errOut); code != exitOK {
		t.Fatalf("list: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"source  generator", "source  kafka", "sink    kafka", "exactly_once,two_phase,at_least_once", "sink    redis"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if code := dispatch([]string{"list", "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("list --json: exit %d: %s", code, errOut.String())
	}
	var plugins []component.Plugin
	if err := json.Unmarshal(out.Bytes(), &plugins); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out.String())
	}
	classes := map[string]string{}
	for _, p := range plugins {
		classes[p.Class] = p.Type
	}
	for class, kind := range map[string]string{"kafka-source": "source", "generator-source": "source", "kafka-sink": "sink", "postgres-sink": "sink", "redis-sink": "sink"} {
		if classes[class] != kind {
			t.Errorf("list --json: class %s is %q, want %q (all: %v)", class, classes[class], kind, classes)
		}
	}

	out.Reset()
	if code := dispatch([]string{"list", "--markdown"}, &out, &errOut); code != exitOK {
		t.Fatalf("list --markdown: exit %d: %s", code, errOut.String())
	}
	doc, err := os.ReadFile("../../docs/components.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != out.String() {
		t.Errorf("docs/components.md is not what `connectd list --markdown` prints; regenerate it with `go run ./cmd/connectd list --markdown > docs/components.md`")
	}

	if code := dispatch([]string{"list", "--json", "--markdown"}, &out, &errOut); code != exitUsage {
		t.Errorf("list --json --markdown: exit %d, want %d", code, exitUsage)
	}
}
