package connector

import "context"

// Source reads records for one connector. The coordinator, not the source,
// decides where reading resumes (as in Conduit's Source.Open(lastPosition)):
// it calls Seek with the last committed checkpoint at start and after every
// abort, so a batch is always re-read, never retried from memory.
type Source interface {
	// Poll returns up to max records. It blocks until at least one record
	// is available or ctx is done; on ctx's deadline it returns what it has
	// (possibly nothing) and a nil error.
	Poll(ctx context.Context, max int) ([]*Record, error)
	// Seek makes the next Poll start at cp. Partitions cp does not name
	// resume from the source's own default (the beginning for a generator).
	Seek(cp Checkpoint)
	// Close releases the source's resources.
	Close()
}
