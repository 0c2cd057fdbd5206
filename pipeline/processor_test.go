package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/idempotency"
)

// parseConnector parses a config holding one connector whose body (the
// lines after "- name: c") is given, indented by four spaces.
func parseConnector(t *testing.T, body string) config.Connector {
	t.Helper()
	yaml := "kafka:\n  brokers: [localhost:9092]\nconnectors:\n  - name: c\n" + body
	cfg, err := config.Parse(t.Name()+".yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return cfg.Connectors[0]
}

const (
	toleranceNone = `    source: {type: kafka, topics: [in]}
    transforms:
      - type: set
        fields: {seen: true}
    sink: {type: kafka, topic: out}
`
	toleranceAll = `    errors.tolerance: all
    dead_letter_queue: {topic: dlq}
` + toleranceNone
)

func newProcessor(t *testing.T, body string) *Processor {
	t.Helper()
	p, err := NewProcessor(parseConnector(t, body))
	if err != nil {
		t.Fatalf("NewProcessor: %v", err)
	}
	return p
}

func rec(offset int64, id, value string) *connector.Record {
	r := &connector.Record{Key: []byte("k"), Value: []byte(value), Origin: connector.Origin{Topic: "in", Partition: 2, Offset: offset}}
	if id != "" {
		r.Headers = []connector.Header{{Key: "event-id", Value: []byte(id)}}
	}
	return r
}

func header(r *connector.Record, key string) string {
	v, ok := r.Header(key)
	if !ok {
		return "<missing>"
	}
	return string(v)
}

func TestProcessGoodRecords(t *testing.T) {
	for _, body := range []string{toleranceNone, toleranceAll} {
		p := newProcessor(t, body)
		in := []*connector.Record{rec(0, "e0", `{"a":1}`), rec(1, "e1", `{"a":2}`)}
		out, err := p.Process(in)
		if err != nil {
			t.Fatalf("Process: %v", err)
		}
		if len(out) != 2 {
			t.Fatalf("%d outputs, want 2", len(out))
		}
		for i, r := range out {
			wantID := fmt.Sprintf("e%d", i)
			if r.EventID != wantID || in[i].EventID != wantID {
				t.Errorf("output %d: event ID %q (input %q), want %q", i, r.EventID, in[i].EventID, wantID)
			}
			if want := fmt.Sprintf(`{"a":%d,"seen":true}`, i+1); string(r.Value) != want {
				t.Errorf("output %d: value %s, want %s", i, r.Value, want)
			}
			if r.Topic != "" {
				t.Errorf("output %d: topic %q, want the sink's default", i, r.Topic)
			}
		}
		if string(in[0].Value) != `{"a":1}` {
			t.Errorf("input value changed to %s", in[0].Value)
		}
		if p.DeadLettered() != 0 {
			t.Errorf("DeadLettered = %d", p.DeadLettered())
		}
	}
}

func TestProcessToleranceNone(t *testing.T) {
	tests := []struct {
		name      string
		in        []*connector.Record
		wantStage string
		wantCause string
		wantAt    connector.Origin
	}{
		{
			name:      "missing event ID header",
			in:        []*connector.Record{rec(7, "e7", `{}`), rec(8, "", `{}`)},
			wantStage: "event_id",
			wantCause: `event ID header "event-id" missing`,
			wantAt:    connector.Origin{Topic: "in", Partition: 2, Offset: 8},
		},
		{
			name:      "value not JSON for set",
			in:        []*connector.Record{rec(3, "e3", `not json`)},
			wantStage: "transform 0 (set)",
			wantCause: "value is not JSON",
			wantAt:    connector.Origin{Topic: "in", Partition: 2, Offset: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcessor(t, toleranceNone)
			out, err := p.Process(tt.in)
			if out != nil {
				t.Errorf("outputs %v returned with an error", out)
			}
			var re *connector.RecordError
			if !errors.As(err, &re) {
				t.Fatalf("Process error %v (%T), want a *connector.RecordError", err, err)
			}
			if re.Stage != tt.wantStage || re.Origin != tt.wantAt {
				t.Errorf("stage %q origin %s, want %q at %s", re.Stage, re.Origin, tt.wantStage, tt.wantAt)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantCause) || !strings.HasPrefix(msg, "record "+tt.wantAt.String()+": "+tt.wantStage+": ") {
				t.Errorf("message %q, want record %s: %s: ...%s", msg, tt.wantAt, tt.wantStage, tt.wantCause)
			}
			if p.DeadLettered() != 0 {
				t.Errorf("DeadLettered = %d with tolerance none", p.DeadLettered())
			}
		})
	}
}

func TestProcessTransformErrorNamesOriginOnce(t *testing.T) {
	p := newProcessor(t, toleranceNone)
	_, err := p.Process([]*connector.Record{rec(3, "e3", `not json`)})
	if err == nil {
		t.Fatal("no error")
	}
	if n := strings.Count(err.Error(), "in/2/3"); n != 1 {
		t.Errorf("message %q names the origin %d times, want once", err, n)
	}
	if n := strings.Count(err.Error(), "set"); n != 1 {
		t.Errorf("message %q names the transform %d times, want once", err, n)
	}
}

func TestProcessTransformStageNamesIndex(t *testing.T) {
	p := newProcessor(t, `    source: {type: kafka, topics: [in]}
    transforms:
      - type: filter
        expr: 'true'
      - type: rename
        fields: {a: b}
    sink: {type: kafka, topic: out}
`)
	_, err := p.Process([]*connector.Record{rec(0, "e0", `[1,2]`)})
	var re *connector.RecordError
	if !errors.As(err, &re) || re.Stage != "transform 1 (rename)" {
		t.Fatalf("error %v, want stage transform 1 (rename)", err)
	}
}

func TestProcessDeadLetters(t *testing.T) {
	tests := []struct {
		name      string
		in        *connector.Record
		wantID    string
		wantStage string
		wantCause string
	}{
		{
			name:      "event ID missing: the derived ID",
			in:        rec(8, "", `{"a":1}`),
			wantID:    idempotency.DerivedID(connector.Origin{Topic: "in", Partition: 2, Offset: 8}),
			wantStage: "event_id",
			wantCause: `event ID header "event-id" missing`,
		},
		{
			name:      "transform failure: the input's ID",
			in:        rec(9, "e9", `not json`),
			wantID:    "e9",
			wantStage: "transform 0 (set)",
			wantCause: "value is not JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcessor(t, toleranceAll)
			good := rec(1, "e1", `{"b":2}`)
			inputValue := string(tt.in.Value)
			out, err := p.Process([]*connector.Record{good, tt.in, rec(10, "e10", `{}`)})
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if len(out) != 3 {
				t.Fatalf("%d outputs, want 3 (good, dead letter, good)", len(out))
			}
			if out[0].EventID != "e1" || out[2].EventID != "e10" || out[0].Topic != "" || out[2].Topic != "" {
				t.Errorf("good records around the dead letter: %+v %+v", out[0], out[2])
			}
			d := out[1]
			if d.Topic != "dlq" {
				t.Errorf("dead letter topic %q, want dlq", d.Topic)
			}
			if d.EventID != tt.wantID {
				t.Errorf("dead letter event ID %q, want %q", d.EventID, tt.wantID)
			}
			if string(d.Value) != inputValue || string(d.Key) != "k" || d.Origin != tt.in.Origin {
				t.Errorf("dead letter %q/%q from %s, want the input %q/k from %s", d.Key, d.Value, d.Origin, inputValue, tt.in.Origin)
			}
			wantHeaders := map[string]string{
				connector.HeaderDLQTopic:     "in",
				connector.HeaderDLQPartition: "2",
				connector.HeaderDLQOffset:    fmt.Sprint(tt.in.Origin.Offset),
				connector.HeaderDLQConnector: "c",
				connector.HeaderDLQStage:     tt.wantStage,
			}
			for k, want := range wantHeaders {
				if got := header(d, k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			msg := header(d, connector.HeaderDLQMessage)
			if !strings.Contains(msg, tt.wantCause) || !strings.Contains(msg, tt.in.Origin.String()) {
				t.Errorf("header %s = %q, want the cause %q and the origin", connector.HeaderDLQMessage, msg, tt.wantCause)
			}
			// The input keeps its own headers, and the dead letter copies
			// them: the DLQ headers are added to the copy only.
			if id, ok := tt.in.Header("event-id"); ok && header(d, "event-id") != string(id) {
				t.Errorf("dead letter lost the event-id header")
			}
			if _, ok := tt.in.Header(connector.HeaderDLQStage); ok {
				t.Error("the input record got the DLQ headers")
			}
			if p.DeadLettered() != 1 {
				t.Errorf("DeadLettered = %d, want 1", p.DeadLettered())
			}

			// Deterministic: the same input processed again yields the
			// same dead letter (a replay after an abort).
			again, err := p.Process([]*connector.Record{tt.in})
			if err != nil || len(again) != 1 || again[0].EventID != d.EventID || header(again[0], connector.HeaderDLQMessage) != msg {
				t.Errorf("replay gave %v, %v; want the same dead letter", again, err)
			}
		})
	}
}

func TestTransactionalID(t *testing.T) {
	tests := []struct{ name, instance, want string }{
		{"orders", "host-1", "connectd-orders-host-1"},
		{"a.b_c", "i", "connectd-a.b_c-i"},
	}
	for _, tt := range tests {
		if got := TransactionalID(tt.name, tt.instance); got != tt.want {
			t.Errorf("TransactionalID(%q, %q) = %q, want %q", tt.name, tt.instance, got, tt.want)
		}
	}
	if TransactionalID("c", "a") == TransactionalID("c", "b") {
		t.Error("two instances share a transactional ID")
	}
	if TransactionalID("c", "a") == TransactionalID("d", "a") {
		t.Error("two connectors share a transactional ID")
	}
}

// A batch's event IDs share chunks: every ID stays what it was derived as
// after the rest of the batch is derived, across chunk boundaries, for IDs
// longer than a chunk, and after a record whose ID could not be derived.
func TestEventIDsSurviveTheirBatch(t *testing.T) {
	p := newProcessor(t, "    errors.tolerance: all\n    dead_letter_queue: {topic: dlq}\n    event_id: {from: header}\n"+
		"    source: {type: kafka, topics: [in]}\n    sink: {type: kafka, topic: out}\n")
	var in []*connector.Record
	var want []string
	for i := range 3000 {
		id := fmt.Sprintf("id-%d-%s", i, strings.Repeat("x", i%97))
		switch i {
		case 700:
			id = strings.Repeat("long", eventIDChunk) // longer than a chunk
		case 1500:
			id = "" // no usable ID: dead-lettered with the derived one
		}
		r := &connector.Record{Value: []byte(`{}`), Origin: connector.Origin{Topic: "in", Partition: 1, Offset: int64(i)}}
		if id != "" {
			r.Headers = []connector.Header{{Key: idempotency.DefaultHeader, Value: []byte(id)}}
		} else {
			id = "in/1/1500"
		}
		in = append(in, r)
		want = append(want, id)
	}
	out, err := p.Process(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(want) {
		t.Fatalf("%d records out, want %d", len(out), len(want))
	}
	for i, r := range out {
		if r.EventID != want[i] {
			t.Fatalf("record %d: event ID %.40q, want %.40q", i, r.EventID, want[i])
		}
	}
}
