package transform

import (
	"errors"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/valyala/fastjson"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/jsonpath"
)

// Exprs is a list of record expressions that a stateful stage (package
// window) evaluates together on each record: the record's JSON value is
// decoded once for all of them, not once per expression. The expressions
// see the same environment as filter and route.
//
// Expressions that are plain field paths (value.customer.id) are read
// straight from the JSON with a reusable fastjson parser, without decoding
// the whole value into maps or running the expression VM: for the window
// stage's usual time, key and aggregate fields this is most of the cost of
// a record. They give exactly what the expression would (an integral
// number as int, other numbers as float64, strings, bools, nil when
// missing); anything else (an object or array at the path, a value that is
// not JSON) goes the general way, so errors read the same.
type Exprs struct {
	list                        []*recordExpr
	paths                       [][]string // per expression: its value path, or nil
	usesValue, usesRaw, usesHdr bool
	general                     bool // some expression needs the full environment
	parser                      fastjson.Parser
}

// valuePath matches an expression that only reads one field of the value.
var valuePath = regexp.MustCompile(`^\s*value(\.[A-Za-z_][A-Za-z0-9_]*)+\s*$`)

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
	var path []string
	if valuePath.MatchString(source) {
		p, err := jsonpath.Parse(strings.TrimPrefix(strings.TrimSpace(source), "value."))
		if err != nil { // valuePath admits no empty segment
			return 0, fieldErr(field, err)
		}
		path = p.Segments()
	} else {
		x.general = true
	}
	x.list = append(x.list, e)
	x.paths = append(x.paths, path)
	x.usesValue = x.usesValue || e.usesValue
	x.usesRaw = x.usesRaw || e.usesRaw
	x.usesHdr = x.usesHdr || e.usesHeaders
	return len(x.list) - 1, nil
}

// Len is the number of expressions.
func (x *Exprs) Len() int { return len(x.list) }

// Eval evaluates every expression on r into out (len(out) >= Len()). The
// first failing expression's error is returned; it names the expression.
// Eval is not safe for concurrent use (it reuses its parser).
func (x *Exprs) Eval(r *connector.Record, out []any) error {
	if !x.general && x.fast(r, out) {
		return nil
	}
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

// fast evaluates field paths on the parsed value; false sends the record
// the general way.
func (x *Exprs) fast(r *connector.Record, out []any) bool {
	v, err := x.parser.ParseBytes(r.Value)
	if err != nil {
		return false
	}
	for i, path := range x.paths {
		f := v.Get(path...)
		if f == nil {
			out[i] = nil
			continue
		}
		switch f.Type() {
		case fastjson.TypeNumber:
			if n, err := f.Int64(); err == nil && int64(int(n)) == n {
				out[i] = int(n)
			} else if fl, err := f.Float64(); err == nil {
				out[i] = fl
			} else {
				return false
			}
		case fastjson.TypeString:
			out[i] = string(f.GetStringBytes())
		case fastjson.TypeTrue:
			out[i] = true
		case fastjson.TypeFalse:
			out[i] = false
		case fastjson.TypeNull:
			out[i] = nil
		default:
			return false
		}
	}
	return true
}
