package component

import (
	"context"

	"github.com/connectd/connectd/connector"
)

// WindowProbe is a Probe that can also read a windowed connector's output
// (a window stage before the sink, WindowState set): each result with what
// the sink stored of its value, so the checker (package verify) compares
// values, not only event IDs, with the batch oracle's. A sink without one
// cannot be checked with a window stage.
type WindowProbe interface {
	Probe
	// Windows reads the outputs (results and dead letters) with the same
	// arguments and the same consistency as Snapshot. The snapshot's
	// State stays usable until the probe is closed.
	Windows(ctx context.Context, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool) (WindowSnapshot, error)
}

// WindowSnapshot is what a WindowProbe read.
type WindowSnapshot struct {
	// Checkpoint is the sink's, when asked withCheckpoint.
	Checkpoint connector.Checkpoint
	Outputs    []WindowOutput
	// State is the store the sink keeps the window stage's state in: the
	// oracle replays the watermark advances it logged (idle partitions).
	State connector.StateStore
	// Letters is the Dest of a late record's dead letter; results go to
	// Probe.Route of the result record.
	Letters string
	// LaterVisible: outputs of batches committed after the checkpoint
	// may be visible (the checkpoint was read apart from the output).
	LaterVisible bool
	// ApplyCountViolations, from the sink's test apply counters, where
	// the read itself counts them.
	ApplyCountViolations int
}

// WindowOutput is one output a sink holds.
type WindowOutput struct {
	Dest   string            // where: a topic, table or audit target, as Probe.Route names it
	ID     string            // its event ID
	Origin *connector.Origin // nil: the sink does not keep it
	Stored *StoredResult     // nil: nothing of the value to compare
}

// StoredResult is what a sink keeps of a result: the whole value, or some
// of its fields, and (Kafka) the record key and timestamp.
type StoredResult struct {
	Whole  []byte
	Key    []byte
	HasKey bool
	TsMs   int64
	HasTs  bool
	Fields map[string]StoredField
	// AllFields: Fields holds the whole result, one field each, so an
	// expected field it lacks differs too.
	AllFields bool
}

// StoredField is one result field as a sink keeps it: JSON text (a jsonb
// column), or a leaf: a string's characters, a number's digits (a text,
// numeric or bigint column, a Redis field). Text nil is SQL NULL.
type StoredField struct {
	Text *string
	JSON bool
}
