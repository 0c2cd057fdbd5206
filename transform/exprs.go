package transform

import (
	"errors"

	"github.com/expr-lang/expr"

	"github.com/connectd/connectd/connector"
)

// Exprs is a list of record expressions that a stateful stage (package
// window) evaluates together on each record: the record's JSON value is
// decoded once for all of them, not once per expression. The expressions
// see the same environment as filter and route.
type Exprs struct {
	list                        []*recordExpr
	usesValue, usesRaw, usesHdr bool
}

// Add compiles source and appends it; its index is the position of its
// result in Eval's output. A compile error is a *FieldError of field.
func (x *Exprs) Add(field, source string) (int, error) {
	// Any result type: the stage checks the result per record (a time
	// may be a number or an RFC 3339 string).
	e, err := compileRecordExpr(source, expr.Env(recordEnv{}))
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return 0, fieldErr(field, fe.Err)
		}
		return 0, fieldErr(field, err)
	}
	x.list = append(x.list, e)
	x.usesValue = x.usesValue || e.usesValue
	x.usesRaw = x.usesRaw || e.usesRaw
	x.usesHdr = x.usesHdr || e.usesHeaders
	return len(x.list) - 1, nil
}

// Len is the number of expressions.
func (x *Exprs) Len() int { return len(x.list) }

// Eval evaluates every expression on r into out (len(out) >= Len()). The
// first failing expression's error is returned; it names the expression.
func (x *Exprs) Eval(r *connector.Record, out []any) error {
	env, jsonErr := newRecordEnv(r, x.usesValue, x.usesRaw, x.usesHdr)
	for i, e := range x.list {
		v, err := e.run(env, jsonErr)
		if err != nil {
			return err
		}
		out[i] = v
	}
	return nil
}
