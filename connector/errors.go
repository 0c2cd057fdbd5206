package connector

import (
	"errors"
	"fmt"
)

// CommitErrorKind classifies why a batch did not commit. The kinds are
// handled differently by the coordinator, so a protocol must pick the right
// one; when in doubt it must choose CommitUnknown, never Abortable.
type CommitErrorKind int

const (
	// Abortable: the batch was aborted and nothing of it is visible. The
	// coordinator rewinds to the last committed checkpoint and re-reads.
	// Examples: a produce error, a rebalance during the batch, a
	// serialization failure (SQLSTATE 40001) in a database sink.
	Abortable CommitErrorKind = iota + 1
	// Fenced: a newer owner holds the work (a newer producer epoch or group
	// generation). This session must stop and rejoin; retrying with the old
	// session can never succeed, and must not be attempted.
	Fenced
	// CommitUnknown: the commit may or may not have applied (a timeout or a
	// dropped connection during the commit). The outcome is never assumed:
	// the protocol re-establishes its session (which aborts anything still
	// open) and the coordinator resumes from the checkpoint re-read from
	// where it is stored, which tells what happened.
	CommitUnknown
	// Fatal: retrying cannot help (bad configuration, a record the policy
	// says must fail the connector). The connector goes to FAILED.
	Fatal
)

func (k CommitErrorKind) String() string {
	switch k {
	case Abortable:
		return "abortable"
	case Fenced:
		return "fenced"
	case CommitUnknown:
		return "commit_unknown"
	case Fatal:
		return "fatal"
	}
	return "unknown_kind"
}

// CommitError is a classified commit failure.
type CommitError struct {
	Kind CommitErrorKind
	Op   string // what was being done: "produce", "commit", "begin", ...
	Err  error
}

func (e *CommitError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Op, e.Kind, e.Err)
}

func (e *CommitError) Unwrap() error { return e.Err }

// NewCommitError wraps err with a kind; a nil err gives nil.
func NewCommitError(kind CommitErrorKind, op string, err error) error {
	if err == nil {
		return nil
	}
	return &CommitError{Kind: kind, Op: op, Err: err}
}

// KindOf returns the kind of err. An unclassified error counts as
// CommitUnknown: without proof that nothing applied, the coordinator must
// assume the worst and re-read.
func KindOf(err error) CommitErrorKind {
	var ce *CommitError
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return CommitUnknown
}

// RecordError is a record the pipeline could not handle (its event ID could
// not be derived, or a transform rejected it). It names the record's origin
// so an operator can find it.
type RecordError struct {
	Origin Origin
	Stage  string // "event_id" or "transform"
	Err    error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %s: %s: %v", e.Origin, e.Stage, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// ErrInstanceIDConflict marks an abort caused by another live process that
// joined the consumer group with this task's group.instance.id (two
// processes given one instance_id). The broker fences the older member;
// the commit protocols keep the output exactly-once meanwhile, but the two
// processes take the partitions from each other until one is stopped, so
// the status and the log must say it.
var ErrInstanceIDConflict = errors.New("instance_id conflict")
