package window

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/connectd/connectd/connector"
)

// eventTime is the record's event time in unix ms: the time expression's
// value (unix ms, or an RFC 3339 string) or the record timestamp.
func (s *Spec) eventTime(r *connector.Record, vals []any) (int64, error) {
	if s.timeIdx < 0 {
		if r.Timestamp.IsZero() {
			return 0, fmt.Errorf("window: the record has no timestamp (set time: to an expression)")
		}
		return r.Timestamp.UnixMilli(), nil
	}
	switch v := vals[s.timeIdx].(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("window: event time is %v", v)
		}
		return int64(v), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return 0, fmt.Errorf("window: event time %q is neither unix milliseconds nor RFC 3339", v)
		}
		return t.UnixMilli(), nil
	case nil:
		return 0, fmt.Errorf("window: the event time expression gave null")
	default:
		return 0, fmt.Errorf("window: event time is a %T, not unix milliseconds or an RFC 3339 string", v)
	}
}

// groupKey is the grouping key: the key expression's value as a string,
// or the record key.
func (s *Spec) groupKey(r *connector.Record, vals []any) (string, error) {
	if s.keyIdx < 0 {
		if r.Key == nil {
			return "", fmt.Errorf("window: the record has no key to group by (set key: to an expression)")
		}
		return string(r.Key), nil
	}
	switch v := vals[s.keyIdx].(type) {
	case string:
		return v, nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case nil:
		return "", fmt.Errorf("window: the grouping key expression gave null")
	default:
		return "", fmt.Errorf("window: the grouping key is a %T, not a string or number", v)
	}
}

// number converts an aggregated expression's value.
func number(v any) (float64, error) {
	switch n := v.(type) {
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("gave %v", n)
		}
		return n, nil
	case nil:
		return 0, fmt.Errorf("gave null, not a number")
	default:
		return 0, fmt.Errorf("gave a %T, not a number", v)
	}
}

// Eval evaluates a record's event time, grouping key and aggregated
// values (one per Agg; count's is 1) without touching any state: for the
// batch oracle of `connectd verify`, which recomputes the windows on its
// own and must read records exactly as the stage does.
func (s *Spec) Eval(r *connector.Record) (t int64, key string, vals []float64, err error) {
	raw := make([]any, s.exprs.Len())
	if err = s.exprs.Eval(r, raw); err != nil {
		return 0, "", nil, err
	}
	if t, err = s.eventTime(r, raw); err != nil {
		return 0, "", nil, err
	}
	if key, err = s.groupKey(r, raw); err != nil {
		return 0, "", nil, err
	}
	vals = make([]float64, len(s.Aggs))
	for i, a := range s.Aggs {
		if a.idx < 0 {
			vals[i] = 1
			continue
		}
		if vals[i], err = number(raw[a.idx]); err != nil {
			return 0, "", nil, fmt.Errorf("aggregate %s: %s(%s): %w", a.Name, a.Func, a.Expr, err)
		}
	}
	return t, key, vals, nil
}
