package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a config file, positioned so an editor or CI log
// can jump to it.
type Error struct {
	Pos Position
	Msg string
}

// Error formats the problem as FILE:LINE:COL: message, the convention of
// compilers and linters.
func (e *Error) Error() string {
	return e.Pos.String() + ": " + e.Msg
}

// String formats the position as FILE:LINE:COL. Parts that are unknown are
// left out rather than printed as zero.
func (p Position) String() string {
	switch {
	case p.Line == 0 && p.File == "":
		return "<unknown>"
	case p.Line == 0:
		return p.File
	case p.File == "":
		return fmt.Sprintf("%d:%d", p.Line, p.Column)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Errors is every problem found in a config, sorted by position. Loading
// reports them all at once so a user fixes a file in one pass instead of one
// error per run.
type Errors []*Error

// Error prints one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual *Error values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// add records a problem at pos.
func (es *Errors) add(pos Position, format string, args ...any) {
	*es = append(*es, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil when there are no problems, so callers never hold a
// non-nil error interface wrapping an empty Errors, and otherwise the
// problems sorted by position (problems at one position stay in the order
// found) with exact duplicates removed (an aliased YAML node decoded twice
// reports the same problem twice).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	seen := make(map[Error]bool, len(es))
	out := make(Errors, 0, len(es))
	for _, e := range es {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
		)
	})
	return out
}

// Merge combines positioned errors (Errors or *Error) from several checks
// into one Errors, sorted and without duplicates; nil errors are skipped. An
// error without a position is kept as a problem with an empty position.
func Merge(errs ...error) error {
	var all Errors
	for _, err := range errs {
		var ce Errors
		var e *Error
		switch {
		case err == nil:
		case errors.As(err, &ce):
			all = append(all, ce...)
		case errors.As(err, &e):
			all = append(all, e)
		default:
			all = append(all, &Error{Msg: err.Error()})
		}
	}
	return all.err()
}
