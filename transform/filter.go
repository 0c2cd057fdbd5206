package transform

import (
	"fmt"

	"github.com/expr-lang/expr"

	"github.com/connectd/connectd/connector"
)

func init() {
	Register(Spec{
		Name:    "filter",
		Summary: "Keep records for which a boolean expression is true; drop the rest.",
		Fields: []Field{{
			Name: "expr", Type: "string", Required: true,
			Description: "expr-lang boolean expression over key, value (parsed JSON or nil), raw, headers, topic, partition, offset, timestamp (unix ms), event_id.",
		}},
		Build: buildFilter,
	})
}

type filterConfig struct {
	Expr string `yaml:"expr"`
}

type filter struct{ e *recordExpr }

func buildFilter(decode func(any) error) (Transform, error) {
	var c filterConfig
	if err := decode(&c); err != nil {
		return nil, err
	}
	e, err := compileRecordExpr(c.Expr, expr.AsBool())
	if err != nil {
		return nil, err
	}
	return filter{e: e}, nil
}

func (filter) Name() string { return "filter" }

func (f filter) Apply(in *connector.Record) ([]*connector.Record, error) {
	out, err := f.e.eval(in)
	if err != nil {
		return nil, err
	}
	keep, ok := out.(bool)
	if !ok {
		// AsBool checks at compile time only when the type is known there;
		// `value.flag` is only known at run time.
		return nil, fmt.Errorf("expr %q gave %T, not bool", f.e.source, out)
	}
	if !keep {
		return nil, nil
	}
	return []*connector.Record{in.Clone()}, nil
}
