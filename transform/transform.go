// Package transform defines the Transform interface, the registry through
// which transforms are found by name with their config spec, and connectd's
// built-in transforms. Transforms must be deterministic: after an abort the
// batch is re-read and recomputed, and a replay must give the same output.
package transform

import "github.com/connectd/connectd/connector"

// Transform maps one record to zero or more records.
//
// Apply must not modify in; it returns new records (use in.Clone()). It must be
// deterministic: the same input gives the same output on every call, on every
// instance. An error means this record cannot be handled by this transform;
// the connector's errors.tolerance decides whether it fails the connector or
// goes to the dead-letter queue.
type Transform interface {
	Apply(in *connector.Record) ([]*connector.Record, error)
}
