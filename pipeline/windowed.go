package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/transform"
	"github.com/connectd/connectd/window"
)

// Dead-letter headers of a late record, beside Kafka Connect's.
const (
	HeaderLateReason    = "connectd.late.reason"
	HeaderLateWatermark = "connectd.late.watermark"
	HeaderLateWindow    = "connectd.late.window"
)

// decodeWindow decodes a `type: window` transform, which must be the last
// one: it is a stateful stage whose results are final per window, and the
// stateless transforms before it shape its input.
func decodeWindow(cc config.Connector, i int, tc config.Component) (*window.Spec, []error) {
	var errs []error
	if i != len(cc.Transforms)-1 {
		errs = append(errs, tc.FieldErrorf("type", "transforms[%d]: window must be the last transform (stateless transforms go before it)", i))
	}
	if cc.Source.Type != "kafka" && cc.Source.Type != "" {
		errs = append(errs, tc.FieldErrorf("type", "transforms[%d]: window needs a kafka source (its watermarks and state are kept per input partition), not %q", i, cc.Source.Type))
	}
	if len(cc.Sinks) > 0 {
		errs = append(errs, tc.FieldErrorf("type", "transforms[%d]: window is not supported with several sinks (sinks:) yet; use one sink", i))
	}
	var c window.Config
	if err := tc.Decode(&c); err != nil {
		return nil, append(errs, err)
	}
	spec, err := window.Compile(c)
	if err != nil {
		for _, e := range unjoin(err) {
			var fe *transform.FieldError
			if errors.As(e, &fe) {
				errs = append(errs, tc.FieldErrorf(fe.Field, "transforms[%d] (window): %s: %v", i, fe.Field, fe.Err))
			} else {
				errs = append(errs, tc.Errorf("transforms[%d] (window): %v", i, e))
			}
		}
		return nil, errs
	}
	if spec.Late == window.LateDeadLetter && cc.DeadLetterQueue == nil {
		errs = append(errs, tc.FieldErrorf("late", "transforms[%d] (window): late: dead_letter needs a dead_letter_queue topic; configure one or set late: drop", i))
	}
	return spec, errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Windowed is a task's processor when its connector has a window stage:
// the stateless Processor, then the window operator. It implements
// connector.Stateful; each task has its own (state is per partition).
type Windowed struct {
	*Processor
	op *window.Operator
	// closeStore closes a state store the processor owns (the Kafka
	// sink's, which has clients of its own); a PostgreSQL or Redis store
	// is the protocol's, closed by it.
	closeStore func()
}

// SetStops makes the stage part of a bounded run: when a partition's input
// up to its stop is in, its open windows close (window.Operator.SetStops).
func (w *Windowed) SetStops(stops connector.Checkpoint) { w.op.SetStops(stops) }

// Close closes the state store the processor owns, if any; the connector
// calls it when it stops.
func (w *Windowed) Close() {
	if w.closeStore != nil {
		w.closeStore()
	}
}

var (
	_ connector.Stateful     = (*Windowed)(nil)
	_ connector.IdleAdvancer = (*Windowed)(nil)
	_ connector.ResultsDue   = (*Windowed)(nil)
)

// DuePartitions names the partitions with closed windows the batch will
// emit (connector.ResultsDue).
func (w *Windowed) DuePartitions() []connector.TopicPartition { return w.op.DuePartitions() }

// AdvanceIdle applies the stage's idle_timeout (window.Operator.AdvanceIdle).
func (w *Windowed) AdvanceIdle(ctx context.Context, now time.Time, assigned func() map[connector.TopicPartition]int64) (connector.Checkpoint, error) {
	if !w.op.AdvancesWithoutInput() {
		return nil, nil
	}
	var held map[connector.TopicPartition]int64
	if assigned != nil {
		held = assigned()
	}
	return w.op.AdvanceIdle(ctx, now, held)
}

// NewWindowed returns the processor of one task: store reads the state the
// sink committed (nil keeps it in memory only, as verify's batch oracle
// does), namespace is where it lives (the connector's group).
func (p *Processor) NewWindowed(namespace string, store connector.StateStore) *Windowed {
	return &Windowed{Processor: p, op: window.New(p.window, p.connector, namespace, store)}
}

// Operator is the task's window operator (stats, watermarks).
func (w *Windowed) Operator() *window.Operator { return w.op }

// Process runs the stateless stages, then adds each surviving record to
// its windows. The window results come from Flush; what Process returns is
// only dead letters: records that failed a stage, and late records with
// late: dead_letter (with reason, watermark and window headers).
func (w *Windowed) Process(in []*connector.Record) ([]*connector.Record, error) {
	mid, err := w.Processor.Process(in)
	if err != nil {
		return nil, err
	}
	out := mid[:0]
	for _, r := range mid {
		if r.Topic != "" && r.Topic == w.dlqTopic {
			out = append(out, r) // already a dead letter
			continue
		}
		late, err := w.op.Add(r)
		switch {
		case errors.Is(err, window.ErrStateCap):
			return nil, err
		case err != nil:
			if w.dlqTopic == "" {
				return nil, &connector.RecordError{Origin: r.Origin, Stage: "window", Err: err}
			}
			out = append(out, w.deadLetter(r, r.EventID, "window", err))
		case late != nil && w.op.Spec().Late == window.LateDeadLetter:
			out = append(out, w.lateLetter(r, late))
		}
	}
	return out, nil
}

// lateLetter is a late record for the dead-letter topic: the record as the
// window saw it, with why it was late.
func (w *Windowed) lateLetter(r *connector.Record, late *window.Late) *connector.Record {
	d := w.deadLetter(r, r.EventID, "window", fmt.Errorf("late: event time %d is in window [%d, %d), closed at watermark %d",
		late.EventTime, late.Start, late.End, late.Watermark))
	d.Topic = w.lateTopic
	d.Headers = append(d.Headers,
		connector.Header{Key: HeaderLateReason, Value: []byte(lateReason(late))},
		connector.Header{Key: HeaderLateWatermark, Value: []byte(strconv.FormatInt(late.Watermark, 10))},
		connector.Header{Key: HeaderLateWindow, Value: []byte(strconv.FormatInt(late.Start, 10) + "-" + strconv.FormatInt(late.End, 10))},
	)
	return d
}

// lateReason is the connectd.late.reason header: "late" (closed by the
// partition's own watermark) or "idle" (closed by an idle advance).
func lateReason(l *window.Late) string {
	if l.Idle {
		return "idle"
	}
	return "late"
}

// WindowStatus reports the stage's counters (connector.WindowReporter).
func (w *Windowed) WindowStatus() connector.WindowStatus {
	st := &w.op.Stats
	return connector.WindowStatus{
		Aggregated:      st.Aggregated.Load(),
		Late:            st.Late.Load(),
		Emitted:         st.Emitted.Load(),
		OpenWindows:     st.OpenWindows.Load(),
		StateBytes:      st.StateBytes.Load(),
		Restores:        st.Restores.Load(),
		RestoredWindows: st.RestoredWindows.Load(),
		LastRestoreMS:   float64(st.LastRestore.Load()) / 1e6,
		IdleAdvances:    st.IdleAdvances.Load(),
		IdleLate:        st.IdleLate.Load(),
	}
}

// Prepare, Flush, Committed and Discard drive the operator's state
// (connector.Stateful).
func (w *Windowed) Prepare(ctx context.Context, recs []*connector.Record) error {
	return w.op.Prepare(ctx, recs)
}

// Flush returns the batch's window results and state records.
func (w *Windowed) Flush() ([]*connector.Record, error) { return w.op.Flush() }

// Committed marks the flushed state durable.
func (w *Windowed) Committed() { w.op.Committed() }

// Discard drops the in-memory state.
func (w *Windowed) Discard() { w.op.Discard() }
