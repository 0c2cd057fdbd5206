package transform

import (
	"fmt"

	"github.com/connectd/connectd/connector"
)

func init() {
	Register(Spec{
		Name:    "route",
		Summary: "Set the output topic to the string an expression gives.",
		Fields: []Field{{
			Name: "expr", Type: "string", Required: true,
			Description: "expr-lang string expression (same variables as filter); an empty result is a record error.",
		}},
		Build: buildRoute,
	})
}

type routeConfig struct {
	Expr string `yaml:"expr"`
}

type route struct{ e *recordExpr }

func buildRoute(decode func(any) error) (Transform, error) {
	var c routeConfig
	if err := decode(&c); err != nil {
		return nil, err
	}
	e, err := compileRecordExpr(c.Expr, stringKind)
	if err != nil {
		return nil, err
	}
	return route{e: e}, nil
}

func (route) Name() string { return "route" }

func (rt route) Apply(in *connector.Record) ([]*connector.Record, error) {
	out, err := rt.e.eval(in)
	if err != nil {
		return nil, err
	}
	topic, ok := out.(string)
	if !ok {
		return nil, fmt.Errorf("expr %q gave %T, not string", rt.e.source, out)
	}
	if topic == "" {
		// An empty Topic means "the sink's default", which would silently
		// undo the routing; treat it as a bad record instead.
		return nil, fmt.Errorf("expr %q gave an empty topic", rt.e.source)
	}
	r := in.Clone()
	r.Topic = topic
	return []*connector.Record{r}, nil
}
