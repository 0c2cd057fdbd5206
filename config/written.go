package config

import (
	"encoding/json"

	"github.com/goccy/go-yaml/ast"
)

// setWritten fills each connector's Written from the file's AST: the
// definition as the operator wrote it, as JSON, with merge keys and
// aliases resolved but ${VAR} and ${file:} references not expanded. Cluster
// mode seeds the config topic with it, so a secret read from a member's
// environment is stored as its reference, never as its value. It runs only
// on a config that decoded without errors (a broken one is not seeded).
func (d *decoder) setWritten(body ast.Node, cfg *Config) {
	m, ok := d.resolve(body).(*ast.MappingNode)
	if !ok || len(d.errs) > 0 {
		return
	}
	for _, e := range d.entries(m) {
		if e.key != "connectors" {
			continue
		}
		seq, ok := d.resolve(e.value).(*ast.SequenceNode)
		if !ok || len(seq.Values) != len(cfg.Connectors) {
			return
		}
		for i, n := range seq.Values {
			raw, err := json.Marshal(d.generic(n, connectorPath(i), false))
			if err == nil {
				cfg.Connectors[i].Written = raw
			}
		}
	}
}
