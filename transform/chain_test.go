package transform

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

// split emits n copies of its input, each with its own (wrong) event ID, to
// check that Chain decides output IDs.
type split struct{ n int }

func (s split) Apply(in *connector.Record) ([]*connector.Record, error) {
	out := make([]*connector.Record, s.n)
	for i := range out {
		out[i] = in.Clone()
		out[i].EventID = "set-by-transform"
	}
	return out, nil
}

func TestChainEventIDs(t *testing.T) {
	keepAll := mustBuild(t, "filter", "expr: 'true'")
	tests := []struct {
		name  string
		chain Chain
		want  []string
	}{
		{"empty chain", Chain{}, []string{"orders-1-42"}},
		{"one output keeps id", Chain{split{1}, keepAll}, []string{"orders-1-42"}},
		{"two outputs suffixed", Chain{split{2}, keepAll}, []string{"orders-1-42/0", "orders-1-42/1"}},
		{"fan-out multiplies", Chain{split{2}, split{2}}, []string{"orders-1-42/0", "orders-1-42/1", "orders-1-42/2", "orders-1-42/3"}},
		{"dropped", Chain{split{2}, mustBuild(t, "filter", "expr: 'false'")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.chain.Apply(testRecord(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range out {
				got = append(got, r.EventID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("event IDs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestChainRecordError(t *testing.T) {
	ch := Chain{
		split{1},
		mustBuild(t, "filter", "expr: 'true'"),
		mustBuild(t, "set", "fields: {a: 1}"),
	}
	_, err := ch.Apply(testRecord("x-not-json"))
	var re *RecordError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *RecordError", err)
	}
	if re.Index != 2 || re.Transform != "set" || re.Origin != (connector.Origin{Topic: "orders", Partition: 1, Offset: 42}) {
		t.Errorf("RecordError = %+v", re)
	}
	if !errors.Is(err, ErrNotJSON) {
		t.Errorf("errors.Is(ErrNotJSON) false for %v", err)
	}
	want := "transform 2 (set): record orders/1/42: value is not JSON: invalid character 'x'"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	// A transform not built by the registry is named by its Go type.
	_, err = Chain{errTransform{}}.Apply(testRecord(""))
	if !strings.HasPrefix(err.Error(), "transform 0 (transform.errTransform): ") {
		t.Errorf("error %q does not name the Go type", err)
	}
}

type errTransform struct{}

func (errTransform) Apply(*connector.Record) ([]*connector.Record, error) {
	return nil, errors.New("boom")
}

// builtins gives one configured instance of every built-in, for the contract
// tests below.
func builtins(t testing.TB) map[string]Transform {
	return map[string]Transform{
		"filter":  mustBuild(t, "filter", `expr: 'value.amount > 1 && headers.source == "web"'`),
		"route":   mustBuild(t, "route", `expr: '"orders-" + value.customer.tier'`),
		"set":     mustBuild(t, "set", "fields: {meta.by: connectd, m: {x: [1, 2]}}"),
		"rename":  mustBuild(t, "rename", "fields: {customer.tier: tier}"),
		"drop":    mustBuild(t, "drop", "fields: [note]"),
		"headers": mustBuild(t, "headers", "set: {a: '1'}\nremove: [source]"),
	}
}

const contractValue = `{"amount": 12.50, "customer": {"tier": "gold", "id": 99999999999999999999}, "note": "x", "z": [3, 1, 2]}`

func TestBuiltinsDeterministicAndInputUnchanged(t *testing.T) {
	for name, tr := range builtins(t) {
		t.Run(name, func(t *testing.T) {
			in := testRecord(contractValue)
			before := in.Clone()
			first, err := tr.Apply(in)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				again, err := tr.Apply(in)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(first, again) {
					t.Fatalf("outputs differ:\n%+v\n%+v", first, again)
				}
			}
			if !reflect.DeepEqual(in, before) {
				t.Fatalf("input modified:\n%+v\nwas\n%+v", in, before)
			}
			for _, out := range first {
				if out == in {
					t.Fatal("output is the input record itself")
				}
			}
		})
	}
}

func BenchmarkChain(b *testing.B) {
	ch := Chain{
		mustBuild(b, "filter", `expr: 'value.amount > 10 && headers.source == "web"'`),
		mustBuild(b, "set", "fields: {meta.pipeline: orders-v2, processed: true}"),
		mustBuild(b, "route", `expr: '"orders-" + value.customer.tier'`),
	}
	in := testRecord(`{"id":"ord-000123456","amount":129.95,"currency":"EUR","customer":{"id":"c-98765","tier":"gold","country":"DE"},"items":[{"sku":"A-1","qty":2},{"sku":"B-22","qty":1}],"note":"leave at door"}`)
	b.SetBytes(int64(len(in.Value)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := ch.Apply(in)
		if err != nil || len(out) != 1 {
			b.Fatal(err, len(out))
		}
	}
}

func TestChainAppendApply(t *testing.T) {
	in := testRecord(`{"amount": 12}`)
	// Empty chain: the input itself, appended.
	out, err := Chain{}.AppendApply([]*connector.Record{nil}, in)
	if err != nil || len(out) != 2 || out[1] != in {
		t.Fatalf("empty chain: %v, %v", out, err)
	}
	// Otherwise what Apply returns, appended.
	ch := Chain{split{2}}
	out, err = ch.AppendApply(nil, in)
	if err != nil || len(out) != 2 || out[0].EventID != "orders-1-42/0" || out[1].EventID != "orders-1-42/1" {
		t.Fatalf("split chain: %v, %v", out, err)
	}
	// On error dst comes back unchanged.
	dst := []*connector.Record{in}
	out, err = Chain{errTransform{}}.AppendApply(dst, in)
	if err == nil || len(out) != 1 {
		t.Fatalf("failing chain: %v, %v", out, err)
	}
}

// BenchmarkChainIdentity is the chain of an identity pipeline (no
// transforms) as the processor runs it, one record per op: the steady
// state must allocate nothing per record (issue 9).
func BenchmarkChainIdentity(b *testing.B) {
	in := testRecord(`{"id":"ord-000123456","amount":129.95}`)
	out := make([]*connector.Record, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = (Chain{}).AppendApply(out[:0], in); err != nil || len(out) != 1 {
			b.Fatal(err, len(out))
		}
	}
}

// BenchmarkChainFilterKeepAll is the cheapest real chain: one filter that
// keeps every record.
func BenchmarkChainFilterKeepAll(b *testing.B) {
	ch := Chain{mustBuild(b, "filter", "expr: 'true'")}
	in := testRecord(`{"id":"ord-000123456","amount":129.95}`)
	out := make([]*connector.Record, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = ch.AppendApply(out[:0], in); err != nil || len(out) != 1 {
			b.Fatal(err, len(out))
		}
	}
}
