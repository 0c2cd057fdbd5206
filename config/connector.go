package config

import (
	"reflect"

	"github.com/goccy/go-yaml/parser"
)

// ParseConnector parses one connector definition, as the admin API receives
// it in a request body (JSON is YAML, so both work). It decodes strictly,
// expands ${VAR}, fills defaults and validates exactly as Parse does for an
// entry of `connectors`, reporting every problem at once as Errors whose
// positions are line:column in the body, under file's name. Like Parse it
// returns what it decoded together with the errors, except on a syntax
// error.
func ParseConnector(file string, data []byte) (*Connector, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, syntaxError(file, err)
	}
	var errs Errors
	body := f.Docs
	if len(body) == 0 || body[0].Body == nil {
		errs.add(Position{File: file, Line: 1, Column: 1}, "empty connector definition")
		return nil, errs.err()
	}
	if len(body) > 1 {
		errs.add(nodePos(file, body[1].Body), "a connector definition is one YAML or JSON document; found another here")
	}
	d := newDecoder(file, collectAnchors(body[0].Body))
	d.errs = errs
	// Decode into a one-connector Config so paths and spans are the ones
	// the validator and defaults know ("connectors[0]...").
	cfg := &Config{Path: file}
	wrapped := reflect.ValueOf(cfg).Elem().FieldByName("Connectors")
	wrapped.Set(reflect.MakeSlice(wrapped.Type(), 1, 1))
	d.decode(body[0].Body, wrapped.Index(0), connectorPath(0))
	c := &cfg.Connectors[0]
	c.Pos = d.at(connectorPath(0), Position{File: file, Line: 1, Column: 1})
	set := func(path string) bool { _, ok := d.spans[path]; return ok }
	applyConnectorDefaults(c, connectorPath(0), set)
	v := &validator{file: file, spans: d.spans, failed: d.failed, errs: &d.errs}
	v.connector(c, connectorPath(0))
	return c, d.errs.err()
}
