package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestKindOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want CommitErrorKind
	}{
		{"abortable", NewCommitError(Abortable, "produce", base), Abortable},
		{"fenced", NewCommitError(Fenced, "commit", base), Fenced},
		{"commit unknown", NewCommitError(CommitUnknown, "commit", base), CommitUnknown},
		{"fatal", NewCommitError(Fatal, "process", base), Fatal},
		{"wrapped with %w", fmt.Errorf("batch 3: %w", NewCommitError(Fenced, "commit", base)), Fenced},
		{"joined", errors.Join(errors.New("retry timeout"), NewCommitError(Abortable, "x", base)), Abortable},
		{"outermost commit error wins", NewCommitError(Fatal, "process", NewCommitError(Abortable, "inner", base)), Fatal},
		{"unclassified", base, CommitUnknown},
		{"context deadline", context.DeadlineExceeded, CommitUnknown},
		{"record error alone", &RecordError{Stage: "event_id", Err: base}, CommitUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

func TestCommitErrorKindString(t *testing.T) {
	tests := map[CommitErrorKind]string{
		Abortable:     "abortable",
		Fenced:        "fenced",
		CommitUnknown: "commit_unknown",
		Fatal:         "fatal",
		0:             "unknown_kind",
		Fatal + 1:     "unknown_kind",
	}
	for k, want := range tests {
		if got := k.String(); got != want {
			t.Errorf("CommitErrorKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestCommitErrorWrapping(t *testing.T) {
	base := errors.New("disk full")
	err := NewCommitError(Abortable, "produce", base)
	var ce *CommitError
	if !errors.As(err, &ce) {
		t.Fatalf("NewCommitError returned %T, want *CommitError", err)
	}
	if ce.Kind != Abortable || ce.Op != "produce" || ce.Err != base {
		t.Errorf("fields %+v", ce)
	}
	if !errors.Is(err, base) || ce.Unwrap() != base {
		t.Error("CommitError does not unwrap to its cause")
	}
	if got, want := err.Error(), "produce (abortable): disk full"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if NewCommitError(Fatal, "x", nil) != nil {
		t.Error("NewCommitError of a nil error is not nil")
	}

	re := &RecordError{Origin: Origin{"orders", 2, 41}, Stage: "event_id", Err: base}
	if got, want := re.Error(), "record orders/2/41: event_id: disk full"; got != want {
		t.Errorf("RecordError.Error() = %q, want %q", got, want)
	}
	if !errors.Is(NewCommitError(Fatal, "process", re), base) {
		t.Error("a CommitError around a RecordError does not unwrap to the cause")
	}
}

func TestCheckpointAdvance(t *testing.T) {
	a0, a1, b0 := TopicPartition{"a", 0}, TopicPartition{"a", 1}, TopicPartition{"b", 0}
	tests := []struct {
		name    string
		origins []Origin
		want    Checkpoint
	}{
		{"empty", nil, Checkpoint{}},
		{"next is last plus one", []Origin{{"a", 0, 0}, {"a", 0, 1}, {"a", 0, 2}}, Checkpoint{a0: 3}},
		{"never goes back", []Origin{{"a", 0, 9}, {"a", 0, 4}}, Checkpoint{a0: 10}},
		{"gaps (compacted or transaction markers)", []Origin{{"a", 0, 5}, {"a", 0, 8}}, Checkpoint{a0: 9}},
		{"per partition", []Origin{{"a", 0, 1}, {"b", 0, 7}, {"a", 1, 0}, {"a", 0, 2}}, Checkpoint{a0: 3, a1: 1, b0: 8}},
		{"runs of partitions, as a poll returns them", []Origin{{"a", 0, 4}, {"a", 0, 5}, {"a", 1, 9}, {"b", 0, 2}, {"b", 0, 3}, {"a", 0, 6}}, Checkpoint{a0: 7, a1: 10, b0: 4}},
		{"same partition number, another topic", []Origin{{"a", 0, 4}, {"b", 0, 1}, {"a", 0, 2}}, Checkpoint{a0: 5, b0: 2}},
		{"a run going back", []Origin{{"a", 0, 9}, {"a", 0, 3}, {"a", 1, 0}}, Checkpoint{a0: 10, a1: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := Checkpoint{}
			var recs []*Record
			for _, o := range tt.origins {
				cp.Advance(o)
				recs = append(recs, &Record{Origin: o})
			}
			if !mapsEqual(cp, tt.want) {
				t.Errorf("Advance: got %v, want %v", cp, tt.want)
			}
			cp = Checkpoint{}
			cp.AdvanceRecords(recs)
			if !mapsEqual(cp, tt.want) {
				t.Errorf("AdvanceRecords: got %v, want %v", cp, tt.want)
			}
		})
	}
}

func mapsEqual(a, b Checkpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestCheckpointPartitionsOrder(t *testing.T) {
	cp := Checkpoint{
		{"b", 0}: 1, {"a", 10}: 1, {"a", 2}: 1, {"ab", 0}: 1, {"a", 0}: 1, {"B", 3}: 1,
	}
	want := []TopicPartition{{"B", 3}, {"a", 0}, {"a", 2}, {"a", 10}, {"ab", 0}, {"b", 0}}
	for range 10 { // map order varies between runs
		if got := cp.Partitions(); !slices.Equal(got, want) {
			t.Fatalf("Partitions() = %v, want %v", got, want)
		}
	}
	if got := (Checkpoint{}).Partitions(); len(got) != 0 {
		t.Errorf("empty checkpoint has partitions %v", got)
	}
}

func TestCheckpointContains(t *testing.T) {
	cp := Checkpoint{{"a", 0}: 5, {"b", 1}: 0}
	tests := []struct {
		o    Origin
		want bool
	}{
		{Origin{"a", 0, 0}, true},
		{Origin{"a", 0, 4}, true},
		{Origin{"a", 0, 5}, false}, // the next offset to read is not yet covered
		{Origin{"a", 0, 6}, false},
		{Origin{"a", 1, 0}, false}, // unknown partition
		{Origin{"c", 0, 0}, false}, // unknown topic
		{Origin{"b", 1, 0}, false}, // checkpoint 0 covers nothing
	}
	for _, tt := range tests {
		if got := cp.Contains(tt.o); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.o, got, tt.want)
		}
	}
}

func TestCheckpointMergeAndClone(t *testing.T) {
	cp := Checkpoint{{"a", 0}: 5, {"a", 1}: 7}
	clone := cp.Clone()
	cp.Merge(Checkpoint{{"a", 1}: 9, {"b", 0}: 2})
	want := Checkpoint{{"a", 0}: 5, {"a", 1}: 9, {"b", 0}: 2}
	if !mapsEqual(cp, want) {
		t.Errorf("merged %v, want %v", cp, want)
	}
	if !mapsEqual(clone, Checkpoint{{"a", 0}: 5, {"a", 1}: 7}) {
		t.Errorf("clone changed with the original: %v", clone)
	}
	// Merge takes other's value even when lower: an offsets reset moves a
	// checkpoint back.
	cp.Merge(Checkpoint{{"a", 0}: 1})
	if cp[TopicPartition{"a", 0}] != 1 {
		t.Errorf("merge kept %d, want other's 1", cp[TopicPartition{"a", 0}])
	}
	if got := (Checkpoint(nil)).Clone(); len(got) != 0 {
		t.Errorf("clone of nil = %v", got)
	}
}

func TestTopicPartitionAndOriginString(t *testing.T) {
	if got := (TopicPartition{"orders", 3}).String(); got != "orders/3" {
		t.Errorf("TopicPartition.String() = %q", got)
	}
	if got := (Origin{"generator:x", 0, 12}).String(); got != "generator:x/0/12" {
		t.Errorf("Origin.String() = %q", got)
	}
}

func TestRecordCloneIsIndependent(t *testing.T) {
	orig := &Record{
		Key:     []byte("k"),
		Value:   []byte(`{"a":1}`),
		Headers: []Header{{"event-id", []byte("e1")}, {"x", []byte("1")}},
		EventID: "e1",
		Origin:  Origin{"in", 1, 2},
		Topic:   "out",
	}
	c := orig.Clone()
	if string(c.Key) != "k" || string(c.Value) != `{"a":1}` || c.EventID != "e1" || c.Origin != orig.Origin || c.Topic != "out" || len(c.Headers) != 2 {
		t.Fatalf("clone differs: %+v", c)
	}
	c.Key[0] = 'K'
	c.Value[0] = '['
	c.Headers[0].Value[0] = 'E'
	c.Headers[1].Key = "y"
	c.SetHeader("new", []byte("v"))
	c.RemoveHeader("y")
	c.EventID, c.Topic = "e2", "other"

	if string(orig.Key) != "k" || string(orig.Value) != `{"a":1}` {
		t.Errorf("original key/value changed: %q %q", orig.Key, orig.Value)
	}
	want := []Header{{"event-id", []byte("e1")}, {"x", []byte("1")}}
	if !headersEqual(orig.Headers, want) {
		t.Errorf("original headers changed: %v", orig.Headers)
	}
	if orig.EventID != "e1" || orig.Topic != "out" {
		t.Errorf("original fields changed: %+v", orig)
	}

	// nil stays nil: a tombstone's value must not become empty-but-present.
	empty := (&Record{}).Clone()
	if empty.Key != nil || empty.Value != nil || empty.Headers != nil {
		t.Errorf("clone of an empty record: %+v", empty)
	}
}

func headersEqual(a, b []Header) bool {
	return slices.EqualFunc(a, b, func(x, y Header) bool {
		return x.Key == y.Key && string(x.Value) == string(y.Value)
	})
}

func TestRecordHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   []Header
		op   func(r *Record)
		want []Header
	}{
		{
			name: "set adds",
			in:   nil,
			op:   func(r *Record) { r.SetHeader("a", []byte("1")) },
			want: []Header{{"a", []byte("1")}},
		},
		{
			name: "set replaces every duplicate",
			in:   []Header{{"a", []byte("1")}, {"b", []byte("2")}, {"a", []byte("3")}},
			op:   func(r *Record) { r.SetHeader("a", []byte("9")) },
			want: []Header{{"b", []byte("2")}, {"a", []byte("9")}},
		},
		{
			name: "remove drops every duplicate",
			in:   []Header{{"a", []byte("1")}, {"b", []byte("2")}, {"a", []byte("3")}},
			op:   func(r *Record) { r.RemoveHeader("a") },
			want: []Header{{"b", []byte("2")}},
		},
		{
			name: "remove missing is a no-op",
			in:   []Header{{"b", []byte("2")}},
			op:   func(r *Record) { r.RemoveHeader("a") },
			want: []Header{{"b", []byte("2")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Record{Headers: slices.Clone(tt.in)}
			tt.op(r)
			if !headersEqual(r.Headers, tt.want) {
				t.Errorf("headers %v, want %v", r.Headers, tt.want)
			}
		})
	}

	r := &Record{Headers: []Header{{"id", []byte("first")}, {"id", []byte("last")}}}
	if v, ok := r.Header("id"); !ok || string(v) != "last" {
		t.Errorf("Header(id) = %q, %v; want the last value", v, ok)
	}
	if _, ok := r.Header("nope"); ok {
		t.Error("Header of a missing key reports ok")
	}
}

// BenchmarkCheckpointAdvance compares a batch's checkpoint kept record by
// record (Advance) with AdvanceRecords, on a poll's shape: 12 partitions,
// each a run of records in offset order.
func BenchmarkCheckpointAdvance(b *testing.B) {
	const parts, perPart = 12, 400
	var recs []*Record
	for p := range int32(parts) {
		for o := range int64(perPart) {
			recs = append(recs, &Record{Origin: Origin{Topic: "orders", Partition: p, Offset: o}})
		}
	}
	b.Run("per record", func(b *testing.B) {
		for b.Loop() {
			cp := Checkpoint{}
			for _, r := range recs {
				cp.Advance(r.Origin)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
	b.Run("runs", func(b *testing.B) {
		for b.Loop() {
			Checkpoint{}.AdvanceRecords(recs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
}
