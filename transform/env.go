package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/connectd/connectd/connector"
)

// recordEnv is what filter and route expressions see. A struct rather than a
// map lets expr check names at compile time, so a typo such as `vaule` is a
// Build error instead of a record error on every record.
type recordEnv struct {
	Key       string            `expr:"key"`
	Value     any               `expr:"value"`   // parsed JSON value; nil if the value is not JSON
	Raw       string            `expr:"raw"`     // the value as a string
	Headers   map[string]string `expr:"headers"` // a missing header reads as ""; use `"h" in headers` to test presence
	Topic     string            `expr:"topic"`   // origin topic
	Partition int               `expr:"partition"`
	Offset    int               `expr:"offset"`
	Timestamp int               `expr:"timestamp"` // unix millis; 0 if unset
	EventID   string            `expr:"event_id"`
}

// recordExpr is a compiled expression plus which costly parts of the
// environment it reads, so records are only JSON-parsed when needed.
type recordExpr struct {
	source      string
	program     *vm.Program
	usesValue   bool
	usesRaw     bool
	usesHeaders bool
}

// compileRecordExpr compiles source against recordEnv. want is the result
// option (expr.AsBool(), expr.AsKind(reflect.String)); expr rejects a
// mismatching result type at compile time where it can know it.
func compileRecordExpr(source string, want expr.Option) (*recordExpr, error) {
	if source == "" {
		return nil, fieldErr("expr", fmt.Errorf("is required"))
	}
	p, err := expr.Compile(source, expr.Env(recordEnv{}), want)
	if err != nil {
		return nil, fieldErr("expr", fmt.Errorf("%q does not compile: %w", source, err))
	}
	re := &recordExpr{source: source, program: p}
	node := p.Node()
	ast.Walk(&node, identVisitor(func(name string) {
		switch name {
		case "value":
			re.usesValue = true
		case "raw":
			re.usesRaw = true
		case "headers":
			re.usesHeaders = true
		}
	}))
	return re, nil
}

type identVisitor func(name string)

func (f identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		f(id.Value)
	}
}

// eval runs the expression on r. When the expression reads `value` and the
// value is not JSON, `value` is nil; an expression that then fails (e.g. on
// `value.amount`) reports ErrNotJSON so the record is classified correctly.
func (e *recordExpr) eval(r *connector.Record) (any, error) {
	env, jsonErr := newRecordEnv(r, e.usesValue, e.usesRaw, e.usesHeaders)
	return e.run(env, jsonErr)
}

// newRecordEnv builds the environment of r, with only the costly parts
// asked for. jsonErr says why value is nil when it was asked for.
func newRecordEnv(r *connector.Record, value, raw, headers bool) (env recordEnv, jsonErr error) {
	env = recordEnv{
		Key:       string(r.Key),
		Topic:     r.Origin.Topic,
		Partition: int(r.Origin.Partition),
		Offset:    int(r.Origin.Offset),
		EventID:   r.EventID,
	}
	if !r.Timestamp.IsZero() {
		env.Timestamp = int(r.Timestamp.UnixMilli())
	}
	if raw {
		env.Raw = string(r.Value)
	}
	if headers {
		env.Headers = make(map[string]string, len(r.Headers))
		// Later headers win, as in Record.Header.
		for _, h := range r.Headers {
			env.Headers[h.Key] = string(h.Value)
		}
	}
	if value {
		v, err := decodeJSON(r.Value)
		if err != nil {
			jsonErr = err
		} else {
			env.Value = exprValue(v)
		}
	}
	return env, jsonErr
}

// run evaluates the expression in env.
func (e *recordExpr) run(env recordEnv, jsonErr error) (any, error) {
	out, err := expr.Run(e.program, env)
	if err != nil {
		msg := oneLine(err)
		if jsonErr != nil {
			return nil, fmt.Errorf("evaluating %q: %w (%s)", e.source, jsonErr, msg)
		}
		return nil, fmt.Errorf("evaluating %q: %s", e.source, msg)
	}
	return out, nil
}

// oneLine drops the multi-line source snippet expr adds to run-time errors:
// record errors end up in logs and dead-letter headers, where one line reads
// better, and the expression is quoted beside it anyway.
func oneLine(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fmt.Sprintf("%s at %d:%d", fe.Message, fe.Line, fe.Column)
	}
	return err.Error()
}

// exprValue turns json.Number into int when it is an integer that fits, else
// float64, so expressions can compare numbers naturally (`value.n > 5`);
// json.Number would compare as a string. Expressions only read the value, so
// the float rounding of huge numbers never reaches the output.
func exprValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = exprValue(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = exprValue(x)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil && int64(int(i)) == i {
			return int(i)
		}
		f, _ := t.Float64()
		return f
	default:
		return v
	}
}

var stringKind = expr.AsKind(reflect.String)
