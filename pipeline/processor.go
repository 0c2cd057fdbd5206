// Package pipeline assembles connectors from configuration: it picks the
// source, the sink and the commit protocol for a connector's guarantee, and
// builds the record processor (event IDs, transforms, dead-letter routing)
// that both the running connector and `connectd verify` use, so the checker
// recomputes exactly what the pipeline computes.
package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/idempotency"
	"github.com/connectd/connectd/transform"
	"github.com/connectd/connectd/window"
)

// Processor derives event IDs and runs the transform chain. A record that
// fails either step goes to the dead-letter topic when tolerance is "all"
// (as one more record of the same batch, so with exactly_once it commits or
// aborts with the batch), or fails the batch with a *connector.RecordError
// naming its origin when tolerance is "none". It is deterministic.
type Processor struct {
	connector string
	deriver   *idempotency.Deriver
	chain     transform.Chain
	dlqTopic  string // "" means errors.tolerance none
	dlq       atomic.Uint64

	// window is the connector's window stage, if any: each task runs it
	// in its own Windowed processor. lateTopic receives its late records
	// (late: dead_letter).
	window    *window.Spec
	lateTopic string
}

// Window returns the connector's window stage, or nil.
func (p *Processor) Window() *window.Spec { return p.window }

var _ connector.Processor = (*Processor)(nil)

// DeadLettered counts records routed to the dead-letter topic in batches
// processed so far (including batches that later aborted).
func (p *Processor) DeadLettered() uint64 { return p.dlq.Load() }

// Process implements connector.Processor. It sets each input's EventID.
func (p *Processor) Process(in []*connector.Record) ([]*connector.Record, error) {
	out := make([]*connector.Record, 0, len(in))
	ids := eventIDs{left: len(in)}
	for _, r := range in {
		id, err := ids.derive(p.deriver, r)
		if err != nil {
			var ide *idempotency.IDError
			if errors.As(err, &ide) { // it names the origin; RecordError does too
				err = ide.Err
			}
			if p.dlqTopic == "" {
				return nil, &connector.RecordError{Origin: r.Origin, Stage: "event_id", Err: err}
			}
			out = append(out, p.deadLetter(r, idempotency.DerivedID(r.Origin), "event_id", err))
			continue
		}
		r.EventID = id
		next, err := p.chain.AppendApply(out, r)
		if err != nil {
			stage, cause := "transform", err
			var te *transform.RecordError
			if errors.As(err, &te) { // name the transform once, not the origin twice
				stage, cause = fmt.Sprintf("transform %d (%s)", te.Index, te.Transform), te.Err
			}
			if p.dlqTopic == "" {
				return nil, &connector.RecordError{Origin: r.Origin, Stage: stage, Err: cause}
			}
			out = append(out, p.deadLetter(r, id, stage, cause))
			continue
		}
		out = next
	}
	return out, nil
}

// deadLetter returns the record to write to the dead-letter topic: the input
// unchanged, with Kafka Connect's error headers (connector.HeaderDLQ*). Its event ID is the input's
// (or the derived origin ID when the input's could not be derived), so a
// replayed batch writes the same DLQ record again, idempotently.
func (p *Processor) deadLetter(r *connector.Record, id, stage string, cause error) *connector.Record {
	p.dlq.Add(1)
	d := r.Clone()
	d.EventID = id
	d.Topic = p.dlqTopic
	msg := (&connector.RecordError{Origin: r.Origin, Stage: stage, Err: cause}).Error()
	d.Headers = append(d.Headers,
		connector.Header{Key: connector.HeaderDLQTopic, Value: []byte(r.Origin.Topic)},
		connector.Header{Key: connector.HeaderDLQPartition, Value: []byte(strconv.Itoa(int(r.Origin.Partition)))},
		connector.Header{Key: connector.HeaderDLQOffset, Value: []byte(strconv.FormatInt(r.Origin.Offset, 10))},
		connector.Header{Key: connector.HeaderDLQConnector, Value: []byte(p.connector)},
		connector.Header{Key: connector.HeaderDLQStage, Value: []byte(stage)},
		connector.Header{Key: connector.HeaderDLQMessage, Value: []byte(msg)},
	)
	return d
}

// eventIDs holds one batch's event IDs, appended into shared chunks: one
// allocation per chunk instead of a string per record. An ID is a string
// over its chunk's bytes, which are never written again once it is made
// (a later ID goes after it, or into a new chunk), so it is as immutable
// as any Go string. A chunk lives as long as any of its IDs; records, and
// so their IDs, are held for a batch and its commit.
type eventIDs struct {
	chunk []byte
	left  int // records of the batch still to derive, to size a chunk
}

// eventIDChunk is the most bytes of one chunk (about 500 derived IDs);
// a batch's last chunk is sized for the records left, at 32 bytes each.
const eventIDChunk = 16 << 10

func (e *eventIDs) derive(d *idempotency.Deriver, r *connector.Record) (string, error) {
	if cap(e.chunk)-len(e.chunk) < 128 {
		e.chunk = make([]byte, 0, min(eventIDChunk, max(256, 32*e.left)))
	}
	e.left--
	start := len(e.chunk)
	// A longer ID than the chunk has room for makes append copy the chunk
	// to a new one; the IDs already made keep the old one.
	chunk, err := d.AppendID(e.chunk, r)
	if err != nil {
		return "", err
	}
	e.chunk = chunk
	return unsafe.String(unsafe.SliceData(chunk[start:]), len(chunk)-start), nil
}
