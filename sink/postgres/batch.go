package postgres

import (
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/connectd/connectd/connector"
)

// item is one record to write and its column values.
type item struct {
	rec  *connector.Record
	vals row
}

// prepared is a batch split, before any mapping, into the records to write
// and the pipeline's dead letters.
type prepared struct {
	// recs are the records to write: with exactly_once deduplicated by
	// event ID and sorted by it.
	recs []*connector.Record
	dlq  []*connector.Record
	// stateRecs are the batch's StateRecords, not rows: entries of the
	// state table (state.go), turned into state before the write.
	stateRecs []*connector.Record
	state     *stateWrites
}

// split separates the pipeline's dead letters from the records to write.
// With exactly_once the records are deduplicated by event ID (do_nothing
// keeps the first, do_update the last: one statement may not touch a row
// twice, and a second touch would count as a re-application) and sorted by
// it, so concurrent writers lock rows in the same order and cannot deadlock
// each other. It needs only event IDs, so it runs before mapping and the
// mapping can stream.
func (s *Store) split(recs []*connector.Record) *prepared {
	p := &prepared{recs: make([]*connector.Record, 0, len(recs))}
	at := make(map[string]int, len(recs))
	for _, r := range recs {
		if r.Kind == connector.StateRecord {
			p.stateRecs = append(p.stateRecs, r)
			continue
		}
		if s.isDLQ(r) {
			p.dlq = append(p.dlq, r)
			continue
		}
		if !s.opts.ExactlyOnce {
			p.recs = append(p.recs, r)
			continue
		}
		if i, dup := at[r.EventID]; dup {
			if s.cfg.Conflict == DoUpdate {
				p.recs[i] = r
			}
			continue
		}
		at[r.EventID] = len(p.recs)
		p.recs = append(p.recs, r)
	}
	if s.opts.ExactlyOnce {
		slices.SortFunc(p.recs, func(a, b *connector.Record) int { return strings.Compare(a.EventID, b.EventID) })
	}
	return p
}

func (s *Store) isDLQ(r *connector.Record) bool {
	return s.opts.DLQTopic != "" && r.Topic == s.opts.DLQTopic
}

// mapped is the outcome of mapping some records: the rows, and the records
// that could not be mapped with why (dead letters with errors.tolerance
// all). err is set, and the rest empty, when a record cannot be mapped with
// errors.tolerance none: a Fatal error naming its origin.
type mapped struct {
	items    []item
	rejected []rejectedRow
	err      error
}

// parallelMapMin is the number of records from which they are mapped on
// every CPU: JSON extraction is most of the sink's own CPU time.
const parallelMapMin = 512

// mapRecords maps recs, in parallel for many (the mapper is stateless and
// each record independent), keeping their order.
func (s *Store) mapRecords(recs []*connector.Record) mapped {
	m := mapper{cols: s.cfg.cols}
	rows, errs := make([]row, len(recs)), make([]error, len(recs))
	mapRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := recs[i]
			rows[i], errs[i] = m.mapRecord(r)
			if errs[i] == nil {
				_, errs[i] = textString(column{name: EventIDColumn}, r.EventID)
			}
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if len(recs) < parallelMapMin || workers == 1 {
		mapRange(0, len(recs))
	} else {
		var wg sync.WaitGroup
		per := (len(recs) + workers - 1) / workers
		for lo := 0; lo < len(recs); lo += per {
			wg.Go(func() { mapRange(lo, min(lo+per, len(recs))) })
		}
		wg.Wait()
	}
	out := mapped{items: make([]item, 0, len(recs))}
	for i, r := range recs {
		if err := errs[i]; err != nil {
			if s.opts.DLQTopic == "" {
				return mapped{err: connector.NewCommitError(connector.Fatal, "map record",
					&connector.RecordError{Origin: r.Origin, Stage: "sink " + s.cfg.Table, Err: err})}
			}
			out.rejected = append(out.rejected, rejectedRow{r, err})
			continue
		}
		out.items = append(out.items, item{r, rows[i]})
	}
	return out
}

// streamChunk is the most records mapped ahead of each INSERT the
// exactly_once path sends: the server executes one chunk while the next is
// mapped, so the sink's own CPU time overlaps the database's instead of
// adding to it (see BenchmarkWrite). The first chunk is smaller
// (firstChunk), so the server starts sooner; the size doubles up to
// streamChunk.
const (
	firstChunk  = 256
	streamChunk = 1024
)

// mapAhead maps recs chunk by chunk on another goroutine, in order, each
// chunk onto the returned channel as soon as it is mapped. done stops the
// mapping and waits for the goroutine to end; call it before returning.
func (s *Store) mapAhead(recs []*connector.Record) (chunks <-chan mapped, done func()) {
	out := make(chan mapped, len(recs)/firstChunk+1)
	stop := make(chan struct{})
	go func() {
		defer close(out)
		chunk := firstChunk
		for lo := 0; lo < len(recs); lo += chunk {
			select {
			case <-stop:
				return
			default:
			}
			if lo > 0 {
				chunk = min(2*chunk, streamChunk)
			}
			m := s.mapRecords(recs[lo:min(lo+chunk, len(recs))])
			out <- m
			if m.err != nil {
				return
			}
		}
	}()
	return out, func() {
		close(stop)
		for range out { // the chunk being mapped, if any
		}
	}
}

// deadLetters returns the dead-letter records of a batch: the pipeline's,
// then those the sink rejected, with their errors added to errs.
func deadLetters(pipeline []*connector.Record, rejected []rejectedRow, errs map[*connector.Record]error) []*connector.Record {
	out := append([]*connector.Record(nil), pipeline...)
	for _, r := range rejected {
		out = append(out, r.rec)
		errs[r.rec] = r.err
	}
	return out
}
