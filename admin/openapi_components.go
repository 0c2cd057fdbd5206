package admin

import (
	"encoding/json"

	"github.com/connectd/connectd/component"
)

// withComponentSchemas adds to the OpenAPI document a schema per
// registered source and sink, from the fields each registers (the same
// source as validation, `connectd list` and docs/components.md), and makes
// ConnectorConfig's source, sink and sinks one of them, chosen by type.
// The document is decoded into maps, so its keys come out sorted; it panics
// on a document that does not parse, which the embedded one's test would
// have caught.
func withComponentSchemas(raw []byte) []byte {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		panic("admin: openapi.json: " + err.Error())
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var sources, sinks []any
	for _, p := range component.Plugins() {
		name := "Source_" + p.Name
		if p.Type == "sink" {
			name = "Sink_" + p.Name
		}
		schemas[name] = componentSchema(p)
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		if p.Type == "sink" {
			sinks = append(sinks, ref)
		} else {
			sources = append(sources, ref)
		}
	}
	oneOf := func(refs []any) map[string]any {
		return map[string]any{"oneOf": refs, "discriminator": map[string]any{"propertyName": "type"}}
	}
	cc := schemas["ConnectorConfig"].(map[string]any)
	props, _ := cc["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		cc["properties"] = props
	}
	props["source"] = oneOf(sources)
	props["sink"] = oneOf(sinks)
	props["sinks"] = map[string]any{"type": "array", "minItems": 2, "items": oneOf(sinks),
		"description": "Several sinks: with exactly_once committed together by two-phase commit."}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("admin: openapi.json: " + err.Error())
	}
	return append(out, '\n')
}

// componentSchema is the JSON schema of one component's config section.
func componentSchema(p component.Plugin) map[string]any {
	props := map[string]any{"type": map[string]any{"type": "string", "enum": []string{p.Name}}}
	required := []string{"type"}
	for _, f := range p.Fields {
		s := fieldSchema(f.Type)
		s["description"] = f.Description
		if f.Default != "" {
			s["x-default"] = f.Default
		}
		if f.Secret {
			s["format"] = "password"
		}
		props[f.Name] = s
		if f.Required {
			required = append(required, f.Name)
		}
	}
	return map[string]any{"type": "object", "description": p.Summary, "properties": props,
		"required": required, "additionalProperties": false}
}

// fieldSchema maps a documented field type to a JSON schema.
func fieldSchema(t string) map[string]any {
	switch t {
	case "int":
		return map[string]any{"type": "integer"}
	case "float":
		return map[string]any{"type": "number"}
	case "bool":
		return map[string]any{"type": "boolean"}
	case "duration":
		return map[string]any{"type": "string", "pattern": `^(0|([0-9.]+(ns|us|µs|ms|s|m|h))+)$`}
	case "list of strings":
		return map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	case "map of strings":
		return map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}
	case "string":
		return map[string]any{"type": "string"}
	case "object":
		// A nested section (files' partition_by, roll): its keys are in the
		// field's description; the config decoder checks them by position.
		return map[string]any{"type": "object"}
	}
	return map[string]any{}
}
