package transform

import (
	"fmt"
	"strconv"

	"github.com/connectd/connectd/connector"
)

// Chain applies transforms in order; it is itself a Transform.
type Chain []Transform

// Apply runs every transform on every output of the one before it.
//
// Event IDs: if one input ends up as n > 1 outputs, the i-th output's EventID
// is "<input EventID>/<i>", whatever the transforms set, so each output is
// unique and the same on replay. With exactly one output the EventID is the
// input's. An empty chain returns a copy of the input.
//
// A failure is returned as a *RecordError naming the transform and the
// record's origin; no partial output is returned with it, so the caller
// dead-letters or fails the whole input record.
func (c Chain) Apply(in *connector.Record) ([]*connector.Record, error) {
	recs := []*connector.Record{in}
	for i, t := range c {
		var next []*connector.Record
		for _, r := range recs {
			out, err := t.Apply(r)
			if err != nil {
				return nil, &RecordError{Transform: nameOf(t), Index: i, Origin: in.Origin, Err: err}
			}
			next = append(next, out...)
		}
		recs = next
	}
	if len(c) == 0 {
		recs = []*connector.Record{in.Clone()}
	}
	switch len(recs) {
	case 0:
	case 1:
		recs[0].EventID = in.EventID
	default:
		for i, r := range recs {
			r.EventID = in.EventID + "/" + strconv.Itoa(i)
		}
	}
	return recs, nil
}

// AppendApply is Apply for callers that collect a batch's outputs in one
// slice: it appends in's outputs to dst (dst unchanged on error). An empty
// chain appends in itself rather than a copy, so an identity pipeline
// allocates nothing per record here: the copy Apply makes only protects
// the input from transforms, and nothing after the chain (sinks, commit
// protocols, the checker) modifies a record.
func (c Chain) AppendApply(dst []*connector.Record, in *connector.Record) ([]*connector.Record, error) {
	if len(c) == 0 {
		return append(dst, in), nil
	}
	out, err := c.Apply(in)
	if err != nil {
		return dst, err
	}
	return append(dst, out...), nil
}

// RecordError is a record that a transform in a chain could not handle. The
// connector's error policy decides between failing and dead-lettering it.
type RecordError struct {
	Transform string           // type name of the failing transform, e.g. "set"
	Index     int              // its position in the chain, from 0
	Origin    connector.Origin // where the input record was read
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("transform %d (%s): record %s: %v", e.Index, e.Transform, e.Origin, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

func nameOf(t Transform) string {
	if n, ok := t.(Named); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", t)
}
