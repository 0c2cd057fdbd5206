package config

import (
	"errors"
	"os"
	"reflect"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Load reads and parses the config file at path. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a config; file names it in error positions. It decodes
// strictly (unknown keys are errors, except inside source, sink and
// transforms, whose keys Component.Decode checks later), expands ${VAR} and
// ${VAR:default} in string values, fills defaults and validates. On failure
// the error is Errors, every problem found, sorted by position; unless the
// YAML itself does not parse, the config decoded so far is returned with it,
// so callers can go on to check the components and report all at once.
func Parse(file string, data []byte) (*Config, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, syntaxError(file, err)
	}
	var body ast.Node
	var errs Errors
	for _, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		if body != nil {
			errs.add(nodePos(file, doc.Body), "a config file holds one YAML document; found another here")
			continue
		}
		body = doc.Body
	}

	cfg := &Config{Path: file}
	d := newDecoder(file, collectAnchors(body))
	d.errs = errs
	if body != nil {
		d.decode(body, reflect.ValueOf(cfg).Elem(), "")
	}
	for i := range cfg.Connectors {
		cfg.Connectors[i].Pos = d.at(connectorPath(i), Position{File: file, Line: 1, Column: 1})
	}
	if body != nil {
		d.setWritten(body, cfg)
	}
	applyDefaults(cfg, d.spans)
	v := &validator{file: file, spans: d.spans, failed: d.failed, errs: &d.errs}
	v.config(cfg)
	// The config decoded as far as it could be comes back with the errors,
	// so a caller can check its components too and report everything in
	// one go (connectd validate). Only a YAML syntax error returns no
	// config.
	return cfg, d.errs.err()
}

// at is where path's value starts, else fallback.
func (d *decoder) at(path string, fallback Position) Position {
	if s, ok := d.spans[path]; ok {
		return s.Value
	}
	return fallback
}

// syntaxError turns a goccy/go-yaml parse error into the FILE:LINE:COL
// format of every other config problem. The parser stops at its first
// syntax error, so there is one.
func syntaxError(file string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		return Errors{{Pos: Position{File: file, Line: p.Line, Column: p.Column}, Msg: "YAML syntax error: " + ye.GetMessage()}}
	}
	return Errors{{Pos: Position{File: file}, Msg: "YAML syntax error: " + err.Error()}}
}

func nodePos(file string, n ast.Node) Position {
	return newDecoder(file, nil).pos(n)
}
