package idempotency

import (
	"errors"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

var origin = connector.Origin{Topic: "orders", Partition: 2, Offset: 17}

func rec(key, value string, headers ...connector.Header) *connector.Record {
	r := &connector.Record{Value: []byte(value), Headers: headers, Origin: origin}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

func hdr(k, v string) connector.Header { return connector.Header{Key: k, Value: []byte(v)} }

func TestNewDeriver(t *testing.T) {
	tests := []struct {
		mode, header, field string
		want                Mode
		wantErr             string
	}{
		{mode: "", want: ModeHeader},
		{mode: "header", want: ModeHeader},
		{mode: "json", field: "order.id", want: ModeJSON},
		{mode: "key", want: ModeKey},
		{mode: "derived", want: ModeDerived},
		{mode: "json", wantErr: "requires a field"},
		{mode: "json", field: "order..id", wantErr: `event ID field: path "order..id" has an empty segment`},
		{mode: "offset", wantErr: `mode "offset" unknown`},
	}
	for _, tt := range tests {
		d, err := NewDeriver(tt.mode, tt.header, tt.field)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewDeriver(%q, %q, %q) error = %v, want containing %q", tt.mode, tt.header, tt.field, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewDeriver(%q, %q, %q): %v", tt.mode, tt.header, tt.field, err)
			continue
		}
		if d.Mode() != tt.want {
			t.Errorf("NewDeriver(%q).Mode() = %q, want %q", tt.mode, d.Mode(), tt.want)
		}
	}
}

func TestDerive(t *testing.T) {
	tests := []struct {
		name                string
		mode, header, field string
		rec                 *connector.Record
		want                string
		wantErr             string
	}{
		{name: "header default", mode: "header", rec: rec("", "", hdr("event-id", "e-1")), want: "e-1"},
		{name: "header last wins", mode: "header", rec: rec("", "", hdr("event-id", "a"), hdr("event-id", "b")), want: "b"},
		{name: "header custom", mode: "header", header: "msg-id", rec: rec("", "", hdr("msg-id", "m-9")), want: "m-9"},
		{name: "header missing", mode: "header", rec: rec("", ""), wantErr: `record orders/2/17: event ID header "event-id" missing`},
		{name: "header empty", mode: "header", rec: rec("", "", hdr("event-id", "")), wantErr: `record orders/2/17: event ID header "event-id" empty`},

		{name: "json string", mode: "json", field: "order.id", rec: rec("", `{"order":{"id":"o-5"}}`), want: "o-5"},
		{name: "json top-level", mode: "json", field: "id", rec: rec("", ` {"id": "x"} `), want: "x"},
		{name: "json integer", mode: "json", field: "id", rec: rec("", `{"id":12345678901234567890}`), want: "12345678901234567890"},
		{name: "json number text kept", mode: "json", field: "id", rec: rec("", `{"id":1.50e3}`), want: "1.50e3"},
		{name: "json negative", mode: "json", field: "id", rec: rec("", `{"id":-7}`), want: "-7"},
		{name: "json array position", mode: "json", field: "items.1.id", rec: rec("", `{"items":[{"id":"a"},{"id":"b"}]}`), want: "b"},
		{name: "json first duplicate key", mode: "json", field: "id", rec: rec("", `{"id":"a","id":"b"}`), want: "a"},
		{name: "json not json", mode: "json", field: "id", rec: rec("", `id=1`), wantErr: `record orders/2/17: event ID field "id": value is not JSON`},
		{name: "json not object", mode: "json", field: "id", rec: rec("", `[1]`), wantErr: `"id" missing: value is not a JSON object`},
		{name: "json missing", mode: "json", field: "order.id", rec: rec("", `{"order":{}}`), wantErr: `record orders/2/17: event ID field "order.id" missing`},
		{name: "json parent not object", mode: "json", field: "order.id", rec: rec("", `{"order":3}`), wantErr: `"order.id" missing: "order" is not an object`},
		{name: "json object", mode: "json", field: "order", rec: rec("", `{"order":{"id":1}}`), wantErr: `"order" is an object, want a string or number`},
		{name: "json array", mode: "json", field: "id", rec: rec("", `{"id":[1]}`), wantErr: `"id" is an array`},
		{name: "json null", mode: "json", field: "id", rec: rec("", `{"id":null}`), wantErr: `"id" is null`},
		{name: "json bool", mode: "json", field: "id", rec: rec("", `{"id":true}`), wantErr: `"id" is a boolean`},
		{name: "json empty string", mode: "json", field: "id", rec: rec("", `{"id":""}`), wantErr: `"id" is an empty string`},

		{name: "key", mode: "key", rec: rec("customer-3", ""), want: "customer-3"},
		{name: "key empty", mode: "key", rec: rec("", ""), wantErr: "record orders/2/17: event ID from key: key empty"},

		{name: "derived", mode: "derived", rec: rec("", ""), want: "orders/2/17"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDeriver(tt.mode, tt.header, tt.field)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Derive(tt.rec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Derive() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				var idErr *IDError
				if !errors.As(err, &idErr) || idErr.Origin != origin {
					t.Fatalf("Derive() error %v is not an *IDError for %v", err, origin)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Derive() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDeriveDeterministic(t *testing.T) {
	for _, mode := range []string{"header", "json", "key", "derived"} {
		d, err := NewDeriver(mode, "", "id")
		if err != nil {
			t.Fatal(err)
		}
		r := rec("k", `{"id":"j"}`, hdr("event-id", "h"))
		a, errA := d.Derive(r)
		b, errB := d.Derive(r.Clone())
		if errA != nil || errB != nil || a != b {
			t.Errorf("mode %s: Derive twice = %q (%v), %q (%v)", mode, a, errA, b, errB)
		}
	}
}

func TestDerivedID(t *testing.T) {
	long := strings.Repeat("t", 200)
	tests := []struct {
		o    connector.Origin
		want string
	}{
		{connector.Origin{Topic: "orders", Partition: 0, Offset: 0}, "orders/0/0"},
		{connector.Origin{Topic: "generator:demo", Partition: 11, Offset: 9223372036854775807}, "generator:demo/11/9223372036854775807"},
		{connector.Origin{Topic: long, Partition: 1, Offset: 2}, long + "/1/2"},
	}
	for _, tt := range tests {
		if got := DerivedID(tt.o); got != tt.want {
			t.Errorf("DerivedID(%v) = %q, want %q", tt.o, got, tt.want)
		}
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Origin.String() = %q disagrees with DerivedID %q", got, tt.want)
		}
	}
}

func BenchmarkDerive(b *testing.B) {
	r := rec("customer-42", `{"id":"o-1","order":{"id":"o-123456","amount":12.5},"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`,
		hdr("trace", "abc"), hdr("event-id", "e-0123456789"))
	r.Origin = connector.Origin{Topic: "orders", Partition: 7, Offset: 123456789}
	for _, bc := range []struct{ mode, field string }{
		{"header", ""}, {"json", "order.id"}, {"key", ""}, {"derived", ""},
	} {
		d, err := NewDeriver(bc.mode, "", bc.field)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Derive(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
